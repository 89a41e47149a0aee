import { newestEpoch } from '../core/lineage.js';
import type { AgentConfig } from './config.js';
import { LineageStateKey, type Outbox, type SyncMarker } from './outbox.js';
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
  /** The lineage as this buffer knows it (docs/buffer.md, "Lineage"). */
  readonly lineage: {
    /** The newest epoch known: every writer must be on it. */
    readonly epoch: string | null;
    readonly generation: number | null;
    readonly epochsKnown: number;
    /** The epoch of the last writer session that passed the check. */
    readonly writerEpoch: string | null;
    /** The epoch this worker last confirmed in rds_failover.worker_epochs (null: none yet, or no workerId in the config). */
    readonly confirmedEpoch: string | null;
    /** A resend scan is due: the buffer learned an epoch since the last complete one. */
    readonly resendDue: boolean;
    /** Synced rows whose marker is outside the newest epoch's history (the next resend scan sends them). */
    readonly outsideHistoryRows: number;
    /** Rows a superseded writer committed (a zombie primary took a statement in flight): not marked, sent again. */
    readonly supersededCommits: number;
    /** Writer sessions refused for their lineage (stale or zombie primary), and the last reason. */
    readonly writerRefusals: number;
    readonly lastWriterRefusal: { readonly at: string; readonly reason: string } | null;
  };
}

export function bufferStatus(outbox: Outbox, config: Pick<AgentConfig, 'retention'> | undefined, nowMs = Date.now()): BufferStatus {
  const retentionMs = (config?.retention.seconds ?? 24 * 3600) * 1000;
  const counts = outbox.counts(nowMs - retentionMs);
  const epochs = outbox.lineage();
  const head = newestEpoch(epochs);
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
    lineage: {
      epoch: head?.id ?? null,
      generation: head?.generation ?? null,
      epochsKnown: epochs.length,
      writerEpoch: outbox.getState<string>(StateKey.WriterEpoch) ?? null,
      confirmedEpoch: outbox.getState<string>(LineageStateKey.ConfirmedEpoch) ?? null,
      resendDue: (outbox.getState<number>(LineageStateKey.ResentVersion) ?? 0) < (outbox.getState<number>(LineageStateKey.Version) ?? 0),
      outsideHistoryRows: counts.outsideHistoryRows,
      supersededCommits: outbox.getState<number>(StateKey.SupersededCommits) ?? 0,
      writerRefusals: outbox.getState<number>(StateKey.WriterRefusals) ?? 0,
      lastWriterRefusal: outbox.getState<{ at: string; reason: string }>(StateKey.LastWriterRefusal) ?? null,
    },
  };
}
