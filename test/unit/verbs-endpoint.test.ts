/**
 * The pure parts of the verbs layer, on the host: GID text <-> bytes, MTU enum, and the
 * out-of-band endpoint encoding (untrusted input: every field is checked).
 */
import { describe, expect, it } from 'vitest';
import { decodeEndpoint, encodeEndpoint, UsageError } from '../../src/index.js';
import { gidText, mtuBytes, mtuEnum, parseGid } from '../../src/verbs/context.js';

describe('GIDs, MTUs and endpoints', () => {
  it('formats and parses GIDs (IPv4-mapped, link-local, hex)', () => {
    const v4 = parseGid('::ffff:192.0.2.1');
    expect(Array.from(v4)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
    expect(gidText(v4)).toBe('::ffff:192.0.2.1');
    const ll = parseGid('fe80::a87b:a2ff:fe20:e12e');
    expect(gidText(ll)).toBe('fe80::a87b:a2ff:fe20:e12e');
    expect(gidText(parseGid('fe800000000000000000000000000001'))).toBe('fe80::1');
    expect(gidText(new Uint8Array(16))).toBe('::');
    for (const bad of ['', 'nonsense', '1::2::3', '::ffff:300.1.1.1', 'g::1', '1:2:3:4:5:6:7:8:9']) {
      expect(() => parseGid(bad), bad).toThrow(UsageError);
    }
  });

  it('maps MTU bytes to enum ibv_mtu and back', () => {
    expect([256, 512, 1024, 2048, 4096].map(mtuEnum)).toEqual([1, 2, 3, 4, 5]);
    expect([1, 2, 3, 4, 5].map(mtuBytes)).toEqual([256, 512, 1024, 2048, 4096]);
    expect(() => mtuEnum(1500)).toThrow(UsageError);
  });

  it('encodes endpoints and checks every field of a received one', () => {
    const e = { gid: '::ffff:192.0.2.1', qpn: 17, psn: 0xabcdef, lid: 0, mtu: 1024 };
    expect(decodeEndpoint(encodeEndpoint(e))).toEqual(e);
    expect(() => decodeEndpoint('{')).toThrow(/not JSON/);
    expect(() => decodeEndpoint(JSON.stringify({ ...e, qpn: -1 }))).toThrow(/endpoint\.qpn/);
    expect(() => decodeEndpoint(JSON.stringify({ ...e, psn: 1 << 24 }))).toThrow(/endpoint\.psn/);
    expect(() => decodeEndpoint(JSON.stringify({ ...e, gid: 5 }))).toThrow(/endpoint\.gid/);
  });
});
