// Pure logic: region names and errno names (no shared memory touched).
import { describe, expect, it } from 'vitest';
import { errnoName } from '../../src/errno-names.js';
import { UsageError } from '../../src/errors.js';
import { MAX_NAME_LENGTH, shmNameFor, userPrefix, validateName } from '../../src/shm/names.js';

describe('region names', () => {
  it('are namespaced by memwire and the user', () => {
    expect(shmNameFor('orders.q1')).toBe(`/${userPrefix()}orders.q1`);
    expect(userPrefix()).toMatch(/^memwire\.u\d+\.$/);
  });
  it('accept the documented alphabet up to the limit', () => {
    expect(() => validateName('a'.repeat(MAX_NAME_LENGTH))).not.toThrow();
    expect(() => validateName('A-z_0.9')).not.toThrow();
  });
  it('refuse everything else with a UsageError', () => {
    for (const bad of ['', '/', 'a/b', '-x', '.x', 'a b', 'é', 'a'.repeat(MAX_NAME_LENGTH + 1), 5, null]) {
      expect(() => validateName(bad)).toThrow(UsageError);
    }
  });
});

describe('errno names', () => {
  it('name the common codes and show unknown ones by number', () => {
    expect(errnoName(2)).toBe('ENOENT');
    expect(errnoName(38)).toBe('ENOSYS');
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(errnoName(9999)).toBe('E#9999');
  });
});
