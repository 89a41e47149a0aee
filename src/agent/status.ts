import type { AgentConfig } from './config.js';
import type { Outbox, SyncMarker } from './outbox.js';
import { StateKey } from './sync-engine.js';

/** What `status --json` prints and the metrics publisher sends. Reads only the SQLite file. */
export interface BufferStatus {
  readonly bufferPath: string;
  readonly fileBytes: number;
  readonly pendingRows: number;
  readonly pendingByStream: Record<string, number>;
  readonly oldestPendingAgeSeconds: number | null;
  /** Synced rows still kept for a re-drain (not yet pruned). */
  readonly syncedRows: number;
  /** Of those, rows past the retention period: waiting for replicas to replay past them (or for a drain). */
  readonly syncedPastRetention: number;
  /** Rows refused for their content; kept, never sent (docs/buffer.md: re-queue). */
  readonly rejectedRows: number;
  readonly lastSyncAt: string | null;
  readonly lastSyncMarker: SyncMarker | null;
  readonly lastSyncError: string | null;
  readonly lastSyncErrorAt: string | null;
  readonly consecutiveFailures: number;
  /** The writer of the last successful sync (no password). */
  readonly currentWriter: string | null;
  readonly lastPrune: unknown;
}

export function bufferStatus(outbox: Outbox, config: Pick<AgentConfig, 'retention'> | undefined, nowMs = Date.now()): BufferStatus {
  const retentionMs = (config?.retention.seconds ?? 24 * 3600) * 1000;
  const counts = outbox.counts(nowMs - retentionMs);
  return {
    bufferPath: outbox.file,
    fileBytes: outbox.fileBytes(),
    pendingRows: counts.pendingRows,
    pendingByStream: counts.pendingByStream,
    oldestPendingAgeSeconds: counts.oldestPendingCreatedAtMs === null ? null : Math.max(0, (nowMs - counts.oldestPendingCreatedAtMs) / 1000),
    syncedRows: counts.syncedRows,
    syncedPastRetention: counts.syncedBeforeMs,
    rejectedRows: counts.rejectedRows,
    lastSyncAt: outbox.getState<string>(StateKey.LastSyncAt) ?? null,
    lastSyncMarker: outbox.getState<SyncMarker>(StateKey.LastSyncMarker) ?? null,
    lastSyncError: outbox.getState<string>(StateKey.LastSyncError) ?? null,
    lastSyncErrorAt: outbox.getState<string>(StateKey.LastSyncErrorAt) ?? null,
    consecutiveFailures: outbox.getState<number>(StateKey.ConsecutiveFailures) ?? 0,
    currentWriter: outbox.getState<string>(StateKey.Writer) ?? null,
    lastPrune: outbox.getState(StateKey.LastPrune) ?? null,
  };
}
