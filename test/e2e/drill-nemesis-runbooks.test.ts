/**
 * One seed of each nemesis fault around the runbook: a second failure, a dying controller, end to end: real cluster,
 * real buffers, worker processes, the runbook. Every run must lose nothing and duplicate nothing; each fault also
 * checks what it is about.
 */
import { describe, expect, it } from 'vitest';
import { runDrill } from '../../src/cli/drill/run-drill.js';
import { renderDrillChart } from '../../src/cli/drill/chart.js';
import { expectNothingLost, nemesisNames as nemesis, smallDrill as small } from '../support/drill.js';

describe('nemesis faults around the runbook (one seed each)', () => {
  it('double-failover: the new primary is killed after the first runbook; a second one fails over again', async () => {
    const result = await runDrill({ ...small, fault: 'double-failover', seed: 3 });
    expectNothingLost(result);
    expect(result.rounds.map((r) => r.outcome)).toEqual(['succeeded', 'succeeded']);
    expect(result.incidents.map((i) => [i.oldPrimary, i.newPrimary])).toEqual([
      ['pg-0', 'pg-1'],
      ['pg-1', 'pg-2'],
    ]);
    expect(nemesis(result)).toEqual(['primary killed', 'new primary killed']);
    expect(renderDrillChart(result)).toContain('⚡ new primary killed');
  });

  it('kill-during-drain: the promoted primary dies while the drain runs; the failovers after it (nobody edits the journal) finish', async () => {
    const result = await runDrill({ ...small, fault: 'kill-during-drain', seed: 1 });
    expect(nemesis(result).slice(0, 2)).toEqual(['primary killed', 'promoted primary killed during the drain']);
    // The monitor's failover is refused by the lag guard (the last replica never followed the promoted primary);
    // the operator forces it, as the refusal says. How the first runbook ends is the runbook's business.
    expect(result.rounds.at(-1)!.outcome).toBe('succeeded');
    expect(result.incidents.at(-1)!.newPrimary).toBe('pg-2');
    expectNothingLost(result);
  });

  it('controller-crash: the runbook process is SIGKILLed at a step and started again; it resumes, promotes once, finishes', async () => {
    const result = await runDrill({ ...small, fault: 'controller-crash', seed: 6 });
    expectNothingLost(result);
    expect(result.rounds.map((r) => r.outcome)).toEqual(['crashed', 'succeeded']);
    expect(result.checks.map((c) => c.name)).toEqual(['controller killed', 'resumed from the journal', 'promoted once']);
  });
});
