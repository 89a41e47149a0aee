import type { Outbox } from './outbox.js';

export interface CheckpointResult {
  readonly healthy: boolean;
  /** Why the file is not ready for a snapshot (null when healthy). */
  readonly reason: string | null;
  readonly journalMode: string;
  readonly walFramesCheckpointed: number;
  readonly attempts: number;
  readonly integrity: 'ok' | string[];
  readonly fileBytes: number;
}

/**
 * The DLM pre-snapshot step: copy the WAL into the main file and truncate it (PRAGMA wal_checkpoint(TRUNCATE)),
 * then PRAGMA integrity_check. A checkpoint blocked by a long reader is retried a few times.
 */
export async function checkpoint(outbox: Outbox, options: { attempts?: number; retryDelayMs?: number } = {}): Promise<CheckpointResult> {
  const maxAttempts = options.attempts ?? 5;
  const journalMode = outbox.journalMode();
  let attempts = 0;
  let result = { busy: true, walFrames: 0, checkpointedFrames: 0 };
  while (attempts < maxAttempts) {
    attempts += 1;
    result = outbox.checkpoint();
    if (!result.busy) break;
    await new Promise((resolve) => setTimeout(resolve, options.retryDelayMs ?? 200));
  }
  const problems = outbox.integrityProblems();
  const reason =
    journalMode !== 'wal'
      ? `journal_mode is '${journalMode}', expected 'wal'`
      : result.busy
        ? `wal_checkpoint(TRUNCATE) stayed busy after ${attempts} attempts: another connection holds a read or write lock`
        : problems.length > 0
          ? `integrity_check failed: ${problems.slice(0, 5).join('; ')}`
          : null;
  return {
    healthy: reason === null,
    reason,
    journalMode,
    walFramesCheckpointed: result.checkpointedFrames,
    attempts,
    integrity: problems.length === 0 ? 'ok' : problems,
    fileBytes: outbox.fileBytes(),
  };
}
