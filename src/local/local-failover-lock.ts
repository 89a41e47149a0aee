/**
 * The failover lock for runners on this machine (CLI --local, drill, tests), in a JSON file per cluster.
 * - Atomic: every read-check-write happens under a mkdir mutex, so two processes can never both take it.
 * - A runner that was killed frees its lock at once: the lock records the holder's pid, and a holder pid that
 *   no longer exists on this host is as good as expired (the TTL still covers other hosts and pid reuse).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { systemClock, type Clock } from '../ports/clock.js';
import type { FailoverLock, LockResult } from '../ports/failover-lock.js';
import { isAlive } from './processes.js';

interface LockRecord {
  readonly owner: string;
  readonly since: string;
  readonly expiresAtMs: number;
  readonly pid: number;
  readonly host: string;
}

/** A mutex directory older than this belongs to a process that died inside the (microseconds long) critical section. */
const STALE_MUTEX_MS = 5_000;
const MUTEX_WAIT_MS = 3_000;

export class LocalFailoverLock implements FailoverLock {
  constructor(
    private readonly dir: string,
    private readonly clock: Clock = systemClock,
    private readonly pid: number = process.pid,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async acquire(clusterId: string, owner: string, ttlSeconds: number): Promise<LockResult> {
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new Error(`lock ttlSeconds must be positive, got ${ttlSeconds}`);
    return this.locked(clusterId, (file) => {
      const now = this.clock.now();
      const held = read(file);
      if (held && held.owner !== owner && !this.stale(held, now)) return { acquired: false, heldBy: held.owner, since: held.since };
      const since = held?.owner === owner ? held.since : new Date(now).toISOString();
      write(file, { owner, since, expiresAtMs: now + Math.round(ttlSeconds * 1000), pid: this.pid, host: os.hostname() });
      return { acquired: true };
    });
  }

  async release(clusterId: string, owner: string): Promise<void> {
    await this.locked(clusterId, (file) => {
      if (read(file)?.owner === owner) rmSync(file, { force: true });
    });
  }

  async holder(clusterId: string): Promise<{ heldBy: string; since: string } | null> {
    const held = read(this.file(clusterId));
    return held && !this.stale(held, this.clock.now()) ? { heldBy: held.owner, since: held.since } : null;
  }

  private stale(held: LockRecord, now: number): boolean {
    return held.expiresAtMs <= now || (held.host === os.hostname() && !isAlive(held.pid));
  }

  private file(clusterId: string): string {
    if (!/^[A-Za-z0-9._-]+$/.test(clusterId)) throw new Error(`cluster id '${clusterId}' must use letters, digits, '.', '_' or '-' only`);
    return path.join(this.dir, `${clusterId}.lock.json`);
  }

  private async locked<T>(clusterId: string, fn: (file: string) => T): Promise<T> {
    const file = this.file(clusterId);
    const mutex = `${file}.mutex`;
    const deadline = Date.now() + MUTEX_WAIT_MS;
    for (;;) {
      try {
        mkdirSync(mutex);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        if (ageMs(mutex) > STALE_MUTEX_MS) rmSync(mutex, { recursive: true, force: true });
        else if (Date.now() > deadline) throw new Error(`failover lock of ${clusterId}: ${mutex} held for over ${MUTEX_WAIT_MS} ms`);
        else await sleep(2);
      }
    }
    try {
      return fn(file);
    } finally {
      rmSync(mutex, { recursive: true, force: true });
    }
  }
}

function read(file: string): LockRecord | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`failover lock file ${file} is unreadable: ${(error as Error).message}; remove it once no runner is active`);
  }
}

function write(file: string, record: LockRecord): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(record));
  renameSync(tmp, file);
}

function ageMs(p: string): number {
  try {
    return Date.now() - statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}
