/** The drill's result (a contract: docs/drill.md) and its tables for people. */
import { formatDurationMs } from '../../core/duration.js';
import { renderTable } from '../../core/format-table.js';
import { median } from '../../core/stats.js';
import type { DeadLetter } from '../../slack/queued-notifier.js';
import type { FaultCheck } from './faults/fault.js';

export type DrillEventKind = 'drill' | 'nemesis' | 'runbook';

export interface DrillEvent {
  /** Milliseconds since the drill's load started. */
  readonly atMs: number;
  readonly kind: DrillEventKind;
  readonly name: string;
  readonly detail?: string;
}

/** Milliseconds; null when the run never got there (e.g. no promotion). */
export interface DrillTimings {
  /** Fault injected → failure confirmed by the controller (0 for an operator-started run: a switchover). */
  readonly detectionMs: number | null;
  /** Failure confirmed → candidate promoted and writable. */
  readonly promotionMs: number | null;
  /** Fault injected → first buffered row committed on the new primary. */
  readonly firstWriteMs: number | null;
  /** Drain step: start → every worker's summary in. */
  readonly drainMs: number | null;
  /** Fault injected → runbook finished (verified, replicas rebuilt). */
  readonly rtoMs: number | null;
}

/** One incident: a nemesis action that needs a failover, and the runbook runs that answered it. */
export interface DrillIncident {
  /** The nemesis event that started it. */
  readonly cause: string;
  readonly atMs: number;
  /** Rounds (1-based) that ran for it: more than one when a runbook was killed and started again. */
  readonly rounds: readonly number[];
  readonly outcome: string;
  readonly oldPrimary: string | null;
  readonly newPrimary: string | null;
  readonly timings: DrillTimings;
}

export interface DrillRound {
  readonly round: number;
  readonly mode: string;
  readonly triggeredBy: string | null;
  readonly forced: boolean;
  readonly outcome: string;
  readonly error: { readonly name: string; readonly message: string } | null;
  /** Whether it resumed an earlier execution from the journal. */
  readonly resumed: boolean;
  readonly startedAtMs: number;
  readonly endedAtMs: number;
}

export interface DrillRows {
  readonly acknowledged: number;
  /** Rows on the node counted (countedOn); null when no node could be counted. */
  readonly inNewPrimary: number | null;
  /** Acknowledged ids missing from the counted node: must be 0. */
  readonly lost: number | null;
  /** Rows stored more than once for one id: must be 0. */
  readonly duplicates: number | null;
  /** Rows the old primary committed that never replicated, brought back by the drains. */
  readonly recoveredByDrain: number;
  /**
   * Rows the workers had synced outside the new epochs' histories and sent again, by a drain or by their own sync
   * loop (whichever met the new epoch first), as their confirmations in rds_failover.worker_epochs say.
   */
  readonly resentByWorkers: number;
  /** Appends the buffers refused (full volume): never acknowledged, so never counted as lost. */
  readonly refused: number;
  /** Refused ids that are on the counted node anyway: must be 0 (a refusal stores nothing). */
  readonly refusedButStored: number;
}

export interface DrillNotifications {
  /** Notifications the runbooks published (what Slack would receive). */
  readonly published: number;
  readonly delivered: number;
  /** Given up after the webhook client's retries, or still queued when the drill ended. */
  readonly undelivered: number;
  readonly deadLetters: readonly DeadLetter[];
  /** Calls the Slack stand-in refused, by HTTP status. */
  readonly refusedCalls: Readonly<Record<string, number>>;
}

