import { setTimeout as sleep } from 'node:timers/promises';
import { statSync } from 'node:fs';
import { errorMessage } from './log.js';
import type { Outbox } from './outbox.js';

export interface CheckpointResult {
  readonly healthy: boolean;
  /** Why the file is not ready for a snapshot (null when healthy). */
  readonly reason: string | null;
  readonly journalMode: string;
  readonly walBytesBefore: number;
  /** 0 after a complete TRUNCATE checkpoint: everything is in the main file. */
  readonly walBytesAfter: number;
  readonly attempts: number;
  readonly integrity: 'ok' | string[];
  readonly fileBytes: number;
}

/**
 * The DLM pre-snapshot step: copy the WAL into the main file and truncate it (PRAGMA wal_checkpoint(TRUNCATE)),
 * then PRAGMA integrity_check. A checkpoint blocked by a long reader is retried a few times. SQLite errors
 * (a malformed file) make the result unhealthy instead of throwing, so the caller gets one reason.
 */
export async function checkpoint(outbox: Outbox, options: { attempts?: number; retryDelayMs?: number } = {}): Promise<CheckpointResult> {
  const maxAttempts = options.attempts ?? 5;
  const walBytesBefore = walBytes(outbox.file);
  let journalMode = 'unknown';
  let attempts = 0;
  let busy = true;
  let integrity: 'ok' | string[] = 'ok';
  let reason: string | null = null;
  try {
    journalMode = outbox.journalMode();
    while (attempts < maxAttempts) {
      attempts += 1;
      busy = outbox.checkpoint().busy;
      if (!busy) break;
      await sleep(options.retryDelayMs ?? 200);
    }
    const problems = outbox.integrityProblems();
    if (problems.length > 0) integrity = problems;
    reason =
      journalMode !== 'wal'
        ? `journal_mode is '${journalMode}', expected 'wal'`
        : busy
          ? `wal_checkpoint(TRUNCATE) stayed busy after ${attempts} attempts: another connection holds a read or write lock`
          : problems.length > 0
            ? `integrity_check failed: ${problems.slice(0, 5).join('; ')}`
            : null;
  } catch (error) {
    integrity = [errorMessage(error)];
    reason = `integrity_check failed: ${errorMessage(error)}`;
  }
  return {
    healthy: reason === null,
    reason,
    journalMode,
    walBytesBefore,
    walBytesAfter: walBytes(outbox.file),
    attempts,
    integrity,
    fileBytes: outbox.fileBytes(),
  };
}

function walBytes(file: string): number {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
}
