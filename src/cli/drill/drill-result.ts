/** From what the drill recorded to its result: the count, the incidents' figures, the append latencies, the chart's series. */
import { percentile } from '../../core/stats.js';
import type { LocalCluster } from '../../local/local-cluster.js';
import type { DeliveryTotals } from '../../slack/queued-notifier.js';
import type { StoredRows } from './drill-table.js';
import type { FaultCheck } from './faults/fault.js';
import { drillIncidents, drillRounds, recoveredByDrain, worstTimings, type RoundWithState } from './incidents.js';
import { drillFailure, type DrillEvent, type DrillResult, type DrillRows, type DrillSeries } from './report.js';
import type { WorkerRecord } from './worker-fleet.js';

export interface DrillRecording {
  readonly seed: number;
  readonly fault: string;
  readonly plan: unknown;
  readonly workers: number;
  readonly rate: number;
  readonly firstPrimary: string;
  /** Wall-clock ms the load started: the report's time 0. */
  readonly origin: number;
  readonly rounds: readonly RoundWithState[];
  readonly records: readonly WorkerRecord[];
  /** The node counted, and what it holds; null when no node could be counted. */
  readonly countedOn: string | null;
  readonly stored: StoredRows | null;
  /** From the workers' confirmations (rds_failover.worker_epochs) of the epochs the runbooks recorded. */
  readonly resentByWorkers: number;
  readonly checks: readonly FaultCheck[];
  readonly delivery: DeliveryTotals;
  readonly refusedCalls: Readonly<Record<string, number>>;
  readonly timeline: readonly DrillEvent[];
  readonly cluster: LocalCluster;
}

export function buildDrillResult(r: DrillRecording): DrillResult {
  const acknowledged = r.records.flatMap((w) => w.ids);
  const refusedIds = r.records.flatMap((w) => w.refused.map(([id]) => id));
  const present = r.stored ? new Set(r.stored.ids) : null;
  const rows: DrillRows = {
    acknowledged: acknowledged.length,
    inNewPrimary: r.stored ? r.stored.ids.length : null,
    lost: present ? acknowledged.filter((id) => !present.has(id)).length : null,
    duplicates: r.stored ? r.stored.duplicates : null,
    recoveredByDrain: recoveredByDrain(r.rounds),
    resentByWorkers: r.resentByWorkers,
    refused: refusedIds.length,
    refusedButStored: present ? refusedIds.filter((id) => present.has(id)).length : 0,
  };
  const failure = drillFailure(rows, r.rounds[r.rounds.length - 1], r.checks);
  const portOf = (id: string) => r.cluster.nodes().find((n) => n.id === id)?.port;
  const firstCommitAt = (port: number, afterMs: number) => {
    let first: number | null = null;
    for (const row of r.stored?.rows ?? []) if (row.port === port && row.committedAtMs >= afterMs && (first === null || row.committedAtMs < first)) first = row.committedAtMs;
    return first;
  };
  const incidents = drillIncidents(r.rounds, r.origin, portOf, firstCommitAt);
  const latencies = r.records.flatMap((w) => w.latenciesUs).map((us) => us / 1000);
  const lastState = [...r.rounds].reverse().find((x) => x.state)?.state;
  return {
    seed: r.seed,
    fault: r.fault,
    plan: r.plan,
    workers: r.workers,
    ratePerWorker: r.rate,
    oldPrimary: r.firstPrimary,
    newPrimary: r.countedOn,
    forkPoint: lastState?.forkPoint ?? null,
    timings: worstTimings(incidents),
    incidents,
    rounds: drillRounds(r.rounds, r.origin),
    rows,
    appendLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.reduce((a, b) => Math.max(a, b), 0) },
    maxAckGapMs: r.records.reduce((gap, w) => Math.max(gap, maxGap(w.times)), 0),
    notifications: r.delivery.published,
    slack: {
      published: r.delivery.published,
      delivered: r.delivery.delivered,
      undelivered: r.delivery.deadLetters.length + r.delivery.queued,
      deadLetters: r.delivery.deadLetters,
      refusedCalls: { ...r.refusedCalls },
    },
    checks: r.checks,
    failure,
    timeline: [...r.timeline].sort((a, b) => a.atMs - b.atMs),
    series: buildSeries(r.origin, r.records.flatMap((w) => w.times), r.stored?.rows ?? [], r.cluster),
    ok: failure === null,
  };
}

function buildSeries(origin: number, ackTimes: readonly number[], stored: readonly { port: number; committedAtMs: number }[], cluster: LocalCluster): DrillSeries {
  const bucketMs = 250;
  const bucket = (t: number) => Math.max(0, Math.floor((t - origin) / bucketMs));
  let last = 0;
  for (const t of ackTimes) last = Math.max(last, bucket(t));
  for (const r of stored) last = Math.max(last, bucket(r.committedAtMs));
  const acknowledged = new Array<number>(last + 1).fill(0);
  for (const t of ackTimes) acknowledged[bucket(t)]! += 1;
  const committed: Record<string, number[]> = {};
  const nodeByPort = new Map(cluster.nodes().map((n) => [n.port, n.id]));
  for (const r of stored) {
    const node = nodeByPort.get(r.port) ?? `port ${r.port}`;
    (committed[node] ??= new Array<number>(last + 1).fill(0))[bucket(r.committedAtMs)]! += 1;
  }
  return { bucketMs, acknowledged, committed };
}

function maxGap(times: readonly number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}