export interface DrillResult {
  readonly seed: number;
  readonly fault: string;
  /** The fault's seeded choices. */
  readonly plan: unknown;
  readonly workers: number;
  readonly ratePerWorker: number;
  /** The primary when the drill started, and the node counted at the end (the final writer). */
  readonly oldPrimary: string;
  readonly newPrimary: string | null;
  readonly forkPoint: { readonly timelineId: number; readonly lsn: string } | null;
  /** The worst of each figure over the incidents (one incident for most faults). */
  readonly timings: DrillTimings;
  readonly incidents: readonly DrillIncident[];
  readonly rounds: readonly DrillRound[];
  readonly rows: DrillRows;
  readonly appendLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** Longest time any worker went without acknowledging a write while load ran. */
  readonly maxAckGapMs: number;
  /** Notifications published (kept as a number for older readers; see slack). */
  readonly notifications: number;
  readonly slack: DrillNotifications;
  /** The fault's own checks. */
  readonly checks: readonly FaultCheck[];
  /** Why the run failed, null when it passed. */
  readonly failure: string | null;
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

/** Why a run failed, or null: rows lost or duplicated, an acknowledged append refused yet stored, the last runbook not succeeding, a fault check. */
export function drillFailure(rows: DrillRows, lastOutcome: { outcome: string; error: { message: string } | null } | undefined, checks: readonly FaultCheck[]): string | null {
  const reasons: string[] = [];
  if (lastOutcome && lastOutcome.outcome !== 'succeeded') reasons.push(`the last runbook ${lastOutcome.outcome}${lastOutcome.error ? `: ${lastOutcome.error.message}` : ''}`);
  if (rows.lost === null) reasons.push('no node could be counted (no writable primary at the end)');
  else if (rows.lost > 0) reasons.push(`${rows.lost} acknowledged rows lost`);
  if (rows.duplicates !== null && rows.duplicates > 0) reasons.push(`${rows.duplicates} duplicates`);
  if (rows.refusedButStored > 0) reasons.push(`${rows.refusedButStored} refused appends were stored anyway`);
  for (const check of checks) if (!check.ok) reasons.push(`${check.name}: ${check.detail}`);
  return reasons.length === 0 ? null : reasons.join('; ');
}

/** A duration for tables: '-' when not measured. */
export function ms(value: number | null): string {
  return value === null || !Number.isFinite(value) ? '-' : formatDurationMs(value);
}

export function renderDrillTable(result: DrillResult): string {
  const t = result.timings;
  const r = result.rows;
  const n = result.slack;
  const figures: [string, string][] = [
    ['fault', result.fault],
    ['seed', String(result.seed)],
    ['plan', JSON.stringify(result.plan)],
    ['workers × rate', `${result.workers} × ${result.ratePerWorker}/s`],
    ['old → new primary', `${result.oldPrimary} → ${result.newPrimary ?? '(none)'}`],
    ['fork point', result.forkPoint ? `timeline ${result.forkPoint.timelineId} @ ${result.forkPoint.lsn}` : '-'],
    ['runbooks', result.rounds.map((x) => `#${x.round} ${x.mode}${x.resumed ? ' (resumed)' : ''}: ${x.outcome}`).join(', ')],
    ['detection', ms(t.detectionMs)],
    ['promotion', ms(t.promotionMs)],
    ['first write on new primary', ms(t.firstWriteMs)],
    ['drain', ms(t.drainMs)],
    ['total RTO (runbook done)', ms(t.rtoMs)],
    ['acknowledged rows', String(r.acknowledged)],
    ['rows in new primary', r.inNewPrimary === null ? '- (not counted)' : String(r.inNewPrimary)],
    ['recovered by drain', String(r.recoveredByDrain)],
    ['re-sent by the workers (drain or sync loop)', String(r.resentByWorkers)],
    ['lost', r.lost === null ? '-' : String(r.lost)],
    ['duplicates', r.duplicates === null ? '-' : String(r.duplicates)],
    ...(r.refused > 0 ? ([['appends refused (buffer full)', `${r.refused} (stored anyway: ${r.refusedButStored})`]] as [string, string][]) : []),
    ['append p50 / p99 / max', `${result.appendLatencyMs.p50.toFixed(2)} / ${result.appendLatencyMs.p99.toFixed(2)} / ${result.appendLatencyMs.max.toFixed(2)} ms`],
    ['longest gap between acks', formatDurationMs(result.maxAckGapMs)],
    ['runbook notifications', `${n.published} published, ${n.delivered} delivered, ${n.undelivered} undelivered`],
    ...result.checks.map((c): [string, string] => [`check: ${c.name}`, `${c.ok ? 'ok' : 'FAILED'} — ${c.detail}`]),
    ['verdict', result.ok ? 'PASS: nothing lost, nothing duplicated' : `FAIL: ${result.failure}`],
  ];
  const summary = renderTable(
    [
      { header: 'figure', value: (x: [string, string]) => x[0] },
      { header: 'value', value: (x: [string, string]) => x[1] },
    ],
    figures,
  );
  const timeline = renderTable(
    [
      { header: 't (s)', value: (e: DrillEvent) => (e.atMs / 1000).toFixed(3), align: 'right' },
      { header: 'kind', value: (e: DrillEvent) => e.kind },
      { header: 'event', value: (e: DrillEvent) => e.name },
      { header: 'detail', value: (e: DrillEvent) => e.detail },
    ],
    result.timeline,
  );
  const dead = n.deadLetters.length > 0 ? `\n\nUndelivered notifications\n${n.deadLetters.map((d) => `- ${d.title}: ${d.error}`).join('\n')}` : '';
  return `${summary}${dead}\n\nTimeline\n${timeline}`;
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

/** The finite values of a figure over runs. */
export function figures(results: readonly DrillResult[], pick: (r: DrillResult) => number | null): number[] {
  return results.map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
}

export function summarizeRuns(results: readonly DrillResult[]): DrillMedians {
  const m = (pick: (r: DrillResult) => number | null) => median(figures(results, pick));
  return {
    runs: results.length,
    passed: results.filter((r) => r.ok).length,
    detectionMs: m((r) => r.timings.detectionMs),
    promotionMs: m((r) => r.timings.promotionMs),
    firstWriteMs: m((r) => r.timings.firstWriteMs),
    drainMs: m((r) => r.timings.drainMs),
    rtoMs: m((r) => r.timings.rtoMs),
    lost: results.reduce((sum, r) => sum + (r.rows.lost ?? 0), 0),
    duplicates: results.reduce((sum, r) => sum + (r.rows.duplicates ?? 0), 0),
  };
}

export function renderRunsTable(results: readonly DrillResult[]): string {
  const medians = summarizeRuns(results);
  const rows = results.map((r, i) => ({ run: String(i + 1), r }));
  const body = renderTable(
    [
      { header: 'run', value: (x: (typeof rows)[number]) => x.run },
      { header: 'seed', value: (x) => x.r.seed, align: 'right' },
      { header: 'detect', value: (x) => ms(x.r.timings.detectionMs), align: 'right' },
      { header: 'promote', value: (x) => ms(x.r.timings.promotionMs), align: 'right' },
      { header: '1st write', value: (x) => ms(x.r.timings.firstWriteMs), align: 'right' },
      { header: 'drain', value: (x) => ms(x.r.timings.drainMs), align: 'right' },
      { header: 'RTO', value: (x) => ms(x.r.timings.rtoMs), align: 'right' },
      { header: 'acked', value: (x) => x.r.rows.acknowledged, align: 'right' },
      { header: 'recovered', value: (x) => x.r.rows.recoveredByDrain, align: 'right' },
      { header: 'lost', value: (x) => x.r.rows.lost ?? '-', align: 'right' },
      { header: 'dups', value: (x) => x.r.rows.duplicates ?? '-', align: 'right' },
      { header: 'verdict', value: (x) => (x.r.ok ? 'pass' : `FAIL: ${x.r.failure}`) },
    ],
    rows,
  );
  const foot = `median over ${medians.runs} runs: detect ${ms(medians.detectionMs)}, promote ${ms(medians.promotionMs)}, first write ${ms(medians.firstWriteMs)}, drain ${ms(medians.drainMs)}, RTO ${ms(medians.rtoMs)}; lost ${medians.lost}, duplicates ${medians.duplicates}; ${medians.passed}/${medians.runs} passed`;
  return `${body}\n${foot}`;
}
