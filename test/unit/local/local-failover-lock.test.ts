import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalFailoverLock } from '../../../src/local/local-failover-lock.js';

let dir: string;
let now = Date.parse('2024-01-01T00:00:00.000Z');
const clock = { now: () => now, sleep: async () => undefined };

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lock-test-'));
  now = Date.parse('2024-01-01T00:00:00.000Z');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('LocalFailoverLock', () => {
  it('one owner at a time; the owner renews and keeps since; release frees it', async () => {
    const lock = new LocalFailoverLock(dir, clock);
    expect(await lock.acquire('c1', 'exec-A', 60)).toEqual({ acquired: true });
    now += 10_000;
    expect(await lock.acquire('c1', 'exec-A', 60)).toEqual({ acquired: true });
    expect(await lock.acquire('c1', 'exec-B', 60)).toEqual({ acquired: false, heldBy: 'exec-A', since: '2024-01-01T00:00:00.000Z' });
    expect(await lock.holder('c1')).toEqual({ heldBy: 'exec-A', since: '2024-01-01T00:00:00.000Z' });
    await lock.release('c1', 'exec-B'); // not the owner: no effect
    expect((await lock.holder('c1'))?.heldBy).toBe('exec-A');
    await lock.release('c1', 'exec-A');
    expect(await lock.holder('c1')).toBeNull();
    expect(await lock.acquire('c1', 'exec-B', 60)).toEqual({ acquired: true });
  });

  it('an expired lock can be taken over', async () => {
    const lock = new LocalFailoverLock(dir, clock);
    await lock.acquire('c1', 'exec-A', 60);
    now += 60_001;
    expect(await lock.acquire('c1', 'exec-B', 60)).toEqual({ acquired: true });
  });

  it('a lock whose holder process died is free at once, long before its TTL', async () => {
    const dead = new LocalFailoverLock(dir, clock, deadPid());
    await dead.acquire('c1', 'exec-killed', 3600);
    const lock = new LocalFailoverLock(dir, clock);
    expect(await lock.holder('c1')).toBeNull();
    expect(await lock.acquire('c1', 'exec-next', 60)).toEqual({ acquired: true });
  });

  it('a live holder in another process keeps it', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      await new LocalFailoverLock(dir, clock, child.pid!).acquire('c1', 'exec-child', 3600);
      expect(await new LocalFailoverLock(dir, clock).acquire('c1', 'exec-me', 60)).toMatchObject({ acquired: false, heldBy: 'exec-child' });
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('concurrent acquisitions: exactly one wins', async () => {
    const locks = Array.from({ length: 20 }, () => new LocalFailoverLock(dir, clock));
    const results = await Promise.all(locks.map((l, i) => l.acquire('c1', `exec-${i}`, 60)));
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
  });

  it('a mutex left by a process that died mid-way is cleared after a few seconds', async () => {
    const mutex = path.join(dir, 'c1.lock.json.mutex');
    mkdirSync(mutex);
    const old = new Date(Date.now() - 10_000);
    utimesSync(mutex, old, old);
    expect(await new LocalFailoverLock(dir, clock).acquire('c1', 'exec-A', 60)).toEqual({ acquired: true });
  });

  it('names an unreadable lock file and a bad cluster id', async () => {
    writeFileSync(path.join(dir, 'c1.lock.json'), '{nope');
    await expect(new LocalFailoverLock(dir, clock).acquire('c1', 'x', 60)).rejects.toThrow(/failover lock file .*c1\.lock\.json is unreadable/);
    await expect(new LocalFailoverLock(dir, clock).acquire('../c1', 'x', 60)).rejects.toThrow("cluster id '../c1' must use letters, digits, '.', '_' or '-' only");
  });
});
