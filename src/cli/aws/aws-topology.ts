/**
 * The live topology as the runbook sees it in AWS: the writer parameter, the topology parameter (JSON) and one
 * DescribeDBInstances call for the instances it lists. Read-only; for `status`, `reconcile` and candidate checks.
 */
import { DescribeDBInstancesCommand, type DBInstance, type RDSClient } from '@aws-sdk/client-rds';
import { GetParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import { NO_FAILOVER_TAG, parseTopologyDocument, type TopologyDocument } from '../../aws/rds-cluster-control.js';

export interface AwsInstanceView {
  readonly instanceId: string;
  /** Node name in the config / topology document. */
  readonly name: string;
  /** From RDS: a replica has a source instance. */
  readonly role: 'primary' | 'replica';
  /** DBInstanceStatus, or 'not found'. */
  readonly status: string;
  readonly endpoint: string | null;
  readonly sourceId: string | null;
  readonly noFailover: boolean;
}

export interface AwsTopologyView {
  readonly document: TopologyDocument;
  /** The instance the writer parameter (and the Route 53 record) point at. */
  readonly writerId: string;
  readonly instances: readonly AwsInstanceView[];
}

export async function readTopologyDocument(ssm: SSMClient, parameterName: string): Promise<TopologyDocument> {
  return parseTopologyDocument(await parameter(ssm, parameterName), `SSM parameter ${parameterName}`);
}

export async function readAwsTopology(
  clients: { readonly ssm: SSMClient; readonly rds: RDSClient },
  names: { readonly writerParameterName: string; readonly topologyParameterName: string },
): Promise<AwsTopologyView> {
  const [writerId, document] = await Promise.all([parameter(clients.ssm, names.writerParameterName), readTopologyDocument(clients.ssm, names.topologyParameterName)]);
  const ids = document.nodes.map((n) => n.instanceId);
  const out = await clients.rds.send(new DescribeDBInstancesCommand({ Filters: [{ Name: 'db-instance-id', Values: ids }] }));
  const byId = new Map((out.DBInstances ?? []).map((d) => [d.DBInstanceIdentifier, d]));
  const instances = document.nodes.map((n) => view(n.name, n.instanceId, n.role, byId.get(n.instanceId)));
  return { document, writerId, instances };
}

function view(name: string, instanceId: string, documentRole: 'primary' | 'replica', db: DBInstance | undefined): AwsInstanceView {
  if (!db) return { instanceId, name, role: documentRole, status: 'not found', endpoint: null, sourceId: null, noFailover: false };
  const address = db.Endpoint?.Address;
  return {
    instanceId,
    name,
    role: db.ReadReplicaSourceDBInstanceIdentifier ? 'replica' : 'primary',
    status: db.DBInstanceStatus ?? 'unknown',
    endpoint: address ? `${address}:${db.Endpoint?.Port ?? 5432}` : null,
    sourceId: db.ReadReplicaSourceDBInstanceIdentifier ?? null,
    noFailover: (db.TagList ?? []).some((t) => t.Key === NO_FAILOVER_TAG && t.Value === 'true'),
  };
}

async function parameter(ssm: SSMClient, name: string): Promise<string> {
  const out = await ssm.send(new GetParameterCommand({ Name: name }));
  const value = out.Parameter?.Value;
  if (!value) throw new Error(`SSM parameter ${name} is empty`);
  return value;
}
