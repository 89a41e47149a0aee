import { formatDurationMs } from '../../core/duration.js';
import { renderTable } from '../../core/format-table.js';
import { median } from '../../core/stats.js';

export type DrillFault = 'kill-primary' | 'switchover' | 'replica-lag';

export interface DrillEvent {
  /** Milliseconds since the drill's load started. */
  readonly atMs: number;
  readonly name: string;
  readonly detail?: string;
}

export interface DrillTimings {
  /** Fault injected → failure confirmed by the controller (0 for a switchover). */
  readonly detectionMs: number;
  /** Runbook start → candidate promoted and writable. */
  readonly promotionMs: number;
  /** Fault injected → first buffered row committed on the new primary. */
  readonly firstWriteMs: number;
  /** Drain step: start → every worker's summary in. */
  readonly drainMs: number;
  /** Fault injected → runbook finished (verified, replicas rebuilt). */
  readonly rtoMs: number;
}

export interface DrillRows {
  readonly acknowledged: number;
  readonly inNewPrimary: number;
  /** Acknowledged ids missing from the new primary: must be 0. */
  readonly lost: number;
  /** Rows stored more than once for one id: must be 0. */
  readonly duplicates: number;
  /** Rows the old primary committed that never replicated, brought back by the drain. */
  readonly recoveredByDrain: number;
  /**
   * Rows the workers had synced outside the new epoch's history and sent again, by the drain or by their own sync
   * loop (whichever met the new epoch first), as their confirmations in rds_failover.worker_epochs say.
   */
  readonly resentByWorkers: number;
}

export interface DrillResult {
  readonly seed: number;
  readonly fault: DrillFault;
  readonly workers: number;
  readonly ratePerWorker: number;
  readonly oldPrimary: string;
  readonly newPrimary: string;
  readonly forkPoint: { readonly timelineId: number; readonly lsn: string } | null;
  readonly timings: DrillTimings;
  readonly rows: DrillRows;
  readonly appendLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Longest time any worker went without acknowledging a write while load ran. */
  readonly maxAckGapMs: number;
  /** Notifications the runbook published (what Slack would have received). */
  readonly notifications: number;
  readonly timeline: readonly DrillEvent[];
  /** Rows acknowledged and rows committed per node, per bucket, for the chart. */
  readonly series: DrillSeries;
  readonly ok: boolean;
}

export interface DrillSeries {
  readonly bucketMs: number;
  readonly acknowledged: readonly number[];
  /** node id → rows first committed on that node per bucket. */
  readonly committed: Readonly<Record<string, readonly number[]>>;
}

export function drillOk(rows: DrillRows): boolean {
  return rows.lost === 0 && rows.duplicates === 0;
}

export function renderDrillTable(result: DrillResult): string {
  const t = result.timings;
  const figures: [string, string][] = [
    ['fault', result.fault],
    ['seed', String(result.seed)],
    ['workers × rate', `${result.workers} × ${result.ratePerWorker}/s`],
    ['old → new primary', `${result.oldPrimary} → ${result.newPrimary}`],
    ['fork point', result.forkPoint ? `timeline ${result.forkPoint.timelineId} @ ${result.forkPoint.lsn}` : '-'],
    ['detection', formatDurationMs(t.detectionMs)],
    ['promotion', formatDurationMs(t.promotionMs)],
    ['first write on new primary', formatDurationMs(t.firstWriteMs)],
    ['drain', formatDurationMs(t.drainMs)],
    ['total RTO (runbook done)', formatDurationMs(t.rtoMs)],
    ['acknowledged rows', String(result.rows.acknowledged)],
    ['rows in new primary', String(result.rows.inNewPrimary)],
    ['recovered by drain', String(result.rows.recoveredByDrain)],
    ['re-sent by the workers (drain or sync loop)', String(result.rows.resentByWorkers)],
    ['lost', String(result.rows.lost)],
    ['duplicates', String(result.rows.duplicates)],
    ['append p50 / p99 / max', `${result.appendLatencyMs.p50.toFixed(2)} / ${result.appendLatencyMs.p99.toFixed(2)} / ${result.appendLatencyMs.max.toFixed(2)} ms`],
    ['longest gap between acks', formatDurationMs(result.maxAckGapMs)],
    ['runbook notifications', String(result.notifications)],
    ['verdict', result.ok ? 'PASS: nothing lost, nothing duplicated' : 'FAIL'],
  ];
  const summary = renderTable(
    [
      { header: 'figure', value: (r: [string, string]) => r[0] },
      { header: 'value', value: (r: [string, string]) => r[1] },
    ],
    figures,
  );
  const timeline = renderTable(
    [
      { header: 't (s)', value: (e: DrillEvent) => (e.atMs / 1000).toFixed(3), align: 'right' },
      { header: 'event', value: (e: DrillEvent) => e.name },
      { header: 'detail', value: (e: DrillEvent) => e.detail },
    ],
    result.timeline,
  );
  return `${summary}\n\nTimeline\n${timeline}`;
}

