/**
 * SharedRegion: a named POSIX shared-memory object, mapped into this process, with a checked
 * header (see region-layout.ts) and zero-copy typed views of its data.
 *
 * Ownership: the creating process owns the name. `close()` unmaps this process's mapping;
 * `unlink()` removes the name (processes that have it mapped keep their mapping); `dispose()`
 * closes and, in the creator, unlinks. Regions whose creator died without unlinking are found by
 * `SharedRegion.listStale()` and removed by `SharedRegion.removeStale()`.
 *
 * Views: every view (bytes, int32(), ...) is made from the one ArrayBuffer over the mapping, with
 * no FFI call. After close() a view kept from before reads zeros and its writes go nowhere: it
 * never crashes the process (see mapping.ts). Methods of a closed region throw ClosedError.
 */
import { readdirSync, statSync } from 'node:fs';
import { errno, libc, O_CREAT, O_EXCL, O_RDONLY, O_RDWR } from '../../ffi/libc.js';
import { checkSyscall, ClosedError, CorruptionError, errnoError, TimeoutError, UsageError } from '../errors.js';
import { FutexWord } from './futex.js';
import { mapShared, unmapPrivate, unmapSafely, type Mapping } from './mapping.js';
import { SHM_DIRECTORY, shmNameFor, userPrefix } from './names.js';
import { factsOfFd, factsOfPath, FOREIGN_WRITE_BITS, foreignReason, refuseForeign } from './ownership.js';
import { isProcessAlive, selfPid, selfStartTime } from './process-identity.js';
import {
  H_CONTENT_TAG,
  H_CONTENT_VERSION,
  H_CREATOR_PID,
  H_CREATOR_START,
  H_DATA_OFFSET,
  H_INIT_STATE,
  H_MAGIC,
  H_MAPPED_SIZE,
  H_VERSION,
  INIT_READY,
  MAX_REGION_DATA_SIZE,
  REGION_HEADER_SIZE,
  REGION_LAYOUT_VERSION,
  REGION_MAGIC,
} from './region-layout.js';

export interface CreateOptions {
  /**
   * Permission bits of the object; default 0o600 (this user only). Read bits for group and
   * others may be added; write bits may not (UsageError): memwire refuses to map an object other
   * users can write (see src/shm/ownership.ts).
   */
  mode?: number;
  /**
   * Reserve the pages now (fallocate), so a full /dev/shm fails here with ENOSPC instead of
   * killing the process with SIGBUS on first touch. Default true.
   */
  reserve?: boolean;
  /** A tag naming the layout the data will hold, checked by open({ contentTag }). */
  contentTag?: number;
  contentVersion?: number;
}

export interface OpenOptions {
  /** How long to wait for the creator to finish initialising; default 2000 ms. */
  timeoutMs?: number;
  /** Refuse the region unless its content tag (and version, if given) match. */
  contentTag?: number;
  contentVersion?: number;
}

export interface StaleRegion {
  /** The caller's name of the region. */
  readonly name: string;
  /** The path under /dev/shm. */
  readonly path: string;
  readonly bytes: number;
  readonly creatorPid: number;
  /**
   * 'foreign-owner': the object sits in this user's namespace but another user owns it or may
   * write it. It is reported, never mapped, and removeStale() leaves it (only its owner or root
   * can remove it).
   */
  readonly reason: 'creator-dead' | 'never-initialised' | 'foreign-owner';
  /** The object's owner and permission bits, as lstat/fstat saw them. */
  readonly ownerUid: number;
  readonly mode: number;
}

const DEFAULT_OPEN_TIMEOUT_MS = 2000;
/** A region still uninitialised this long after its last change is taken as abandoned. */
const ABANDONED_INIT_MS = 10_000;
const ENOENT = 2;
const EACCES = 13;
const EEXIST = 17;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function validateSize(size: unknown): asserts size is number {
  if (typeof size !== 'number' || !Number.isFinite(size) || !Number.isInteger(size)) {
    throw new UsageError(`region size must be a whole number of bytes, got ${String(size)}`);
  }
  if (size <= 0) throw new UsageError(`region size must be positive, got ${size}`);
  if (size > MAX_REGION_DATA_SIZE) {
    throw new UsageError(
      `region size ${size} is over the limit of ${MAX_REGION_DATA_SIZE} bytes (4 GiB less the ${REGION_HEADER_SIZE}-byte header: ` +
        'the most one view can cover on every runtime)',
    );
  }
}

/** The path of a POSIX shm name ("/memwire.u0.x" → "/dev/shm/memwire.u0.x"). */
function pathOf(shmName: string): string {
  return `${SHM_DIRECTORY}${shmName}`;
}

