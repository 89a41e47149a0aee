import { describe, expect, it } from 'vitest';
import { renderBatteryChart } from '../../../src/cli/drill/battery-chart.js';
import { renderBatteryTable, runBattery, type BatteryRun } from '../../../src/cli/drill/battery.js';
import type { DrillResult } from '../../../src/cli/drill/report.js';
import type { DrillOptions } from '../../../src/cli/drill/run-drill.js';
import { runInProcess } from '../cli/cli-harness.js';

const settings = { replicas: 2, workers: 3, rate: 200, warmupMs: 4000, jitterMs: 3000, afterMs: 2000, confirmMs: 300, probeIntervalMs: 50 };

/** A drill result with the figures the battery reads. */
function result(fault: string, seed: number, o: { ok?: boolean; lost?: number | null; rtoMs?: number | null; firstWriteMs?: number; p99?: number } = {}): DrillResult {
  const ok = o.ok ?? true;
  return {
    seed,
    fault,
    plan: { n: seed },
    workers: 3,
    ratePerWorker: 200,
    oldPrimary: 'pg-0',
    newPrimary: 'pg-1',
    forkPoint: null,
    timings: { detectionMs: 300, promotionMs: 100, firstWriteMs: o.firstWriteMs ?? 800, drainMs: 2000, rtoMs: o.rtoMs === undefined ? 5000 : o.rtoMs },
    incidents: [],
    rounds: [{ round: 1, mode: 'failover', triggeredBy: 'pg-0', forced: false, outcome: ok ? 'succeeded' : 'failed', error: null, resumed: false, startedAtMs: 0, endedAtMs: 1 }],
    rows: { acknowledged: 1000, inNewPrimary: 1000, lost: o.lost === undefined ? 0 : o.lost, duplicates: 0, recoveredByDrain: 3, resentByWorkers: 0, refused: 0, refusedButStored: 0 },
    appendLatencyMs: { p50: 1, p99: o.p99 ?? 2, max: 9 },
    maxAckGapMs: 100,
    notifications: 28,
    slack: { published: 28, delivered: 28, undelivered: 0, deadLetters: [], refusedCalls: {} },
    checks: [],
    failure: ok ? null : 'the last runbook failed: pg-1 is not running',
    timeline: [],
    series: { bucketMs: 250, acknowledged: [], committed: {} },
    ok,
  };
}

describe('runBattery', () => {
  it('runs every fault × N seeds in order, summarises each fault, and fails when any run failed (or did not complete)', async () => {
    const calls: string[] = [];
    const lines: string[] = [];
    const seen: BatteryRun[] = [];
    let t = 0;
    const report = await runBattery({
      faults: ['kill-primary', 'kill-during-drain'],
      runsPerFault: 3,
      baseSeed: 40,
      settings,
      now: () => (t += 1000),
      line: (text) => lines.push(text),
      onRun: (run) => seen.push(run),
      runDrill: async (o: DrillOptions) => {
        calls.push(`${o.fault}:${o.seed}`);
        o.progress.event('start', 'promote');
        if (o.fault === 'kill-primary') return result(o.fault, o.seed, { rtoMs: 1000 * (o.seed - 39), firstWriteMs: 100 * (o.seed - 39), p99: o.seed - 38 });
        if (o.seed === 41) throw new Error('cluster did not start');
        return result(o.fault, o.seed, { ok: false, lost: null, rtoMs: null });
      },
    });
    expect(calls).toEqual(['kill-primary:40', 'kill-primary:41', 'kill-primary:42', 'kill-during-drain:40', 'kill-during-drain:41', 'kill-during-drain:42']);
    expect(seen.map((r) => `${r.fault}:${r.seed}:${r.ok}`)).toEqual(['kill-primary:40:true', 'kill-primary:41:true', 'kill-primary:42:true', 'kill-during-drain:40:false', 'kill-during-drain:41:false', 'kill-during-drain:42:false']);
    expect(report.ok).toBe(false);
    expect(report.totals).toEqual({ runs: 6, passed: 3, acknowledged: 5000, lost: 0, duplicates: 0 });
    const [kill, drain] = report.faults;
    expect(kill).toMatchObject({ fault: 'kill-primary', runs: 3, passed: 3, seeds: [40, 41, 42], firstWriteMs: { p50: 200, max: 300 }, rtoMs: { p50: 2000, max: 3000, min: 1000 }, appendP99Ms: 4, failures: [] });
    expect(drain).toMatchObject({ passed: 0, uncounted: 3, rtoMs: { p50: null, max: null } });
    expect(drain!.failures).toEqual([
      { seed: 40, failure: 'the last runbook failed: pg-1 is not running' },
      { seed: 41, failure: 'the drill did not complete: cluster did not start' },
      { seed: 42, failure: 'the last runbook failed: pg-1 is not running' },
    ]);
    expect(lines.filter((l) => l.startsWith('battery 4/6'))).toEqual(['battery 4/6 · kill-during-drain seed 40 · 3 passed, 0 failed · 11.0s', 'battery 4/6 · kill-during-drain seed 40 · 3 passed, 0 failed · 11.0s · ▶ promote']);
  });

  it('renders the matrix, the failed runs, and a chart with a square per run', async () => {
    const report = await runBattery({
      faults: ['partition'],
      runsPerFault: 2,
      baseSeed: 1,
      settings,
      line: () => undefined,
      runDrill: async (o) => result(o.fault, o.seed, o.seed === 2 ? { ok: false } : {}),
    });
    const table = renderBatteryTable(report);
    expect(table).toMatch(/^Nemesis battery: 1\/2 runs passed/);
    expect(table).toMatch(/fault\s+passed\s+acked rows\s+lost\s+dups\s+1st write p50\/max\s+runbook p50\/max\s+append p99\s+seeds/);
    expect(table).toMatch(/partition\s+1\/2\s+2000\s+0\s+0\s+800ms \/ 800ms\s+5.00s \/ 5.00s\s+2.0ms\s+1,2/);
    expect(table).toContain('- partition seed 2: the last runbook failed: pg-1 is not running');
    const svg = renderBatteryChart(report);
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<rect x="[\d.]+" y="[\d.-]+" width="\d+" height="\d+" fill="#2da44e"><title>seed 1: passed/g)).toHaveLength(1);
    expect(svg.match(/fill="#cf222e"><title>seed 2: the last runbook failed/g)).toHaveLength(1);
  });
});

describe('rds-failover drill flags', () => {
  it('--faults names an unknown fault and lists the known ones; nothing runs', async () => {
    const run = await runInProcess(['drill', '--battery', '--faults', 'kill-primary,meteor']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--faults: unknown fault 'meteor'; expected a comma-separated list of kill-primary, switchover/);
  });

  it('--fault does not go with --battery, --faults only with --battery', async () => {
    const both = await runInProcess(['drill', '--battery', '--fault', 'partition']);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--fault does not go with --battery: use --faults');
    const alone = await runInProcess(['drill', '--faults', 'partition']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--faults goes with --battery');
  });

  it('a fault the settings cannot run is refused before anything starts (exit 2)', async () => {
    const run = await runInProcess(['drill', '--battery', '--faults', 'kill-primary,double-failover', '--replicas', '1']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--replicas: the double-failover fault needs at least 2 replicas, got 1');
  });

  it('--fault lists every fault as a choice', async () => {
    const run = await runInProcess(['drill', '--fault', 'meteor']);
    expect(run.code).toBe(2);
    for (const name of ['kill-primary', 'double-failover', 'kill-during-drain', 'controller-crash', 'partition', 'slack-down', 'disk-full']) expect(run.stderr).toContain(name);
  });
});
