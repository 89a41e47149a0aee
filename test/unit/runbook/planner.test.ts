import { describe, expect, it } from 'vitest';
import { planRunbook, type PlannerInput } from '../../../src/core/runbook/planner.js';
import type { PlanOutcome, RunbookPlan } from '../../../src/core/runbook/plan-types.js';
import type { Epoch } from '../../../src/core/lineage.js';
import { down, node, primaryProbe, replicaProbe, streaming, topology } from '../../support/probes.js';

const MiB = 1024 * 1024;
const NOW = '2024-01-01T00:00:10.000Z';

function plan(overrides: Partial<PlannerInput>): PlanOutcome {
  return planRunbook({
    mode: 'failover',
    topology: topology([node('pg-0', 'primary'), node('pg-1', 'replica'), node('pg-2', 'replica')]),
    probes: [],
    maxLagOnFailoverBytes: MiB,
    now: NOW,
    epochId: 'e0000000-0000-4000-8000-000000000000',
    ...overrides,
  });
}

function expectPlan(outcome: PlanOutcome): RunbookPlan {
  if (!outcome.ok) throw new Error(`expected a plan, got refusal ${outcome.refusal.code}: ${outcome.refusal.reason}`);
  return outcome.plan;
}

function expectRefusal(outcome: PlanOutcome, code: string): string {
  if (outcome.ok) throw new Error(`expected refusal ${code}, got a plan promoting ${outcome.plan.candidateId}`);
  expect(outcome.refusal.code).toBe(code);
  return outcome.refusal.reason;
}

