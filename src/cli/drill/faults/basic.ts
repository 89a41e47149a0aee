/** The drill's first faults: kill -9 of the primary, a planned switchover, and a promoted replica that is behind. */
import pg from 'pg';
import type { LocalCluster } from '../../../local/local-cluster.js';
import type { Fault, FaultContext } from './fault.js';

/** kill -9 of the primary's postmaster; the monitor notices, the runbook confirms and fails over. */
export async function killPrimaryAndFailOver(ctx: FaultContext, nodeId: string, why: string, force = false) {
  await ctx.killNode(nodeId, why);
  await ctx.waitUntilUnreachable(nodeId);
  return ctx.triggeredFailover(nodeId, `drill: ${why}`, force);
}

export const killPrimary: Fault = {
  name: 'kill-primary',
  summary: 'kill -9 of the primary under load; a replica is promoted',
  plan: () => ({}),
  inject: (ctx) => killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed'),
};

export const switchover: Fault = {
  name: 'switchover',
  summary: 'planned: fence writes on the healthy primary, wait for lag 0, promote',
  plan: () => ({}),
  async inject(ctx) {
    ctx.inject('switchover requested');
    return { input: { mode: 'switchover' } };
  },
};

interface LagPlan {
  /** The replica that falls behind and is promoted: the first replica. */
  readonly lagging: string;
  /** How long it falls behind before the primary is killed. */
  readonly behindMs: number;
}

/**
 * replica-lag: the candidate's WAL receiver is cut (primary_conninfo emptied with ALTER SYSTEM), so it falls
 * behind while the primary keeps committing; then the primary is killed and only that replica may be promoted
 * (forced past the lag guard). The setting is undone once the primary is dead, so the node keeps no trace of
 * the fault (replicas cloned from it later would inherit it) and still cannot catch up.
 */
export const replicaLag: Fault<LagPlan> = {
  name: 'replica-lag',
  summary: 'a replica stops receiving WAL, falls behind, and is the one promoted (forced): the drain brings back what it never received',
  plan: (_random, drill) => ({ lagging: 'pg-1', behindMs: Math.max(500, drill.warmupMs / 2) }),
  async prepare(ctx, plan) {
    await setPrimaryConninfo(ctx.cluster, plan.lagging, `ALTER SYSTEM SET primary_conninfo = ''`);
    ctx.nemesis('replica lag', `${plan.lagging} stopped receiving WAL`);
    ctx.progress.event('info', 'fault', `${plan.lagging} cut off from the primary's WAL stream (it will be promoted behind)`);
    await ctx.sleep(plan.behindMs);
  },
  async inject(ctx, plan) {
    const request = await killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed', true);
    await setPrimaryConninfo(ctx.cluster, plan.lagging, 'ALTER SYSTEM RESET primary_conninfo');
    const others = ctx.cluster.nodes().filter((n) => n.id !== ctx.firstPrimary && n.id !== plan.lagging).map((n) => n.id);
    return { ...request, noFailover: others };
  },
};

async function setPrimaryConninfo(cluster: LocalCluster, nodeId: string, sql: string): Promise<void> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  await client.connect();
  try {
    await client.query(sql);
    await client.query('SELECT pg_reload_conf()');
  } finally {
    await client.end();
  }
}
