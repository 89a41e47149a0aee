import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../src/core/stats.js';
import type { RunbookEvent } from '../../../src/core/runbook/index.js';
import { CRASH_POINTS } from '../../../src/cli/drill/faults/controller-crash.js';
import { FAULTS, faultByName } from '../../../src/cli/drill/faults/index.js';
import { drillIncidents, worstTimings, type RoundWithState } from '../../../src/cli/drill/incidents.js';
import { runDrill } from '../../../src/cli/drill/run-drill.js';
import { silentProgress } from '../../../src/cli/progress.js';

const drill = { replicas: 2, workers: 3, rate: 200, warmupMs: 4000, confirmMs: 300 };

describe('drill faults', () => {
  it('each has its own name and a summary, and the registry finds it', () => {
    const names = FAULTS.map((f) => f.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(['kill-primary', 'switchover', 'replica-lag', 'double-failover', 'kill-during-drain', 'controller-crash', 'partition', 'slack-down', 'disk-full', 'pause-primary', 'stale-replica', 'worker-down']);
    for (const f of FAULTS) {
      expect(f.summary.length).toBeGreaterThan(20);
      expect(faultByName(f.name)).toBe(f);
    }
    expect(() => faultByName('meteor')).toThrow(/--fault: unknown fault 'meteor'; expected one of kill-primary, switchover/);
  });

  it('a seed gives the same plan every time (JSON, for the report); other seeds give other plans where there is a choice', () => {
    for (const f of FAULTS) {
      const a = f.plan(seededRandom(7), drill);
      expect(f.plan(seededRandom(7), drill)).toEqual(a);
      expect(JSON.parse(JSON.stringify(a))).toEqual(a);
    }
    const crash = faultByName('controller-crash');
    const plans = Array.from({ length: 40 }, (_, seed) => JSON.stringify(crash.plan(seededRandom(seed), drill)));
    expect(new Set(plans).size).toBeGreaterThan(10);
  });

  it('controller-crash kills before, during and after the promotion across seeds', () => {
    const crash = faultByName('controller-crash');
    const when = new Set(Array.from({ length: 30 }, (_, seed) => (crash.plan(seededRandom(seed), drill) as { crashAt: { promotion: string } }).crashAt.promotion));
    expect(when).toEqual(new Set(['before', 'during', 'after']));
    expect(new Set(CRASH_POINTS.map((p) => p.promotion))).toEqual(new Set(['before', 'during', 'after']));
  });

  it('disk-full picks one of the drill\'s workers', () => {
    const disk = faultByName('disk-full');
    const workers = new Set(Array.from({ length: 30 }, (_, seed) => (disk.plan(seededRandom(seed), drill) as { worker: string }).worker));
    expect(workers).toEqual(new Set(['w1', 'w2', 'w3']));
  });

  it('refuses a fault that needs more replicas than given, before starting anything', async () => {
    await expect(
      runDrill({ ...drill, seed: 1, fault: 'double-failover', replicas: 1, jitterMs: 0, afterMs: 0, probeIntervalMs: 50, progress: silentProgress }),
    ).rejects.toThrow('--replicas: the double-failover fault needs at least 2 replicas, got 1');
  });
});

describe('drill incidents', () => {
  const at = (ms: number) => new Date(ms).toISOString();
  const event = (step: RunbookEvent['step'], phase: RunbookEvent['phase'], ms: number, figures: RunbookEvent['figures'] = {}): RunbookEvent => ({
    executionId: 'x',
    clusterId: 'c',
    mode: 'failover',
    step,
    phase,
    at: at(ms),
    figures,
  });
  const round = (n: number, incidentAt: number, outcome: RoundWithState['outcome'], events: RunbookEvent[], startedAt: number, endedAt: number): RoundWithState => ({
    round: n,
    request: { input: { mode: 'failover' } },
    outcome,
    error: null,
    oldPrimary: null,
    newPrimary: null,
    events,
    incidentAt,
    startedAt,
    endedAt,
    state: null,
    cause: `incident at ${incidentAt}`,
  });

  it('groups a killed runbook and its restart into one incident and measures from the fault', () => {
    const rounds = [
      round(1, 1000, 'crashed', [event('confirm', 'done', 1300), event('plan', 'done', 1400, { oldPrimary: 'pg-0', candidate: 'pg-1' }), event('waitWritable', 'done', 1600), event('drain', 'start', 1700)], 1050, 1750),
      round(2, 1000, 'succeeded', [event('plan', 'done', 2000, { oldPrimary: 'pg-0', candidate: 'pg-1' }), event('drain', 'done', 2500)], 1900, 3000),
    ];
    const incidents = drillIncidents(rounds, 0, (id) => (id === 'pg-1' ? 5433 : undefined), (port, after) => (port === 5433 && after === 1000 ? 1650 : null));
    expect(incidents).toEqual([
      {
        cause: 'incident at 1000',
        atMs: 1000,
        rounds: [1, 2],
        outcome: 'succeeded',
        oldPrimary: 'pg-0',
        newPrimary: 'pg-1',
        timings: { detectionMs: 300, promotionMs: 300, firstWriteMs: 650, drainMs: 800, rtoMs: 2000 },
      },
    ]);
  });

  it('a second fault is a second incident; the worst of each figure is reported; a failed incident has no RTO', () => {
    const rounds = [
      round(1, 1000, 'succeeded', [event('confirm', 'done', 1200), event('waitWritable', 'done', 1300)], 1000, 2000),
      round(2, 5000, 'failed', [event('confirm', 'done', 5900)], 5000, 6000),
    ];
    const incidents = drillIncidents(rounds, 0, () => undefined, () => null);
    expect(incidents.map((i) => i.timings.rtoMs)).toEqual([1000, null]);
    expect(worstTimings(incidents)).toEqual({ detectionMs: 900, promotionMs: 100, firstWriteMs: null, drainMs: null, rtoMs: 1000 });
  });

  it('an operator-started run (no confirm step) has no detection time', () => {
    const incidents = drillIncidents([round(1, 1000, 'succeeded', [event('waitWritable', 'done', 1500)], 1000, 2000)], 0, () => undefined, () => null);
    expect(incidents[0]!.timings.detectionMs).toBe(0);
  });
});
