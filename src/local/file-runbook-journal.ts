/**
 * The runbook journal for a controller on this machine: one JSON file per cluster, replaced atomically
 * (write + fsync + rename), so a runner killed mid-way resumes from it. Only the lock holder writes it
 * (see LocalFailoverLock).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { RunbookJournal, RunbookJournalEntry } from '../ports/runbook-journal.js';

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
