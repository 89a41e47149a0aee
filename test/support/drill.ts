/** What the drill's end-to-end tests share: a small, quick drill and the checks every run must pass. */
import { expect } from 'vitest';
import type { DrillResult } from '../../src/cli/drill/report.js';
import type { DrillOptions } from '../../src/cli/drill/run-drill.js';
import { silentProgress } from '../../src/cli/progress.js';

export const smallDrill: Omit<DrillOptions, 'fault' | 'seed'> = {
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

/** Nothing lost, nothing duplicated, every fault check passed: the run's verdict is PASS. */
export function expectNothingLost(result: DrillResult): void {
  expect(result.failure).toBeNull();
  expect(result.rows.lost).toBe(0);
  expect(result.rows.duplicates).toBe(0);
  expect(result.rows.inNewPrimary).toBe(result.rows.acknowledged);
  expect(result.checks.filter((c) => !c.ok)).toEqual([]);
  expect(result.ok).toBe(true);
}

/** The nemesis events of a run, in order. */
export function nemesisNames(result: DrillResult): string[] {
  return result.timeline.filter((e) => e.kind === 'nemesis').map((e) => e.name);
}
