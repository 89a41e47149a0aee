/**
 * One seed of each fault the lineage (issue 13) is for: the three that lost acknowledged rows when safety was
 * enforced once, by the controller. End to end: real cluster, real buffers, worker processes, the runbook.
 */
import { describe, expect, it } from 'vitest';
import { runDrill } from '../../src/cli/drill/run-drill.js';
import { expectNothingLost, nemesisNames as nemesis, smallDrill as small } from '../support/drill.js';

describe('lineage faults (one seed each)', () => {
  it('pause-primary: a stalled primary the controller cannot stop comes back with the workers\' sessions open; nothing it takes is counted as synced', async () => {
    const result = await runDrill({ ...small, fault: 'pause-primary', seed: 2 });
    expectNothingLost(result);
    expect(nemesis(result)).toEqual(['primary paused', 'primary resumed']);
    // The controller could not stop it: the failover went on with the old primary not isolated.
    const fence = result.timeline.find((e) => e.kind === 'runbook' && e.name === 'fence old primary warning');
    expect(fence?.detail).toContain('pg-0 is not isolated');
    expect(result.rounds.map((r) => r.outcome)).toEqual(['succeeded']);
  });

  it('stale-replica: the promoted primary dies before the rebuild; the forced failover to the replica that never followed it loses nothing', async () => {
    const result = await runDrill({ ...small, fault: 'stale-replica', seed: 1 });
    expectNothingLost(result);
    expect(result.rounds.map((r) => r.outcome)).toEqual(['succeeded', 'succeeded']);
    expect(result.incidents.map((i) => [i.oldPrimary, i.newPrimary])).toEqual([
      ['pg-0', 'pg-1'],
      ['pg-1', 'pg-2'],
    ]);
  });

  it('worker-down: a worker offline through the runbook is reported unconfirmed, re-sends by itself when back and confirms', async () => {
    const result = await runDrill({ ...small, fault: 'worker-down', seed: 2 });
    expectNothingLost(result);
    expect(result.checks.map((c) => c.name)).toEqual(['the runbook reported the worker unconfirmed', 'the worker confirmed the epoch once it was back']);
  });
});