describe('planRunbook: failover', () => {
  it('promotes the replica with the highest replay LSN and records the planned fork point', () => {
    const p = expectPlan(plan({ probes: [down('pg-0'), replicaProbe('pg-1', '0/3000100'), replicaProbe('pg-2', '0/3000200')] }));
    expect(p.candidateId).toBe('pg-2');
    expect(p.oldPrimaryId).toBe('pg-0');
    expect(p.plannedForkPoint).toEqual({ timelineId: 1, lsn: '0/3000200' });
    expect(p.rebuildReplicaIds).toEqual(['pg-1']);
    expect(p.referenceSource).toBe('replicas');
    expect(p.referenceLsn).toBe('0/3000200');
    expect(p.lagBytes).toBe(0);
    expect(p.forced).toBe(false);
    expect(p.steps[0]).toBe('fence');
    expect(p.steps).toContain('forkPoint');
    expect(p.risks.join(' ')).toMatch(/old primary did not answer/);
  });

  it('compares LSNs numerically, not as strings (1/0 beats 0/FFFFFFFF)', () => {
    const p = expectPlan(plan({ probes: [down('pg-0'), replicaProbe('pg-1', '0/FFFFFFFF'), replicaProbe('pg-2', '1/0')], maxLagOnFailoverBytes: 10 }));
    expect(p.candidateId).toBe('pg-2');
  });

  it('breaks LSN ties by priority (lower wins), then by node id', () => {
    const topo = topology([node('pg-0', 'primary'), node('pg-1', 'replica', { priority: 50 }), node('pg-2', 'replica', { priority: 10 })]);
    const tied = [down('pg-0'), replicaProbe('pg-1', '0/5000000'), replicaProbe('pg-2', '0/5000000')];
    expect(expectPlan(plan({ topology: topo, probes: tied })).candidateId).toBe('pg-2');

    const samePriority = topology([node('pg-0', 'primary'), node('pg-2', 'replica'), node('pg-1', 'replica')]);
    expect(expectPlan(plan({ topology: samePriority, probes: tied })).candidateId).toBe('pg-1');
  });

  it('a higher LSN wins over a better priority', () => {
    const topo = topology([node('pg-0', 'primary'), node('pg-1', 'replica', { priority: 1 }), node('pg-2', 'replica', { priority: 99 })]);
    const p = expectPlan(plan({ topology: topo, probes: [down('pg-0'), replicaProbe('pg-1', '0/5000000'), replicaProbe('pg-2', '0/5000010')] }));
    expect(p.candidateId).toBe('pg-2');
  });

  it('refuses while the primary answers and accepts writes', () => {
    const reason = expectRefusal(
      plan({ probes: [primaryProbe('pg-0', '0/3000000'), replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/3000000')] }),
      'primary-healthy',
    );
    expect(reason).toMatch(/pg-0 answers and accepts writes.*switchover/);
  });

  it('proceeds when the primary answers but is read-only (already fenced)', () => {
    const p = expectPlan(
      plan({ probes: [primaryProbe('pg-0', '0/3000000', { acceptsWrites: false }), replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/2FFFFF0')] }),
    );
    expect(p.candidateId).toBe('pg-1');
    expect(p.referenceSource).toBe('primary');
    expect(p.risks).toEqual([]);
  });

  it('excludes nofailover, unreachable, paused-elsewhere-timeline replicas with reasons', () => {
    const topo = topology([
      node('pg-0', 'primary'),
      node('pg-1', 'replica', { noFailover: true }),
      node('pg-2', 'replica'),
      node('pg-3', 'replica'),
      node('pg-4', 'replica'),
    ]);
    const p = expectPlan(
      plan({
        topology: topo,
        probes: [
          down('pg-0'),
          replicaProbe('pg-1', '0/9000000'),
          down('pg-2', 'timeout'),
          replicaProbe('pg-3', '0/8000000', { timelineId: 1 }),
          replicaProbe('pg-4', '0/8000000', { timelineId: 2 }),
        ],
        maxLagOnFailoverBytes: 64 * MiB,
      }),
    );
    // With the primary down, the cluster's timeline is the highest one a replica reports.
    const byId = Object.fromEntries(p.candidates.map((c) => [c.nodeId, c]));
    expect(byId['pg-1']!.eligible).toBe(false);
    expect(byId['pg-1']!.reasons).toContain('tagged nofailover');
    expect(byId['pg-2']!.eligible).toBe(false);
    expect(byId['pg-2']!.reasons[0]).toBe('unreachable: timeout');
    expect(byId['pg-3']!.eligible).toBe(false);
    expect(byId['pg-3']!.reasons[0]).toBe('on timeline 1, the cluster is on timeline 2');
    expect(p.candidateId).toBe('pg-4');
  });

  it('never promotes a nofailover replica, even the most advanced one', () => {
    const topo = topology([node('pg-0', 'primary'), node('pg-1', 'replica', { noFailover: true }), node('pg-2', 'replica')]);
    const p = expectPlan(plan({ topology: topo, probes: [down('pg-0'), replicaProbe('pg-1', '0/3000900'), replicaProbe('pg-2', '0/3000800')] }));
    expect(p.candidateId).toBe('pg-2');
  });

  it('refuses with every replica reason when no replica can be promoted', () => {
    const topo = topology([node('pg-0', 'primary'), node('pg-1', 'replica', { noFailover: true }), node('pg-2', 'replica')]);
    const reason = expectRefusal(plan({ topology: topo, probes: [down('pg-0'), replicaProbe('pg-1', '0/3000000'), down('pg-2', 'no route')] }), 'no-candidate');
    expect(reason).toBe('no replica can be promoted (pg-1: tagged nofailover | pg-2: unreachable: no route)');
  });

  it('refuses a cluster without replicas', () => {
    const reason = expectRefusal(plan({ topology: topology([node('pg-0', 'primary')]), probes: [down('pg-0')] }), 'no-candidate');
    expect(reason).toMatch(/no replicas/);
  });

  it('lag guard: refuses a candidate further behind than maxLagOnFailover, and says force overrides it', () => {
    const probes = [primaryProbe('pg-0', '0/5000000', { acceptsWrites: false }), replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/2000000')];
    const reason = expectRefusal(plan({ probes, maxLagOnFailoverBytes: MiB }), 'lag-guard');
    expect(reason).toBe(`pg-1 is ${0x2000000} bytes behind the last known primary position 0/5000000 (maxLagOnFailover ${MiB}); re-run with force to promote it anyway`);
  });

  it('force overrides the lag guard, picks the best replica and says what it risks', () => {
    const probes = [primaryProbe('pg-0', '0/5000000', { acceptsWrites: false }), replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/2000000')];
    const p = expectPlan(plan({ probes, force: true }));
    expect(p.candidateId).toBe('pg-1');
    expect(p.forced).toBe(true);
    expect(p.lagBytes).toBe(0x2000000);
    expect(p.risks[0]).toBe(
      'forced past the lag guard: pg-1 is 33554432 bytes behind the last known primary position 0/5000000; transactions the lost primary committed that ' +
        'pg-1 never replayed are lost unless they were written through a worker buffer (the workers re-send those)',
    );
  });

  describe('by lineage', () => {
    const epoch = (id: string, parentId: string | null, generation: number): Epoch => ({
      id,
      parentId,
      generation,
      forkLsn: parentId ? '0/2000000' : null,
      timelineId: generation,
      nodeId: `pg-${generation - 1}`,
      executionId: null,
      createdAt: NOW,
    });
    const root = epoch('00000000-0000-4000-8000-000000000001', null, 1);
    const promoted = epoch('00000000-0000-4000-8000-000000000002', root.id, 2);
    // pg-0 (the promoted primary, on `promoted`) is lost; pg-2 was never rebuilt from it and is still on the root.
    const probes = [down('pg-0'), replicaProbe('pg-1', '0/3000000', { timelineId: 2 }), replicaProbe('pg-2', '0/3800000')];

    it('a candidate on another epoch than the lost primary is behind by all of it, whatever its LSN says', () => {
      const lineage = { epochs: [root, promoted], heads: { 'pg-1': promoted.id, 'pg-2': root.id } };
      const outcome = plan({ probes: [down('pg-0'), replicaProbe('pg-2', '0/3800000')], lineage, topology: topology([node('pg-0', 'primary'), node('pg-2', 'replica')]) });
      const reason = expectRefusal(outcome, 'lag-guard');
      expect(reason).toBe(
        "pg-2 is not on the lost primary's history (on epoch 00000000 (generation 1, pg-0), not on the lost primary's epoch 00000000 (generation 2, pg-1): " +
          'behind by everything written since their histories parted) (maxLagOnFailover 1048576); re-run with force to promote it anyway',
      );
      if (outcome.ok) return;
      expect(outcome.candidates[0]).toMatchObject({ nodeId: 'pg-2', epochId: root.id, eligible: true, withinLagGuard: false, lagBytes: null });
    });

    it('prefers the replica on the lost primary\'s epoch over one further ahead on an older history', () => {
      const lineage = { epochs: [root, promoted], heads: { 'pg-1': promoted.id, 'pg-2': root.id } };
      const p = expectPlan(plan({ probes, lineage, topology: topology([node('pg-0', 'primary'), node('pg-1', 'replica'), node('pg-2', 'replica')]) }));
      expect(p.candidateId).toBe('pg-1');
      expect(p.forced).toBe(false);
      expect(p.candidates.find((c) => c.nodeId === 'pg-2')?.reasons).toContain('on timeline 1, the cluster is on timeline 2');
    });

    it('forced, the plan says what it risks; without lineage (a node that cannot be read) nothing changes', () => {
      const lineage = { epochs: [root, promoted], heads: { 'pg-2': root.id } };
      const forced = expectPlan(plan({ probes: [down('pg-0'), replicaProbe('pg-2', '0/3800000')], lineage, force: true, topology: topology([node('pg-0', 'primary'), node('pg-2', 'replica')]) }));
      expect(forced.risks[0]).toMatch(/^forced past the lag guard: pg-2 is not on the lost primary's history/);
      const unknown = expectPlan(plan({ probes: [down('pg-0'), replicaProbe('pg-2', '0/3800000')], lineage: { ...lineage, heads: { 'pg-2': null } }, topology: topology([node('pg-0', 'primary'), node('pg-2', 'replica')]) }));
      expect(unknown.forced).toBe(false);
      expect(unknown.epochId).toBe('e0000000-0000-4000-8000-000000000000');
    });
  });

  it('force does not override anything but the lag guard', () => {
    const topo = topology([node('pg-0', 'primary'), node('pg-1', 'replica', { noFailover: true })]);
    expectRefusal(plan({ topology: topo, probes: [down('pg-0'), replicaProbe('pg-1', '0/3000000')], force: true }), 'no-candidate');
    expectRefusal(
      plan({ probes: [primaryProbe('pg-0', '0/3000000'), replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/3000000')], force: true }),
      'primary-healthy',
    );
  });

  it('an explicit candidate is honoured even when another replica is further ahead, with the risk stated', () => {
    const p = expectPlan(plan({ candidate: 'pg-1', probes: [down('pg-0'), replicaProbe('pg-1', '0/3000100'), replicaProbe('pg-2', '0/3000200')] }));
    expect(p.candidateId).toBe('pg-1');
    expect(p.risks.some((r) => r.includes('pg-2 replayed further (0/3000200 > 0/3000100)'))).toBe(true);
  });

  it('refuses an explicit candidate that is unknown, the primary, or ineligible', () => {
    const probes = [down('pg-0'), replicaProbe('pg-1', '0/3000100'), down('pg-2')];
    expect(expectRefusal(plan({ candidate: 'pg-9', probes }), 'candidate-ineligible')).toBe('candidate pg-9 is not a replica of c1 (replicas: pg-1, pg-2)');
    expect(expectRefusal(plan({ candidate: 'pg-0', probes }), 'candidate-ineligible')).toMatch(/pg-0 is not a replica/);
    expect(expectRefusal(plan({ candidate: 'pg-2', probes }), 'candidate-ineligible')).toMatch(/^candidate pg-2 cannot be promoted: unreachable/);
  });

  it('refuses when a replica is already out of recovery (a second primary)', () => {
    const reason = expectRefusal(plan({ probes: [down('pg-0'), primaryProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/3000000')] }), 'second-primary');
    expect(reason).toMatch(/pg-1 is not in recovery although the writer is pg-0/);
  });

  it('refuses when another failover holds the lock (dry runs see it)', () => {
    const reason = expectRefusal(plan({ lockHolder: { heldBy: 'exec-1', since: '2024-01-01T00:00:00Z' }, probes: [down('pg-0')] }), 'locked');
    expect(reason).toBe('another failover is running: execution exec-1 holds the lock since 2024-01-01T00:00:00Z');
  });

  it('refuses a writer that is not a node of the topology', () => {
    expectRefusal(plan({ topology: topology([node('pg-1', 'replica')], 'pg-0'), probes: [] }), 'topology-invalid');
  });

  it('notes paused replay without excluding the replica', () => {
    const p = expectPlan(plan({ probes: [down('pg-0'), replicaProbe('pg-1', '0/3000000', { replayPaused: true }), down('pg-2')] }));
    expect(p.candidateId).toBe('pg-1');
    expect(p.candidates.find((c) => c.nodeId === 'pg-1')!.reasons).toEqual(['WAL replay is paused (promotion resumes it)']);
  });

  it('rejects a negative lag guard', () => {
    expect(() => plan({ maxLagOnFailoverBytes: -1 })).toThrow(/maxLagOnFailoverBytes must be a non-negative number of bytes, got -1/);
  });
});

describe('planRunbook: switchover', () => {
  const healthyPrimary = primaryProbe('pg-0', '0/3000200', { replication: [streaming('pg-1', '0/3000200'), streaming('pg-2', '0/3000100')] });

  it('plans with a healthy primary, choosing a streaming replica', () => {
    const p = expectPlan(plan({ mode: 'switchover', probes: [healthyPrimary, replicaProbe('pg-1', '0/3000200'), replicaProbe('pg-2', '0/3000100')] }));
    expect(p.mode).toBe('switchover');
    expect(p.candidateId).toBe('pg-1');
    expect(p.referenceSource).toBe('primary');
    expect(p.risks).toEqual([]);
  });

  it('refuses when the primary does not answer (that is a failover)', () => {
    const reason = expectRefusal(plan({ mode: 'switchover', probes: [down('pg-0', 'refused'), replicaProbe('pg-1', '0/3000000')] }), 'primary-unavailable');
    expect(reason).toBe('switchover needs a running primary, but pg-0 does not answer (refused): use a failover');
  });

  it('excludes a replica that is not streaming from the primary', () => {
    const primary = primaryProbe('pg-0', '0/3000200', { replication: [streaming('pg-2', '0/3000100')] });
    const p = expectPlan(plan({ mode: 'switchover', probes: [primary, replicaProbe('pg-1', '0/3000200'), replicaProbe('pg-2', '0/3000100')] }));
    expect(p.candidateId).toBe('pg-2');
    expect(p.candidates.find((c) => c.nodeId === 'pg-1')!.reasons).toContain('not streaming from the primary (a switchover waits for it to replay everything)');
  });

  it('matches the replication name when it differs from the node id', () => {
    const topo = topology([node('pg-0', 'primary'), node('db-replica-1', 'replica', { replicationName: 'rds_replica_1' })]);
    const primary = primaryProbe('pg-0', '0/3000200', { replication: [streaming('rds_replica_1', '0/3000200')] });
    expect(expectPlan(plan({ mode: 'switchover', topology: topo, probes: [primary, replicaProbe('db-replica-1', '0/3000200')] })).candidateId).toBe('db-replica-1');
  });

  it('when replication names are not node ids (RDS: walreceiver), streaming is judged by the primary having any standby', () => {
    const rdsLike = primaryProbe('pg-0', '0/3000200', { replication: [streaming('walreceiver', '0/3000200'), streaming('walreceiver', '0/3000100')] });
    expect(expectPlan(plan({ mode: 'switchover', probes: [rdsLike, replicaProbe('pg-1', '0/3000200'), replicaProbe('pg-2', '0/3000100')] })).candidateId).toBe('pg-1');
    const alone = primaryProbe('pg-0', '0/3000200', { replication: [] });
    expectRefusal(plan({ mode: 'switchover', probes: [alone, replicaProbe('pg-1', '0/3000200'), replicaProbe('pg-2', '0/3000100')] }), 'no-candidate');
  });

  it('applies the lag guard (the write outage lasts until the candidate caught up), force overrides', () => {
    const primary = primaryProbe('pg-0', '0/9000000', { replication: [streaming('pg-1', '0/3000000'), streaming('pg-2', '0/3000000')] });
    const probes = [primary, replicaProbe('pg-1', '0/3000000'), replicaProbe('pg-2', '0/3000000')];
    expectRefusal(plan({ mode: 'switchover', probes }), 'lag-guard');
    expect(expectPlan(plan({ mode: 'switchover', probes, force: true })).forced).toBe(true);
  });
});