/**
 * After shm_open failed with `code`: if the name is held by an object memwire must not use,
 * throw the ForeignObjectError that explains it (an EEXIST or EACCES alone would not say who).
 */
function explainFailedOpen(shmName: string, code: number): void {
  if (code !== EEXIST && code !== EACCES) return;
  const facts = factsOfPath(pathOf(shmName));
  if (facts) refuseForeign(pathOf(shmName), facts);
}

export class SharedRegion {
  /** The caller's name ("orders.q1"). */
  readonly name: string;
  /** The POSIX object name ("/memwire.u1000.orders.q1"). */
  readonly shmName: string;
  /** Bytes of data (the header excluded). */
  readonly size: number;
  /** Whether this process created the object (and so owns its name). */
  readonly isCreator: boolean;
  /** Address of the first data byte in this process (for FFI, e.g. RDMA registration). */
  readonly address: number;
  readonly contentTag: number;
  readonly contentVersion: number;

  #mapping: Mapping | undefined;
  #bytes: Uint8Array;
  #int32: Int32Array;
  #unlinked = false;

  private constructor(name: string, shmName: string, mapping: Mapping, isCreator: boolean) {
    this.name = name;
    this.shmName = shmName;
    this.isCreator = isCreator;
    this.#mapping = mapping;
    this.size = mapping.length - REGION_HEADER_SIZE;
    this.address = mapping.address + REGION_HEADER_SIZE;
    this.#bytes = new Uint8Array(mapping.buffer, REGION_HEADER_SIZE, this.size);
    this.#int32 = new Int32Array(mapping.buffer, REGION_HEADER_SIZE, this.size >>> 2);
    const header = new DataView(mapping.buffer, 0, REGION_HEADER_SIZE);
    this.contentTag = header.getUint32(H_CONTENT_TAG, true);
    this.contentVersion = header.getUint32(H_CONTENT_VERSION, true);
  }

