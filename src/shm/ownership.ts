/**
 * Who may control a shared-memory object memwire uses. /dev/shm is world-writable (mode 1777):
 * any user can create a file under any name, including a name in another user's memwire
 * namespace ("memwire.u<uid>."), and a file whose owner or mode lets someone else write it can be
 * rewritten, grown or truncated by them at any time. So every object memwire maps must be owned
 * by this process's effective uid (the owner shm_open gives the objects it creates) and grant no
 * write permission to group or others. Anything else is refused with a ForeignObjectError that
 * names the path, owner and mode; it is never mapped, never used and never unlinked by memwire.
 *
 * The check on open is made on the descriptor (fstat), so the object checked is the object
 * mapped; the path (lstat) is looked at only to explain a failed create (EEXIST) or open (EACCES).
 * What the check does not cover, the same user and root, is stated in docs/safety.md.
 */
import { lstatSync } from 'node:fs';
import { libc, STAT_MODE, STAT_SIZE, STAT_SIZE_FIELD, STAT_UID } from '../../ffi/libc.js';
import { checkSyscall, ForeignObjectError } from '../errors.js';

/** Permission bits no memwire object may have: write for group (0o020) or others (0o002). */
export const FOREIGN_WRITE_BITS = 0o022;
const PERMISSION_BITS = 0o7777;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

export interface ObjectFacts {
  readonly ownerUid: number;
  /** Permission bits (st_mode & 0o7777). */
  readonly mode: number;
  readonly regularFile: boolean;
  readonly size: number;
}

/** The uid that owns the objects this process creates (and so must own every object it maps). */
export function ownUid(): number {
  return libc.geteuid() as number;
}

/** fstat an open descriptor. */
export function factsOfFd(fd: number, what: string): ObjectFacts {
  const stat = new Uint8Array(STAT_SIZE);
  checkSyscall('fstat', libc.fstat(fd, stat) as number, { name: what });
  const view = new DataView(stat.buffer);
  const rawMode = view.getUint32(STAT_MODE, true);
  return {
    ownerUid: view.getUint32(STAT_UID, true),
    mode: rawMode & PERMISSION_BITS,
    regularFile: (rawMode & S_IFMT) === S_IFREG,
    size: Number(view.getBigInt64(STAT_SIZE_FIELD, true)),
  };
}

/** lstat a path (a planted symlink is judged by its own owner); undefined if it does not exist. */
export function factsOfPath(path: string): ObjectFacts | undefined {
  try {
    const stat = lstatSync(path);
    return { ownerUid: stat.uid, mode: stat.mode & PERMISSION_BITS, regularFile: stat.isFile(), size: stat.size };
  } catch {
    return undefined;
  }
}

/** Why memwire must not use an object with these facts, or undefined if it may. */
export function foreignReason(facts: ObjectFacts, uid = ownUid()): string | undefined {
  const mode = `0${facts.mode.toString(8).padStart(3, '0')}`;
  if (facts.ownerUid !== uid) return `belongs to uid ${facts.ownerUid} (mode ${mode}), not to this user (uid ${uid}); only its owner or root can remove it`;
  if (!facts.regularFile) return `is not a regular file (mode ${mode})`;
  if ((facts.mode & FOREIGN_WRITE_BITS) !== 0) return `is owned by this user (uid ${uid}) but its mode ${mode} lets other users write it`;
  return undefined;
}

/** Throw a ForeignObjectError unless memwire may use an object with these facts. */
export function refuseForeign(path: string, facts: ObjectFacts): void {
  const reason = foreignReason(facts);
  if (reason !== undefined) throw new ForeignObjectError(path, facts.ownerUid, facts.mode, reason);
}
