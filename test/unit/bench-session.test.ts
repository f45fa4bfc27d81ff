// bench/lib/session.ts: a bench whose anchor runs in sessions of its own (UCX's processes) is
// measured from a process that leads a session of its own too (autogroup scheduling weighs each
// session as one group); its report says so. SIGTERM to the command reaches that process.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { leadsSession, sessionOf } from '../../bench/lib/session.js';

const MAIN = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const QUICK = ['bench', 'postbox-pingpong', '--quick', '--sizes', '64', '--no-ucx', '--no-uds', '--iterations', '2000', '--json'];

function sessionNote(stdout: string): string | undefined {
  const last = stdout.trim().split('\n').pop() ?? '';
  const report = JSON.parse(last) as { notes: string[] };
  return report.notes.find((n) => n.startsWith('measured from a process'));
}

/** Children of `pid`, from /proc (field 4 of stat is the parent). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('bench measuring process session', () => {
  it('sessionOf reads /proc; this test process does not lead its session, a setsid child does', () => {
    expect(sessionOf('self')).toBe(sessionOf(process.pid));
    expect(leadsSession()).toBe(sessionOf('self') === process.pid);
    const probe = `const s=require('fs').readFileSync('/proc/self/stat','utf8');console.log(s.slice(s.lastIndexOf(')')+2).split(' ')[3]===String(process.pid))`;
    expect(spawnSync('setsid', ['-w', process.execPath, '-e', probe], { encoding: 'utf8' }).stdout.trim()).toBe('true');
    expect(spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' }).stdout.trim()).toBe(String(leadsSession()));
    expect(sessionOf(2 ** 30)).toBeNull();
  });

  it('postbox-pingpong started in our session measures from a session of its own', () => {
    const run = spawnSync(process.execPath, [MAIN, ...QUICK], { encoding: 'utf8', timeout: 90_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(sessionNote(run.stdout)).toMatch(/^measured from a process leading a session of its own/);
  }, 120_000);

  it('SIGTERM to the command ends the bench running in the other session', async () => {
    const parent = spawn(process.execPath, [MAIN, 'bench', 'postbox-pingpong', '--sizes', '64', '--no-ucx', '--no-uds', '--iterations', '100000000', '--timeout', '60'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    parent.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!err.includes('postbox-pingpong: sizes') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(err).toContain('postbox-pingpong: sizes'); // the measuring child has started
    await new Promise((r) => setTimeout(r, 1000)); // and is in its round trips (or warm-up)
    const [child] = childrenOf(parent.pid!);
    expect(child).toBeGreaterThan(0);
    expect(sessionOf(child)).toBe(child);
    const exited = new Promise<number | null>((r) => parent.once('exit', (code) => r(code)));
    parent.kill('SIGTERM');
    expect(await exited).not.toBe(0);
    const gone = Date.now() + 10_000;
    while (sessionOf(child) !== null && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
    expect(sessionOf(child)).toBeNull();
    // Killed mid-run it left its postboxes (as any killed process does): remove them.
    for (const name of readdirSync('/dev/shm')) if (name.includes(`.pb.bench${child}`)) rmSync(`/dev/shm/${name}`, { force: true });
  }, 120_000);
});
