// bench/lib/peer.ts: a peer started with `ownSession` runs in a session of its own (setsid), as
// the UCX anchor's processes do, so the kernel's autogroup scheduling weighs it like them; a
// plain peer stays in ours. The session id is read from /proc/<pid>/stat (field 6).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Peer } from '../../bench/lib/peer.js';

function sessionOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After "pid (comm) ": state, ppid, pgrp, session.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

async function sessionOfPeer(ownSession: boolean): Promise<{ pid: number; session: number }> {
  const peer = Peer.start('sleeper', [process.execPath, '-e', 'console.log("up"); setTimeout(() => {}, 10000)'], { ownSession });
  try {
    await peer.waitFor('its start', () => peer.stdout.includes('up'), 10_000);
    return { pid: peer.pid, session: sessionOf(peer.pid) };
  } finally {
    await peer.stop();
  }
}

describe('bench peer sessions', () => {
  it('ownSession: the peer leads a session of its own; otherwise it shares ours', async () => {
    const own = await sessionOfPeer(true);
    expect(own.session).toBe(own.pid);
    expect(own.session).not.toBe(sessionOf('self'));
    const shared = await sessionOfPeer(false);
    expect(shared.session).toBe(sessionOf('self'));
  });

  it('stop() ends a peer in its own session (its process group is killed)', async () => {
    const peer = Peer.start('sleeper', [process.execPath, '-e', 'console.log("up"); setTimeout(() => {}, 30000)'], { ownSession: true });
    await peer.waitFor('its start', () => peer.stdout.includes('up'), 10_000);
    await peer.stop();
    expect(peer.hasExited).toBe(true);
    expect(peer.isRunningNow()).toBe(false);
  });
});