export interface DrillMedians {
  readonly runs: number;
  readonly passed: number;
  readonly detectionMs: number;
  readonly promotionMs: number;
  readonly firstWriteMs: number;
  readonly drainMs: number;
  readonly rtoMs: number;
  readonly lost: number;
  readonly duplicates: number;
}

export function summarizeRuns(results: readonly DrillResult[]): DrillMedians {
  const m = (pick: (r: DrillResult) => number) => median(results.map(pick));
  return {
    runs: results.length,
    passed: results.filter((r) => r.ok).length,
    detectionMs: m((r) => r.timings.detectionMs),
    promotionMs: m((r) => r.timings.promotionMs),
    firstWriteMs: m((r) => r.timings.firstWriteMs),
    drainMs: m((r) => r.timings.drainMs),
    rtoMs: m((r) => r.timings.rtoMs),
    lost: results.reduce((sum, r) => sum + r.rows.lost, 0),
    duplicates: results.reduce((sum, r) => sum + r.rows.duplicates, 0),
  };
}

export function renderRunsTable(results: readonly DrillResult[]): string {
  const medians = summarizeRuns(results);
  const rows = results.map((r, i) => ({ run: String(i + 1), r }));
  const body = renderTable(
    [
      { header: 'run', value: (x: (typeof rows)[number]) => x.run },
      { header: 'seed', value: (x) => x.r.seed, align: 'right' },
      { header: 'detect', value: (x) => formatDurationMs(x.r.timings.detectionMs), align: 'right' },
      { header: 'promote', value: (x) => formatDurationMs(x.r.timings.promotionMs), align: 'right' },
      { header: '1st write', value: (x) => formatDurationMs(x.r.timings.firstWriteMs), align: 'right' },
      { header: 'drain', value: (x) => formatDurationMs(x.r.timings.drainMs), align: 'right' },
      { header: 'RTO', value: (x) => formatDurationMs(x.r.timings.rtoMs), align: 'right' },
      { header: 'acked', value: (x) => x.r.rows.acknowledged, align: 'right' },
      { header: 'recovered', value: (x) => x.r.rows.recoveredByDrain, align: 'right' },
      { header: 'lost', value: (x) => x.r.rows.lost, align: 'right' },
      { header: 'dups', value: (x) => x.r.rows.duplicates, align: 'right' },
    ],
    rows,
  );
  const foot = `median over ${medians.runs} runs: detect ${formatDurationMs(medians.detectionMs)}, promote ${formatDurationMs(medians.promotionMs)}, first write ${formatDurationMs(medians.firstWriteMs)}, drain ${formatDurationMs(medians.drainMs)}, RTO ${formatDurationMs(medians.rtoMs)}; lost ${medians.lost}, duplicates ${medians.duplicates}; ${medians.passed}/${medians.runs} passed`;
  return `${body}\n${foot}`;
}
