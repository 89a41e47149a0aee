/**
 * The nemesis battery: every fault × N seeds, one run after the other, and a report a team can be shown:
 * battery.json (a contract: docs/drill.md), battery.txt (the matrix) and battery.svg (per fault: pass/fail of
 * each run and the RTO spread).
 */
import { formatDurationMs } from '../../core/duration.js';
import { renderTable } from '../../core/format-table.js';
import { median } from '../../core/stats.js';
import type { Progress, StepPhase } from '../progress.js';
import { ms, type DrillResult } from './report.js';
import type { DrillOptions } from './run-drill.js';

export type DrillSettingsForBattery = Omit<DrillOptions, 'seed' | 'fault' | 'progress'>;

/** One run of the battery, as battery.json lists it. */
export interface BatteryRun {
  readonly fault: string;
  readonly seed: number;
  readonly ok: boolean;
  readonly failure: string | null;
  readonly plan: unknown;
  readonly rounds: readonly string[];
  readonly acknowledged: number;
  readonly lost: number | null;
  readonly duplicates: number | null;
  readonly recoveredByDrain: number;
  readonly refused: number;
  readonly firstWriteMs: number | null;
  readonly rtoMs: number | null;
  readonly appendP99Ms: number | null;
  readonly notificationsUndelivered: number;
  readonly durationMs: number;
}

export interface Spread {
  readonly p50: number | null;
  readonly max: number | null;
}

export interface BatteryFaultSummary {
  readonly fault: string;
  readonly runs: number;
  readonly passed: number;
  readonly seeds: readonly number[];
  readonly acknowledged: number;
  readonly lost: number;
  readonly duplicates: number;
  /** Runs that could not be counted (no writable primary at the end). */
  readonly uncounted: number;
  readonly firstWriteMs: Spread;
  readonly rtoMs: Spread & { readonly min: number | null };
  /** The worst run's append p99. */
  readonly appendP99Ms: number | null;
  readonly failures: readonly { readonly seed: number; readonly failure: string }[];
}

export interface BatteryReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly baseSeed: number;
  readonly runsPerFault: number;
  readonly settings: DrillSettingsForBattery;
  readonly totals: { readonly runs: number; readonly passed: number; readonly acknowledged: number; readonly lost: number; readonly duplicates: number };
  readonly faults: readonly BatteryFaultSummary[];
  readonly runs: readonly BatteryRun[];
  readonly ok: boolean;
}

export interface BatteryOptions {
  readonly faults: readonly string[];
  readonly runsPerFault: number;
  readonly baseSeed: number;
  readonly settings: DrillSettingsForBattery;
  /** One drill run (runDrill, or a stand-in in tests). */
  readonly runDrill: (options: DrillOptions) => Promise<DrillResult>;
  /** The live progress line, rewritten as the battery goes. */
  readonly line: (text: string) => void;
  /** Each finished run, with the drill's result when it completed (the CLI writes the report of a failed one). */
  readonly onRun?: (run: BatteryRun, result: DrillResult | undefined) => void;
  readonly now?: () => number;
}

export async function runBattery(options: BatteryOptions): Promise<BatteryReport> {
  const now = options.now ?? Date.now;
  const started = now();
  const total = options.faults.length * options.runsPerFault;
  const runs: BatteryRun[] = [];
  let index = 0;
  for (const fault of options.faults) {
    for (let i = 0; i < options.runsPerFault; i++) {
      index += 1;
      const seed = options.baseSeed + i;
      const runStarted = now();
      const passed = runs.filter((r) => r.ok).length;
      const head = `battery ${index}/${total} · ${fault} seed ${seed} · ${passed} passed, ${runs.length - passed} failed · ${formatDurationMs(now() - started)}`;
      options.line(head);
      const progress: Progress = { event: (phase: StepPhase, step: string) => options.line(`${head} · ${MARKS[phase]} ${step}`) };
      let result: DrillResult | undefined;
      let error: string | undefined;
      try {
        result = await options.runDrill({ ...options.settings, seed, fault, progress });
      } catch (e) {
        error = `the drill did not complete: ${(e as Error).message}`;
      }
      const run = result ? batteryRun(result, now() - runStarted) : failedRun(fault, seed, error!, now() - runStarted);
      runs.push(run);
      options.onRun?.(run, result);
    }
  }
  const faults = options.faults.map((f) => summarizeFault(f, runs.filter((r) => r.fault === f)));
  return {
    startedAt: new Date(started).toISOString(),
    finishedAt: new Date(now()).toISOString(),
    baseSeed: options.baseSeed,
    runsPerFault: options.runsPerFault,
    settings: options.settings,
    totals: {
      runs: runs.length,
      passed: runs.filter((r) => r.ok).length,
      acknowledged: runs.reduce((n, r) => n + r.acknowledged, 0),
      lost: runs.reduce((n, r) => n + (r.lost ?? 0), 0),
      duplicates: runs.reduce((n, r) => n + (r.duplicates ?? 0), 0),
    },
    faults,
    runs,
    ok: runs.every((r) => r.ok),
  };
}

const MARKS: Record<StepPhase, string> = { start: '▶', done: '✔', failed: '✖', info: '·' };

