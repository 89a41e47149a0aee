/**
 * Which role each configured DB node plays and how it was created. Pure: the Database construct renders one
 * DB instance per entry and the topology SSM parameter is built from the same list.
 *
 * A node's template shape depends on its role only through properties CloudFormation can change in place
 * (SourceDBInstanceIdentifier removal = promotion, backups, Multi-AZ, deletion protection, security groups);
 * create-only properties (MasterUsername, DBName) follow how the node was created, never its current role.
 */
import type { TopologyDocument } from '../src/core/topology-document.js';

export { topologyParameterName, writerParameterName, type TopologyDocument } from '../src/core/topology-document.js';

export type NodeRole = 'primary' | 'replica' | 'retired';

export interface NodePlan {
  /** Stable node name from the config; the construct id derives from it, never from the role. */
  readonly name: string;
  readonly instanceId: string;
  readonly role: NodeRole;
  /** Created as the cluster's first primary (so it carries the master user name and database name). */
  readonly createdAsPrimary: boolean;
}

export interface TopologyInput {
  readonly clusterId: string;
  readonly nodes: readonly string[];
  readonly primary: string;
  readonly originalPrimary: string;
  readonly retired: readonly string[];
}

export function planNodes(input: TopologyInput): NodePlan[] {
  const plan = (name: string, role: NodeRole): NodePlan => ({
    name,
    instanceId: `${input.clusterId}-${name}`,
    role,
    createdAsPrimary: name === input.originalPrimary,
  });
  return [
    ...input.nodes.map((name) => plan(name, name === input.primary ? 'primary' : 'replica')),
    ...input.retired.map((name) => plan(name, 'retired')),
  ];
}


export function topologyDocument(input: TopologyInput): TopologyDocument {
  return {
    version: 1,
    clusterId: input.clusterId,
    primary: input.primary,
    nodes: planNodes(input)
      .filter((n) => n.role !== 'retired')
      .map((n) => ({ name: n.name, instanceId: n.instanceId, role: n.role as 'primary' | 'replica' })),
  };
}

