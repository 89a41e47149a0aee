/**
 * The failover lock and the runbook journal for a controller on this machine: JSON files in a state
 * directory, replaced atomically (write + fsync + rename), so a runner killed mid-way resumes from them.
 * One process at a time may act on them (the drill and the CLI are single processes); the lock protects
 * against a second runner, not against two threads of one.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../ports/clock.js';
import type { FailoverLock, LockResult } from '../ports/failover-lock.js';
import type { RunbookJournal, RunbookJournalEntry } from '../ports/runbook-journal.js';

interface LockRecord {
  readonly owner: string;
  readonly since: string;
  readonly expiresAtMs: number;
}

export class FileFailoverLock implements FailoverLock {
  constructor(
    private readonly dir: string,
    private readonly clock: Clock,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  async acquire(clusterId: string, owner: string, ttlSeconds: number): Promise<LockResult> {
    const file = this.file(clusterId);
    const now = this.clock.now();
    const held = readJson<LockRecord>(file);
    if (held && held.owner !== owner && held.expiresAtMs > now) return { acquired: false, heldBy: held.owner, since: held.since };
    const since = held?.owner === owner ? held.since : new Date(now).toISOString();
    writeJsonAtomically(file, { owner, since, expiresAtMs: now + ttlSeconds * 1000 } satisfies LockRecord);
    return { acquired: true };
  }

  async release(clusterId: string, owner: string): Promise<void> {
    const file = this.file(clusterId);
    if (readJson<LockRecord>(file)?.owner === owner) rmSync(file, { force: true });
  }

  async holder(clusterId: string): Promise<{ heldBy: string; since: string } | null> {
    const held = readJson<LockRecord>(this.file(clusterId));
    return held && held.expiresAtMs > this.clock.now() ? { heldBy: held.owner, since: held.since } : null;
  }

  private file(clusterId: string): string {
    return path.join(this.dir, `${safeName(clusterId)}.lock.json`);
  }
}

export class FileRunbookJournal implements RunbookJournal {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  async load(clusterId: string): Promise<RunbookJournalEntry | null> {
    return readJson<RunbookJournalEntry>(this.file(clusterId));
  }

  async save(entry: RunbookJournalEntry): Promise<void> {
    writeJsonAtomically(this.file(entry.clusterId), entry);
  }

  private file(clusterId: string): string {
    return path.join(this.dir, `${safeName(clusterId)}.journal.json`);
  }
}

function safeName(clusterId: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(clusterId)) throw new Error(`cluster id '${clusterId}' must use letters, digits, '.', '_' or '-' only`);
  return clusterId;
}

function readJson<T>(file: string): T | null {
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

function writeJsonAtomically(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(value));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dirFd = openSync(path.dirname(file), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