function batteryRun(r: DrillResult, durationMs: number): BatteryRun {
  return {
    fault: r.fault,
    seed: r.seed,
    ok: r.ok,
    failure: r.failure,
    plan: r.plan,
    rounds: r.rounds.map((x) => `${x.mode}${x.resumed ? ' (resumed)' : ''}: ${x.outcome}`),
    acknowledged: r.rows.acknowledged,
    lost: r.rows.lost,
    duplicates: r.rows.duplicates,
    recoveredByDrain: r.rows.recoveredByDrain,
    refused: r.rows.refused,
    firstWriteMs: r.timings.firstWriteMs,
    rtoMs: r.timings.rtoMs,
    appendP99Ms: Number.isFinite(r.appendLatencyMs.p99) ? r.appendLatencyMs.p99 : null,
    notificationsUndelivered: r.slack.undelivered,
    durationMs,
  };
}

function failedRun(fault: string, seed: number, failure: string, durationMs: number): BatteryRun {
  return {
    fault,
    seed,
    ok: false,
    failure,
    plan: null,
    rounds: [],
    acknowledged: 0,
    lost: null,
    duplicates: null,
    recoveredByDrain: 0,
    refused: 0,
    firstWriteMs: null,
    rtoMs: null,
    appendP99Ms: null,
    notificationsUndelivered: 0,
    durationMs,
  };
}

function spread(values: readonly (number | null)[]): Spread & { min: number | null } {
  const v = values.filter((x): x is number => x !== null && Number.isFinite(x));
  if (v.length === 0) return { p50: null, max: null, min: null };
  return { p50: median(v), max: Math.max(...v), min: Math.min(...v) };
}

export function summarizeFault(fault: string, runs: readonly BatteryRun[]): BatteryFaultSummary {
  const firstWrite = spread(runs.map((r) => r.firstWriteMs));
  const p99s = runs.map((r) => r.appendP99Ms).filter((x): x is number => x !== null);
  return {
    fault,
    runs: runs.length,
    passed: runs.filter((r) => r.ok).length,
    seeds: runs.map((r) => r.seed),
    acknowledged: runs.reduce((n, r) => n + r.acknowledged, 0),
    lost: runs.reduce((n, r) => n + (r.lost ?? 0), 0),
    duplicates: runs.reduce((n, r) => n + (r.duplicates ?? 0), 0),
    uncounted: runs.filter((r) => r.lost === null).length,
    firstWriteMs: { p50: firstWrite.p50, max: firstWrite.max },
    rtoMs: spread(runs.map((r) => r.rtoMs)),
    appendP99Ms: p99s.length === 0 ? null : Math.max(...p99s),
    failures: runs.filter((r) => !r.ok).map((r) => ({ seed: r.seed, failure: r.failure ?? 'failed' })),
  };
}

export function renderBatteryTable(report: BatteryReport): string {
  const p = (s: Spread) => `${ms(s.p50)} / ${ms(s.max)}`;
  const matrix = renderTable(
    [
      { header: 'fault', value: (f: BatteryFaultSummary) => f.fault },
      { header: 'passed', value: (f) => `${f.passed}/${f.runs}`, align: 'right' },
      { header: 'acked rows', value: (f) => f.acknowledged, align: 'right' },
      { header: 'lost', value: (f) => (f.uncounted > 0 ? `${f.lost} (+${f.uncounted} uncounted)` : f.lost), align: 'right' },
      { header: 'dups', value: (f) => f.duplicates, align: 'right' },
      { header: '1st write p50/max', value: (f) => p(f.firstWriteMs), align: 'right' },
      { header: 'runbook p50/max', value: (f) => p(f.rtoMs), align: 'right' },
      { header: 'append p99', value: (f) => (f.appendP99Ms === null ? '-' : `${f.appendP99Ms.toFixed(1)}ms`), align: 'right' },
      { header: 'seeds', value: (f) => seedRange(f.seeds) },
    ],
    report.faults,
  );
  const t = report.totals;
  const lines = [
    `Nemesis battery: ${t.passed}/${t.runs} runs passed · ${t.acknowledged} rows acknowledged · lost ${t.lost} · duplicates ${t.duplicates} · ${report.startedAt} → ${report.finishedAt}`,
    `settings: ${report.settings.workers} workers × ${report.settings.rate} rows/s, ${report.settings.replicas} replicas, confirm ${formatDurationMs(report.settings.confirmMs)}; runbook = fault → last runbook finished (worst incident of the run)`,
    '',
    matrix,
  ];
  const failures = report.faults.flatMap((f) => f.failures.map((x) => `- ${f.fault} seed ${x.seed}: ${x.failure}`));
  if (failures.length > 0) lines.push('', 'Failed runs', ...failures);
  return lines.join('\n');
}

function seedRange(seeds: readonly number[]): string {
  if (seeds.length === 0) return '-';
  const sorted = [...seeds].sort((a, b) => a - b);
  const contiguous = sorted.every((s, i) => i === 0 || s === sorted[i - 1]! + 1);
  return contiguous && sorted.length > 2 ? `${sorted[0]}..${sorted[sorted.length - 1]}` : sorted.join(',');
}