  /**
   * Create a new region exclusively (EEXIST if the name is taken) with `size` data bytes,
   * zero-filled. Throws UsageError for a bad name or size, SystemError if a call fails.
   */
  static create(name: string, size: number, options: CreateOptions = {}): SharedRegion {
    const shmName = shmNameFor(name);
    validateSize(size);
    const mode = options.mode ?? 0o600;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) throw new UsageError(`mode must be within 0..0o777, got ${mode}`);
    if ((mode & FOREIGN_WRITE_BITS) !== 0) {
      throw new UsageError(`mode 0${mode.toString(8)} lets other users write the region; group and others may be given read permission only`);
    }
    const total = size + REGION_HEADER_SIZE;
    const fd = libc.shm_open(shmName, O_RDWR | O_CREAT | O_EXCL, mode) as number;
    if (fd === -1) {
      const code = errno(); // read at once, before any other call
      explainFailedOpen(shmName, code); // EEXIST because another user planted the name?
      throw errnoError('shm_open', code, { name: shmName, flags: 'O_RDWR|O_CREAT|O_EXCL', mode: `0${mode.toString(8)}` });
    }
    let mapping: Mapping | undefined;
    try {
      checkSyscall('ftruncate', libc.ftruncate(fd, total) as number, { name: shmName, length: total });
      if (options.reserve ?? true) {
        checkSyscall('fallocate', libc.fallocate(fd, 0, 0, total) as number, { name: shmName, length: total });
      }
      mapping = mapShared(fd, total, false, shmName);
      const header = new DataView(mapping.buffer, 0, REGION_HEADER_SIZE);
      header.setUint32(H_MAGIC, REGION_MAGIC, true);
      header.setUint32(H_VERSION, REGION_LAYOUT_VERSION, true);
      header.setUint32(H_CREATOR_PID, selfPid, true);
      header.setBigUint64(H_CREATOR_START, selfStartTime, true);
      header.setBigUint64(H_MAPPED_SIZE, BigInt(total), true);
      header.setUint32(H_DATA_OFFSET, REGION_HEADER_SIZE, true);
      header.setUint32(H_CONTENT_TAG, options.contentTag ?? 0, true);
      header.setUint32(H_CONTENT_VERSION, options.contentVersion ?? 0, true);
      // Ordering point: everything above is visible before initState says READY.
      Atomics.store(new Int32Array(mapping.buffer, 0, REGION_HEADER_SIZE / 4), H_INIT_STATE / 4, INIT_READY);
    } catch (error) {
      if (mapping) unmapSafely(mapping);
      libc.close(fd);
      libc.shm_unlink(shmName);
      throw error;
    }
    libc.close(fd); // the mapping keeps the object; no descriptor stays open
    return new SharedRegion(name, shmName, mapping, true);
  }

  /**
   * Open an existing region. Waits up to `timeoutMs` for its creator to finish initialising
   * (TimeoutError), refuses a wrong magic, version or content tag (CorruptionError), refuses an
   * object another user owns or may write (ForeignObjectError, checked on the descriptor before
   * mapping), and throws SystemError ENOENT if there is no such region.
   */
  static open(name: string, options: OpenOptions = {}): SharedRegion {
    const shmName = shmNameFor(name);
    const timeoutMs = options.timeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const fd = libc.shm_open(shmName, O_RDWR, 0) as number;
    if (fd === -1) {
      const code = errno(); // read at once, before any other call
      explainFailedOpen(shmName, code); // EACCES because another user owns it?
      throw errnoError('shm_open', code, { name: shmName, flags: 'O_RDWR' });
    }
    let mapping: Mapping | undefined;
    try {
      // Checked on the descriptor, so the object judged is the object mapped below.
      refuseForeign(pathOf(shmName), factsOfFd(fd, shmName));
      // The creator sizes the object right after creating it: wait for that, boundedly.
      let size = factsOfFd(fd, shmName).size;
      while (size < REGION_HEADER_SIZE && Date.now() < deadline) {
        sleepMs(1);
        size = factsOfFd(fd, shmName).size;
      }
      if (size < REGION_HEADER_SIZE) {
        throw new TimeoutError(`region ${JSON.stringify(name)} was not initialised within ${timeoutMs} ms (size ${size})`);
      }
      // Checked before mapping: a view over more than this would abort Node (see MAX_VIEW_BYTES).
      if (size > MAX_REGION_DATA_SIZE + REGION_HEADER_SIZE) {
        throw new CorruptionError(name, `the object is ${size} bytes, larger than any memwire region (at most ${MAX_REGION_DATA_SIZE + REGION_HEADER_SIZE})`);
      }
      mapping = mapShared(fd, size, false, shmName);
      const words = new Int32Array(mapping.buffer, 0, REGION_HEADER_SIZE / 4);
      while (Atomics.load(words, H_INIT_STATE / 4) !== INIT_READY && Date.now() < deadline) sleepMs(1);
      // Ordering point: initState READY was loaded before the fields below are read.
      const state = Atomics.load(words, H_INIT_STATE / 4);
      const header = new DataView(mapping.buffer, 0, REGION_HEADER_SIZE);
      const magic = header.getUint32(H_MAGIC, true);
      if (state !== INIT_READY) {
        if (magic !== REGION_MAGIC && magic !== 0) throw new CorruptionError(name, `bad magic 0x${magic.toString(16)}`);
        throw new TimeoutError(`region ${JSON.stringify(name)} was not initialised within ${timeoutMs} ms`);
      }
      checkHeader(name, header, size, options);
    } catch (error) {
      if (mapping) unmapSafely(mapping);
      libc.close(fd);
      throw error;
    }
    libc.close(fd);
    return new SharedRegion(name, shmName, mapping, false);
  }

  /** Remove a region's name (ENOENT if there is none). Processes that have it mapped keep it. */
  static unlink(name: string): void {
    const shmName = shmNameFor(name);
    checkSyscall('shm_unlink', libc.shm_unlink(shmName) as number, { name: shmName });
  }

  /**
   * Regions of this user whose creator is dead, or that were never initialised; and objects in
   * this user's namespace that another user owns or may write ('foreign-owner', reported only).
   */
  static listStale(): StaleRegion[] {
    const prefix = userPrefix();
    let entries: string[];
    try {
      entries = readdirSync(SHM_DIRECTORY).filter((entry) => entry.startsWith(prefix));
    } catch {
      return [];
    }
    const stale: StaleRegion[] = [];
    for (const entry of entries) {
      const found = inspectForStaleness(entry, entry.slice(prefix.length));
      if (found) stale.push(found);
    }
    return stale;
  }

  /**
   * Unlink every stale region of this user; returns what was removed. Objects of another user
   * ('foreign-owner') are left alone: listStale() reports them.
   */
  static removeStale(): StaleRegion[] {
    const removed: StaleRegion[] = [];
    for (const region of SharedRegion.listStale()) {
      if (region.reason === 'foreign-owner') continue;
      const result = libc.shm_unlink(`/${userPrefix()}${region.name}`) as number;
      if (result === 0 || errno() === ENOENT) removed.push(region);
    }
    return removed;
  }

  get closed(): boolean {
    return this.#mapping === undefined;
  }

  #live(what: string): Mapping {
    if (!this.#mapping) throw new ClosedError(`region ${JSON.stringify(this.name)} (${what})`);
    return this.#mapping;
  }

  /** Who created the object, from its header (pid + start time): e.g. whether a region another process made is stale. */
  get creator(): { pid: number; start: bigint } {
    const header = new DataView(this.#live('creator').buffer, 0, REGION_HEADER_SIZE);
    return { pid: header.getUint32(H_CREATOR_PID, true), start: header.getBigUint64(H_CREATOR_START, true) };
  }

  /** The region's data as bytes (zero-copy). */
  get bytes(): Uint8Array {
    this.#live('bytes');
    return this.#bytes;
  }

  /** The region's data as 32-bit words (zero-copy), for Atomics. */
  get int32(): Int32Array {
    this.#live('int32');
    return this.#int32;
  }

  /** A zero-copy view of `length` elements from data byte `byteOffset`, bounds-checked. */
  view<T extends TypedArrayKind>(kind: T, byteOffset = 0, length?: number): InstanceType<(typeof VIEW_KINDS)[T]> {
    const mapping = this.#live('view');
    const Ctor = VIEW_KINDS[kind];
    if (!Ctor) throw new UsageError(`unknown view kind ${String(kind)}`);
    const unit = Ctor.BYTES_PER_ELEMENT;
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % unit !== 0 || byteOffset > this.size) {
      throw new UsageError(`view offset ${byteOffset} must be a multiple of ${unit} within 0..${this.size}`);
    }
    const count = length ?? Math.floor((this.size - byteOffset) / unit);
    if (!Number.isInteger(count) || count < 0 || byteOffset + count * unit > this.size) {
      throw new UsageError(`view of ${count} ${kind} elements at ${byteOffset} overruns the region's ${this.size} bytes`);
    }
    return new Ctor(mapping.buffer, REGION_HEADER_SIZE + byteOffset, count) as InstanceType<(typeof VIEW_KINDS)[T]>;
  }

  /** The 32-bit word at data byte `byteOffset` (4-aligned), for cross-process wait and wake. */
  futex(byteOffset: number): FutexWord {
    this.#live('futex');
    if (!Number.isInteger(byteOffset) || byteOffset < 0 || byteOffset % 4 !== 0 || byteOffset + 4 > this.size) {
      throw new UsageError(`futex offset ${byteOffset} must be a multiple of 4 within 0..${this.size - 4}`);
    }
    return new FutexWord(this, this.#int32, byteOffset >>> 2, this.address + byteOffset);
  }

  /** Unmap this process's mapping. Idempotent. Views kept from before stay harmless. */
  close(): void {
    const mapping = this.#mapping;
    if (!mapping) return;
    this.#mapping = undefined;
    unmapSafely(mapping);
  }

  /** Remove the name. Idempotent in this object; SystemError if another process removed it first. */
  unlink(): void {
    if (this.#unlinked) return;
    this.#unlinked = true;
    const result = libc.shm_unlink(this.shmName) as number;
    if (result === -1 && errno() !== ENOENT) throw errnoError('shm_unlink', errno(), { name: this.shmName });
  }

  /** Close, and unlink if this process created the region. Idempotent. */
  dispose(): void {
    this.close();
    if (this.isCreator) this.unlink();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

const VIEW_KINDS = {
  uint8: Uint8Array,
  int8: Int8Array,
  uint16: Uint16Array,
  int16: Int16Array,
  uint32: Uint32Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
  bigint64: BigInt64Array,
  biguint64: BigUint64Array,
} as const;
export type TypedArrayKind = keyof typeof VIEW_KINDS;

function checkHeader(name: string, header: DataView, size: number, options: OpenOptions): void {
  const magic = header.getUint32(H_MAGIC, true);
  if (magic !== REGION_MAGIC) throw new CorruptionError(name, `bad magic 0x${magic.toString(16)}`);
  const version = header.getUint32(H_VERSION, true);
  if (version !== REGION_LAYOUT_VERSION) {
    throw new CorruptionError(name, `layout version ${version}; this memwire reads version ${REGION_LAYOUT_VERSION}`);
  }
  const mapped = header.getBigUint64(H_MAPPED_SIZE, true);
  if (mapped !== BigInt(size)) throw new CorruptionError(name, `header says ${mapped} bytes, the object has ${size}`);
  const dataOffset = header.getUint32(H_DATA_OFFSET, true);
  if (dataOffset !== REGION_HEADER_SIZE) throw new CorruptionError(name, `data offset ${dataOffset}, expected ${REGION_HEADER_SIZE}`);
  const tag = header.getUint32(H_CONTENT_TAG, true);
  if (options.contentTag !== undefined && tag !== options.contentTag) {
    throw new CorruptionError(name, `content tag 0x${tag.toString(16)}, expected 0x${options.contentTag.toString(16)}`);
  }
  const contentVersion = header.getUint32(H_CONTENT_VERSION, true);
  if (options.contentVersion !== undefined && contentVersion !== options.contentVersion) {
    throw new CorruptionError(name, `content version ${contentVersion}, expected ${options.contentVersion}`);
  }
}

/**
 * Regions whose life is another region's, by content tag: the name of the region each belongs to
 * (a registered heap's blocks live as long as the heap's control region, whoever grew them and
 * whether or not that process is still alive). Declared by the module that makes them.
 */
const ownedRegions = new Map<number, (name: string) => string | undefined>();

/**
 * @internal Regions tagged `contentTag` belong to the region `ownerOf(name)` names: listStale()
 * does not report one while its owner exists with a live creator, even if its own creator died.
 */
export function declareOwnedRegions(contentTag: number, ownerOf: (name: string) => string | undefined): void {
  ownedRegions.set(contentTag, ownerOf);
}

/** Whether region `name` exists and is not stale itself (its creator alive). */
function ownerLives(name: string): boolean {
  const entry = `${userPrefix()}${name}`;
  try {
    statSync(`${SHM_DIRECTORY}/${entry}`);
  } catch {
    return false;
  }
  return inspectForStaleness(entry, name, false) === undefined;
}

/**
 * Decide whether a region is stale: an object another user owns or may write is reported as
 * 'foreign-owner' without being mapped; otherwise its header is read, read-only.
 */
function inspectForStaleness(entry: string, name: string, followOwner = true): StaleRegion | undefined {
  const path = `${SHM_DIRECTORY}/${entry}`;
  let ageMs = 0;
  try {
    ageMs = Date.now() - statSync(path).mtimeMs;
  } catch {
    return undefined; // gone meanwhile
  }
  const pathFacts = factsOfPath(path);
  if (pathFacts === undefined) return undefined;
  const foreign = (facts: typeof pathFacts): StaleRegion | undefined =>
    foreignReason(facts) === undefined
      ? undefined
      : { name, path, bytes: facts.size, creatorPid: 0, reason: 'foreign-owner', ownerUid: facts.ownerUid, mode: facts.mode };
  const foreignByPath = foreign(pathFacts);
  if (foreignByPath) return foreignByPath;
  const fd = libc.shm_open(`/${entry}`, O_RDONLY, 0) as number;
  if (fd === -1) return undefined;
  try {
    // Judged again on the descriptor: the name may have been replaced since the lstat.
    const facts = factsOfFd(fd, entry);
    const foreignByFd = foreign(facts);
    if (foreignByFd) return foreignByFd;
    const { size, ownerUid, mode } = facts;
    if (size < REGION_HEADER_SIZE) {
      return ageMs > ABANDONED_INIT_MS ? { name, path, bytes: size, creatorPid: 0, reason: 'never-initialised', ownerUid, mode } : undefined;
    }
    const mapping = mapShared(fd, REGION_HEADER_SIZE, true, entry);
    try {
      const header = new DataView(mapping.buffer, 0, REGION_HEADER_SIZE);
      const pid = header.getUint32(H_CREATOR_PID, true);
      const start = header.getBigUint64(H_CREATOR_START, true);
      const ready = header.getUint32(H_MAGIC, true) === REGION_MAGIC && header.getUint32(H_INIT_STATE, true) === INIT_READY;
      if (!ready) {
        const dead = pid === 0 || !isProcessAlive(pid, start);
        return dead && ageMs > ABANDONED_INIT_MS ? { name, path, bytes: size, creatorPid: pid, reason: 'never-initialised', ownerUid, mode } : undefined;
      }
      if (isProcessAlive(pid, start)) return undefined;
      const owner = followOwner ? ownedRegions.get(header.getUint32(H_CONTENT_TAG, true))?.(name) : undefined;
      if (owner !== undefined && ownerLives(owner)) return undefined; // still its owner's (declareOwnedRegions)
      return { name, path, bytes: size, creatorPid: pid, reason: 'creator-dead', ownerUid, mode };
    } finally {
      unmapPrivate(mapping); // the header view above never leaves this function
    }
  } finally {
    libc.close(fd);
  }
}

