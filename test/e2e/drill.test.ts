import { describe, expect, it } from 'vitest';
import { silentProgress } from '../../src/cli/progress.js';
import { runDrill, type DrillOptions } from '../../src/cli/drill/run-drill.js';
import { renderDrillChart } from '../../src/cli/drill/chart.js';
import { renderDrillTable } from '../../src/cli/drill/report.js';

const small: Omit<DrillOptions, 'fault' | 'seed'> = {
  replicas: 2,
  workers: 2,
  rate: 100,
  warmupMs: 1500,
  jitterMs: 500,
  afterMs: 500,
  confirmMs: 300,
  probeIntervalMs: 50,
  progress: silentProgress,
};

describe('failover drill (real cluster, real buffers, worker processes)', () => {
  it('kill -9 of the primary: a replica is promoted, every acknowledged row is on it exactly once', async () => {
    const result = await runDrill({ ...small, fault: 'kill-primary', seed: 7 });
    expect(result.ok).toBe(true);
    expect(result.rows.lost).toBe(0);
    expect(result.rows.duplicates).toBe(0);
    expect(result.rows.acknowledged).toBeGreaterThan(200);
    expect(result.rows.inNewPrimary).toBe(result.rows.acknowledged);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
    expect(result.forkPoint?.timelineId).toBe(1);
    expect(result.timings.detectionMs).toBeGreaterThanOrEqual(small.confirmMs);
    expect(result.timings.firstWriteMs).toBeGreaterThan(0);
    expect(result.timeline.map((e) => e.name)).toEqual(expect.arrayContaining(['primary killed', 'promote done', 'repoint writer done', 'drain workers done']));
    expect(renderDrillTable(result)).toContain('PASS');
    expect(renderDrillChart(result)).toMatch(/^<svg[\s\S]*committed on /);
  });

  it('replica-lag: the promoted replica is behind, and the drain brings back what it never received', async () => {
    const result = await runDrill({ ...small, fault: 'replica-lag', seed: 11 });
    expect(result.rows.lost).toBe(0);
    expect(result.rows.duplicates).toBe(0);
    // Rows the old primary acknowledged but never replicated to the new one: re-sent by the workers (by the drain, or
    // by their own sync loop, which met the new epoch first), not lost.
    expect(result.rows.resentByWorkers).toBeGreaterThan(0);
    expect(result.ok).toBe(true);
  });

  it('switchover: the old primary is fenced for writes first, nothing to recover, nothing lost', async () => {
    const result = await runDrill({ ...small, fault: 'switchover', seed: 5 });
    expect(result.ok).toBe(true);
    expect(result.rows.lost).toBe(0);
    expect(result.timings.detectionMs).toBe(0);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
  });
});
