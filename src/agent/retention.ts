import { formatLsn, minLsn, parseLsn, type Lsn } from '../core/lsn.js';
import type { AgentConfig } from './config.js';
import { historyOf } from '../core/lineage.js';
import type { Outbox } from './outbox.js';
import { StateKey, type SyncEngine } from './sync-engine.js';

export interface PruneResult {
  readonly pruned: number;
  /** Why nothing could be pruned, when that was decided before looking at rows. */
  readonly skippedBecause: string | null;
  readonly writerTimeline: number | null;
  /** Lowest replay LSN among the writer's replicas (or the writer's own LSN with retention.minReplicas 0). */
  readonly replayedUpTo: Lsn | null;
  readonly replicas: number;
  readonly syncedBefore: string;
}

const CHUNK = 5000;

/**
 * Deletes synced rows only when both hold: synced longer ago than retention.seconds, and their marker is in
 * the history of the writer's epoch at or below the lowest replay LSN of its replicas (pg_stat_replication),
 * so a failover to any of those replicas can never need them again. The writer session passed the lineage
 * check (it is on the newest epoch this buffer knows), so a zombie's replicas are never consulted; a row outside
 * the current history is never deleted. Skipped when the writer shows fewer than retention.minReplicas replicas:
 * replicas not connected to the writer at that moment are not consulted. Deletes in chunks to keep appends flowing.
 */
export async function prune(outbox: Outbox, engine: SyncEngine, config: AgentConfig, nowMs = Date.now()): Promise<PruneResult> {
  const syncedBeforeMs = nowMs - config.retention.seconds * 1000;
  const replication = await (await engine.session()).replication();
  const epoch = engine.epoch();
  const base = { writerTimeline: replication.timelineId, replicas: replication.replicas.length, syncedBefore: new Date(syncedBeforeMs).toISOString() };
  const skip = (reason: string): PruneResult => record(outbox, { ...base, pruned: 0, skippedBecause: reason, replayedUpTo: null });
  if (engine.resendDue()) return skip('a resend scan is due (the buffer learned a new epoch): prune waits until it ran');
  if (replication.replicas.length < config.retention.minReplicas) {
    return skip(`the writer shows ${replication.replicas.length} replica(s) in pg_stat_replication, retention.minReplicas is ${config.retention.minReplicas}`);
  }
  const replays = replication.replicas.map((r) => r.replayLsn);
  if (replays.some((lsn) => lsn === null)) {
    return skip('a replica has no readable replay_lsn (the agent role needs pg_read_all_stats, or the replica is not streaming yet)');
  }
  const replayedUpTo = replays.length === 0 ? replication.currentLsn : minLsn(replays as Lsn[])!;
  const history = historyOf(outbox.lineage(), epoch.id, parseLsn(replayedUpTo));
  let pruned = 0;
  for (;;) {
    const deleted = outbox.pruneChunk(history, syncedBeforeMs, CHUNK);
    pruned += deleted;
    if (deleted < CHUNK) break;
  }
  return record(outbox, { ...base, pruned, skippedBecause: null, replayedUpTo: formatLsn(parseLsn(replayedUpTo)) });
}

function record(outbox: Outbox, result: PruneResult): PruneResult {
  outbox.setState({ [StateKey.LastPrune]: { at: new Date().toISOString(), pruned: result.pruned, skippedBecause: result.skippedBecause } });
  return result;
}
