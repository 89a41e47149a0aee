/**
 * The topology document: the JSON the SSM parameter `/rds-failover/<clusterId>/topology` holds. The stack writes it,
 * the runbook rewrites it after a failover, `rds-failover reconcile` reads it back into the config. Retired nodes
 * are not part of the topology. One definition for lib/ and src/ (pure, no AWS SDK).
 */
export interface TopologyDocument {
  readonly version: 1;
  readonly clusterId: string;
  /** Node name of the primary. */
  readonly primary: string;
  readonly nodes: ReadonlyArray<{ readonly name: string; readonly instanceId: string; readonly role: 'primary' | 'replica' }>;
}

/** The CloudFormation stack of a cluster: one stack per cluster and environment (the CLI finds outputs by it). */
export function clusterStackName(clusterId: string): string {
  return `RdsFailover-${clusterId}`;
}

/** SSM parameter names: a contract between the stack, the runbook and the CLI. */
export function writerParameterName(clusterId: string): string {
  return `/rds-failover/${clusterId}/writer-instance-id`;
}

export function topologyParameterName(clusterId: string): string {
  return `/rds-failover/${clusterId}/topology`;
}

export function parseTopologyDocument(raw: string, where: string): TopologyDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    throw new Error(`${where}: not JSON; expected {"version":1,"clusterId":...,"primary":...,"nodes":[{"name","instanceId","role"}]}`);
  }
  const d = doc as Partial<TopologyDocument>;
  if (d?.version !== 1 || typeof d.clusterId !== 'string' || typeof d.primary !== 'string' || !Array.isArray(d.nodes)) {
    throw new Error(`${where}: expected {"version":1,"clusterId":...,"primary":...,"nodes":[...]}, got ${raw.slice(0, 200)}`);
  }
  for (const [i, n] of d.nodes.entries()) {
    if (typeof n?.name !== 'string' || typeof n.instanceId !== 'string' || (n.role !== 'primary' && n.role !== 'replica')) {
      throw new Error(`${where}: nodes[${i}] must be {"name": string, "instanceId": string, "role": "primary"|"replica"}`);
    }
  }
  return d as TopologyDocument;
}
