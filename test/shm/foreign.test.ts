// Objects of another user in this user's namespace (issue 13, item 9), and the threat-model
// boundary for truncation (item 8). /dev/shm is world-writable, so another user can plant a file
// under any memwire name. The other user is a real process of another uid: setpriv drops root to
// uid/gid 1001 (or 1002) for a child, so these tests need root (CI runs as root) and otherwise
// skip, saying so. Decided over `unshare --user`: an unprivileged user namespace maps only the
// caller's own uid, so files made inside it belong to the caller and no foreign owner can be shown.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, statSync, unlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ForeignObjectError, SharedRegion, UsageError } from '../../src/index.js';
import { finished, startFixture, uniqueName, type Child } from '../helpers.js';

const ATTACKER = 1001;
const VICTIM = 1002;
const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
const skipReason = !isRoot ? 'needs root to run processes as other uids' : !hasSetpriv ? 'setpriv (util-linux) is missing' : '';

const children: Child[] = [];
const planted: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    child.process.kill('SIGKILL');
    await child.exit;
  }
  for (const path of planted.splice(0)) if (existsSync(path)) unlinkSync(path);
});

async function plant(objectName: string, mode: string, then: 'hold' | 'exit'): Promise<Child> {
  planted.push(`/dev/shm/${objectName}`);
  const child = startFixture('other-user', ['plant', objectName, mode, then], { asUid: ATTACKER });
  children.push(child);
  await child.waitFor('ready');
  if (then === 'exit') await finished(child);
  return child;
}

interface Outcome {
  ok: boolean;
  value?: unknown;
  class?: string;
  code?: string;
  ownerUid?: number;
  mode?: number;
  message?: string;
}
interface VictimReport {
  uid: number;
  open: Outcome;
  create: Outcome;
  expose: Outcome;
  attach: Outcome;
  stale: { name: string; reason: string; ownerUid: number; mode: number }[];
  removed: unknown[];
}

async function victim(name: string): Promise<VictimReport> {
  const child = startFixture('other-user', ['victim', name], { asUid: VICTIM });
  children.push(child);
  await finished(child);
  return JSON.parse(child.stdout().trim()) as VictimReport;
}

const refused = (ownerUid: number) => ({ ok: false, class: 'ForeignObjectError', code: 'ERR_MEMWIRE_FOREIGN_OBJECT', ownerUid });

describe.skipIf(!!skipReason)(`objects another user planted in this user's namespace${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('a live one (mode 0666, a valid header) is refused by open, create, expose and attach, naming its owner', async () => {
    const name = uniqueName('planted');
    await plant(`memwire.u${VICTIM}.${name}`, '666', 'hold');
    const report = await victim(name);
    expect(report.uid).toBe(VICTIM);
    for (const step of [report.open, report.create, report.expose, report.attach]) expect(step).toMatchObject(refused(ATTACKER));
    expect(report.open.message).toMatch(new RegExp(`/dev/shm/memwire\\.u${VICTIM}\\.${name.replace(/\./g, '\\.')} belongs to uid ${ATTACKER} \\(mode 0666\\)`));
    expect(report.stale).toEqual([expect.objectContaining({ name, reason: 'foreign-owner', ownerUid: ATTACKER, mode: 0o666 })]);
    expect(report.removed).toEqual([]);
  });

  it('a stale one (its planter gone) is reported by listStale, never used, and left for its owner or root', async () => {
    const name = uniqueName('planted-stale');
    const path = `/dev/shm/memwire.u${VICTIM}.${name}`;
    await plant(`memwire.u${VICTIM}.${name}`, '666', 'exit');
    const report = await victim(name);
    for (const step of [report.open, report.create, report.expose]) expect(step).toMatchObject(refused(ATTACKER));
    expect(report.stale).toEqual([expect.objectContaining({ name, reason: 'foreign-owner', ownerUid: ATTACKER })]);
    expect(report.removed).toEqual([]);
    expect(statSync(path).uid).toBe(ATTACKER); // still there, still the other user's
  });

  it('one the victim cannot even open (mode 0600) is a ForeignObjectError naming its owner, not a bare EACCES/EEXIST', async () => {
    const name = uniqueName('planted-private');
    await plant(`memwire.u${VICTIM}.${name}`, '600', 'hold');
    const report = await victim(name);
    expect(report.open).toMatchObject(refused(ATTACKER));
    expect(report.create).toMatchObject(refused(ATTACKER));
    expect(report.stale).toEqual([expect.objectContaining({ name, reason: 'foreign-owner', ownerUid: ATTACKER, mode: 0o600 })]);
  });

  it('root is not fooled either: open checks the owner on the descriptor, though root could map it', async () => {
    const name = uniqueName('planted-root');
    await plant(`memwire.u0.${name}`, '644', 'hold');
    let error: unknown;
    try {
      SharedRegion.open(name, { timeoutMs: 200 }).close();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ForeignObjectError);
    expect(error).toMatchObject({ ownerUid: ATTACKER, mode: 0o644 });
    expect(() => SharedRegion.create(name, 4096)).toThrow(ForeignObjectError);
    expect(SharedRegion.listStale().filter((s) => s.name === name)).toEqual([expect.objectContaining({ reason: 'foreign-owner', ownerUid: ATTACKER })]);
    expect(SharedRegion.removeStale().filter((s) => s.name === name)).toEqual([]);
    expect(existsSync(`/dev/shm/memwire.u0.${name}`)).toBe(true);
  });
});

describe('this user’s own objects must not be writable by others', () => {
  it('create refuses a mode with write permission for group or others; read permission is fine', () => {
    expect(() => SharedRegion.create(uniqueName('mode'), 64, { mode: 0o666 })).toThrow(UsageError);
    expect(() => SharedRegion.create(uniqueName('mode'), 64, { mode: 0o620 })).toThrow(UsageError);
    const readable = SharedRegion.create(uniqueName('mode'), 64, { mode: 0o644 });
    try {
      SharedRegion.open(readable.name).close();
    } finally {
      readable.dispose();
    }
  });

  it('open refuses an own object made writable by others (chmod) with a ForeignObjectError', () => {
    const region = SharedRegion.create(uniqueName('chmod'), 64);
    try {
      chmodSync(`/dev/shm${region.shmName}`, 0o666);
      let error: unknown;
      try {
        SharedRegion.open(region.name).close();
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ForeignObjectError);
      expect((error as Error).message).toMatch(/mode 0666 lets other users write it/);
      expect(SharedRegion.listStale().filter((s) => s.name === region.name)).toEqual([expect.objectContaining({ reason: 'foreign-owner' })]);
    } finally {
      region.dispose();
    }
  });
});

describe.skipIf(!!skipReason)(`truncation: the threat-model boundary (docs/safety.md)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('another user cannot truncate (or write) a region: its mode gives them no write permission', () => {
    const region = SharedRegion.create(uniqueName('truncate'), 4096);
    try {
      region.bytes[0] = 42;
      const path = `/dev/shm${region.shmName}`;
      const attempt = spawnSync('setpriv', ['--reuid', String(ATTACKER), '--regid', String(ATTACKER), '--clear-groups', '--', 'truncate', '-s', '0', path], { encoding: 'utf8' });
      expect(attempt.status).not.toBe(0);
      expect(attempt.stderr).toMatch(/Permission denied/);
      expect(statSync(path).size).toBe(4096 + 128);
      expect(region.bytes[0]).toBe(42); // still mapped, no SIGBUS
    } finally {
      region.dispose();
    }
  });
});
