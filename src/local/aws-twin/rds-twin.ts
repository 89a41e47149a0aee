/**
 * Amazon RDS in the twin: DB instances with the lifecycles RDS documents, each backed by a node of a LocalCluster.
 * - An instance's endpoint is its own loopback address (InstanceProxy) forwarding to its node.
 * - ModifyDBInstance (security groups): `modifying`, the new groups `adding`, the old `removing`, then `active` and
 *   `available`; an instance whose active groups admit no client refuses new connections (established ones stay).
 * - RebootDBInstance: `rebooting`, every connection dropped, the node restarted, `available`, and the event
 *   'DB instance restarted' (DescribeEvents, category availability).
 * - PromoteReadReplica: `modifying` while the node is promoted; ReadReplicaSourceDBInstanceIdentifier is cleared only
 *   when that is done; then `backing-up` (backups were turned on), then `available`.
 * - CreateDBInstanceReadReplica: a new instance on a spare node, cloned afresh from the source: `creating`,
 *   `backing-up`, `available`. Refused as RDS refuses it: a source not `available` or without backups, an id in use,
 *   IOPS or throughput on gp3 below 400 GiB (RDS for PostgreSQL).
 * - Any change while the instance is busy: InvalidDBInstanceStateFault. gp3 below 400 GiB is described with the
 *   3,000 IOPS / 125 MiBps baseline, as RDS does.
 * Times are the twin's (`phaseMs` per state), not RDS's.
 */
import type { CreateDBInstanceReadReplicaMessage, DBInstance, Tag } from '@aws-sdk/client-rds';
import type { LocalCluster } from '../local-cluster.js';
import type { DeployedTemplate } from './cfn-template.js';
import { InstanceProxy } from './instance-proxy.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { keyPolicyOf } from './small-twins.js';
import { awsError } from './twin-errors.js';

export interface RdsTwinOptions {
  readonly cluster: LocalCluster;
  /** Instance id -> local node id, for the instances of the template. */
  readonly nodes: Readonly<Record<string, string>>;
  /** Local nodes free for new read replicas (each is re-cloned when used). */
  readonly spareNodes: readonly string[];
  /** Security groups that admit clients (the others, like the quarantine group, have no ingress). */
  readonly openSecurityGroups: ReadonlySet<string>;
  /** How long each transitional state lasts. @default 300 */
  readonly phaseMs?: number;
  readonly log?: (line: string) => void;
}

interface Instance {
  readonly id: string;
  readonly arn: string;
  status: string;
  source?: string;
  readonly nodeId: string;
  readonly proxy: InstanceProxy;
  securityGroups: { id: string; status: string }[];
  tags: Tag[];
  backupRetention: number;
  readonly shape: Omit<DBInstance, 'DBInstanceIdentifier' | 'DBInstanceArn' | 'DBInstanceStatus' | 'Endpoint' | 'VpcSecurityGroups' | 'TagList'>;
}

const GP3_PROVISIONED_MIN_GIB = 400;

export class RdsTwin implements ServiceTwin {
  readonly service = 'rds';
  private readonly instances = new Map<string, Instance>();
  private readonly spare: string[];
  private readonly phaseMs: number;
  private nextAddress = 1;
  private readonly pending = new Set<Promise<unknown>>();
  /** RDS events (DescribeEvents), oldest first. */
  private readonly events: { SourceIdentifier: string; SourceType: string; SourceArn: string; Message: string; EventCategories: string[]; Date: Date }[] = [];

  constructor(
    private readonly deployed: DeployedTemplate,
    private readonly o: RdsTwinOptions,
  ) {
    this.spare = [...o.spareNodes];
    this.phaseMs = o.phaseMs ?? 300;
  }

  /** Creates the template's DB instances (as CloudFormation would) and opens their endpoints. */
  async deploy(): Promise<void> {
    for (const logicalId of this.deployed.ofType('AWS::RDS::DBInstance')) {
      const p = this.deployed.resolve(this.deployed.resource(logicalId).Properties) as Record<string, any>;
      const id = String(p.DBInstanceIdentifier);
      const nodeId = this.o.nodes[id];
      if (!nodeId) throw new Error(`RdsTwin: no local node given for DB instance ${id}`);
      await this.add(id, nodeId, {
        status: 'available',
        source: p.SourceDBInstanceIdentifier ? String(p.SourceDBInstanceIdentifier) : undefined,
        securityGroups: (p.VPCSecurityGroups ?? []).map((g: string) => ({ id: g, status: 'active' })),
        tags: (p.Tags ?? []).map((t: { Key: string; Value: string }) => ({ Key: t.Key, Value: t.Value })),
        backupRetention: Number(p.BackupRetentionPeriod ?? 0),
        shape: {
          DBInstanceClass: p.DBInstanceClass,
          Engine: 'postgres',
          EngineVersion: p.EngineVersion,
          AvailabilityZone: p.AvailabilityZone ?? `${this.deployed.region}a`,
          DBSubnetGroup: { DBSubnetGroupName: p.DBSubnetGroupName },
          DBParameterGroups: [{ DBParameterGroupName: p.DBParameterGroupName, ParameterApplyStatus: 'in-sync' }],
          StorageType: p.StorageType ?? 'gp2',
          AllocatedStorage: Number(p.AllocatedStorage),
          ...(p.Iops ? { Iops: Number(p.Iops) } : {}),
          ...(p.StorageThroughput ? { StorageThroughput: Number(p.StorageThroughput) } : {}),
          MultiAZ: p.MultiAZ === true || p.MultiAZ === 'true',
          AutoMinorVersionUpgrade: p.AutoMinorVersionUpgrade !== false,
          CopyTagsToSnapshot: p.CopyTagsToSnapshot === true,
          DeletionProtection: p.DeletionProtection === true,
          IAMDatabaseAuthenticationEnabled: p.EnableIAMDatabaseAuthentication === true,
          EnabledCloudwatchLogsExports: p.EnableCloudwatchLogsExports,
          MonitoringInterval: p.MonitoringInterval,
          MonitoringRoleArn: p.MonitoringRoleArn,
          PerformanceInsightsEnabled: p.EnablePerformanceInsights === true,
          PerformanceInsightsKMSKeyId: p.PerformanceInsightsKMSKeyId,
          PerformanceInsightsRetentionPeriod: p.PerformanceInsightsRetentionPeriod,
          StorageEncrypted: true,
          KmsKeyId: p.KmsKeyId,
        },
      });
    }
  }

  /** The instance backed by a node, and the one whose endpoint address is `address` (Route 53 values). */
  instanceAt(address: string): { id: string; nodeId: string; port: number } | undefined {
    const i = [...this.instances.values()].find((x) => x.proxy.address === address);
    return i ? { id: i.id, nodeId: i.nodeId, port: i.proxy.port } : undefined;
  }

  endpoint(id: string): { address: string; port: number } {
    const i = this.get(id);
    return { address: i.proxy.address, port: i.proxy.port };
  }

  /** The local node backing an instance. */
  nodeOf(id: string): string {
    return this.get(id).nodeId;
  }

  status(id: string): string | undefined {
    return this.instances.get(id)?.status;
  }

  ids(): string[] {
    return [...this.instances.keys()];
  }

  /** Addresses the twin will hand out (for the TLS certificate), the first `count`. */
  static addresses(count: number): string[] {
    return Array.from({ length: count }, (_, i) => `127.0.10.${i + 1}`);
  }

  /** Waits for every lifecycle transition under way. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async close(): Promise<void> {
    await this.settle();
    await Promise.all([...this.instances.values()].map((i) => i.proxy.close()));
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      DescribeDBInstances: async (input: { DBInstanceIdentifier?: string; Filters?: { Name: string; Values: string[] }[] }) => {
        if (!input.DBInstanceIdentifier) {
          for (const f of input.Filters ?? []) if (f.Name !== 'db-instance-id') throw new Error(`the AWS twin filters DB instances by db-instance-id only, got ${f.Name}`);
          const ids = input.Filters?.flatMap((f) => f.Values);
          return { DBInstances: [...this.instances.values()].filter((i) => !ids || ids.includes(i.id) || ids.includes(i.arn)).map((i) => this.describe(i)) };
        }
        const i = this.instances.get(input.DBInstanceIdentifier);
        if (!i) throw awsError('DBInstanceNotFoundFault', `DBInstance ${input.DBInstanceIdentifier} not found.`, 404);
        return { DBInstances: [this.describe(i)] };
      },
      ModifyDBInstance: async (input: { DBInstanceIdentifier: string; VpcSecurityGroupIds?: string[]; ApplyImmediately?: boolean }) => {
        const i = this.get(input.DBInstanceIdentifier);
        const other = Object.keys(input).filter((k) => !['DBInstanceIdentifier', 'VpcSecurityGroupIds', 'ApplyImmediately'].includes(k));
        if (other.length) throw new Error(`the AWS twin models ModifyDBInstance of VpcSecurityGroupIds only, got ${other.join(', ')}`);
        this.requireAvailable(i);
        const next = input.VpcSecurityGroupIds ?? [];
        i.status = 'modifying';
        i.securityGroups = [...next.map((id) => ({ id, status: 'adding' })), ...i.securityGroups.filter((g) => !next.includes(g.id)).map((g) => ({ id: g.id, status: 'removing' }))];
        this.later(() => {
          i.securityGroups = next.map((id) => ({ id, status: 'active' }));
          this.applyNetwork(i);
          i.status = 'available';
        });
        return { DBInstance: this.describe(i) };
      },
      RebootDBInstance: async (input: { DBInstanceIdentifier: string; ForceFailover?: boolean }) => {
        const i = this.get(input.DBInstanceIdentifier);
        this.requireAvailable(i);
        i.status = 'rebooting';
        i.proxy.dropAll();
        this.later(async () => {
          await this.o.cluster.stopNode(i.nodeId, 'fast');
          try {
            await this.o.cluster.startNode(i.nodeId);
          } catch (error) {
            this.o.log?.(`rds twin: ${i.id} did not come back from its reboot: ${(error as Error).message}`);
            i.status = 'failed';
            return;
          }
          i.status = 'available';
          this.event(i, 'DB instance restarted', 'availability');
        });
        return { DBInstance: this.describe(i) };
      },
      DescribeEvents: async (input: { SourceIdentifier?: string; SourceType?: string; StartTime?: Date; EventCategories?: string[] }) => ({
        Events: this.events.filter(
          (e) =>
            (!input.SourceIdentifier || e.SourceIdentifier === input.SourceIdentifier) &&
            (!input.SourceType || e.SourceType === input.SourceType) &&
            (!input.StartTime || e.Date.getTime() >= new Date(input.StartTime).getTime()) &&
            (!input.EventCategories?.length || e.EventCategories.some((c) => input.EventCategories!.includes(c))),
        ),
      }),
      PromoteReadReplica: async (input: { DBInstanceIdentifier: string; BackupRetentionPeriod?: number }) => {
        const i = this.get(input.DBInstanceIdentifier);
        if (!i.source) throw awsError('InvalidDBInstanceStateFault', `DB Instance ${i.id} is not a read replica.`);
        this.requireAvailable(i);
        i.status = 'modifying';
        this.later(async () => {
          try {
            await this.o.cluster.promote(i.nodeId);
          } catch (error) {
            this.o.log?.(`rds twin: promotion of ${i.id} failed: ${(error as Error).message}`);
            i.status = 'failed';
            return;
          }
          i.source = undefined;
          i.backupRetention = input.BackupRetentionPeriod ?? 1;
          i.status = 'backing-up';
          this.later(() => (i.status = 'available'));
        });
        return { DBInstance: this.describe(i) };
      },
      CreateDBInstanceReadReplica: async (input: CreateDBInstanceReadReplicaMessage) => this.createReplica(input),
      AddTagsToResource: async (input: { ResourceName: string; Tags: Tag[] }) => {
        const i = this.byArn(input.ResourceName);
        i.tags = [...i.tags.filter((t) => !input.Tags.some((n) => n.Key === t.Key)), ...input.Tags];
        return {};
      },
      RemoveTagsFromResource: async (input: { ResourceName: string; TagKeys: string[] }) => {
        const i = this.byArn(input.ResourceName);
        i.tags = i.tags.filter((t) => !input.TagKeys.includes(t.Key!));
        return {};
      },
    };
  }

  /** What IAM authorizes for each call: the instance ARNs, their tags, the request's tags (Service Authorization Reference). */
  authorizations(operation: string, input: any): TwinAuthorization[] {
    const action = `rds:${operation}`;
    const db = (id: string) => this.arnOf(id);
    const resourceTags = (id: string) => {
      const i = this.instances.get(id);
      return Object.fromEntries((i?.tags ?? []).map((t) => [`aws:ResourceTag/${t.Key}`, t.Value ?? '']));
    };
    const requestTags = (tags: Tag[] | undefined) =>
      tags?.length ? { ...Object.fromEntries(tags.map((t) => [`aws:RequestTag/${t.Key}`, t.Value ?? ''])), 'aws:TagKeys': tags.map((t) => t.Key!) } : {};
    switch (operation) {
      case 'DescribeDBInstances':
        return [{ action, resource: input.DBInstanceIdentifier ? db(input.DBInstanceIdentifier) : `arn:aws:rds:${this.deployed.region}:${this.deployed.account}:db:*` }];
      case 'ModifyDBInstance':
      case 'RebootDBInstance':
      case 'PromoteReadReplica':
        return [{ action, resource: db(input.DBInstanceIdentifier), context: resourceTags(input.DBInstanceIdentifier) }];
      case 'AddTagsToResource':
      case 'RemoveTagsFromResource': {
        const id = this.idOfArn(input.ResourceName);
        const tags = operation === 'AddTagsToResource' ? requestTags(input.Tags) : { 'aws:TagKeys': input.TagKeys };
        return [{ action, resource: input.ResourceName, context: { ...resourceTags(id), ...tags } }];
      }
      case 'CreateDBInstanceReadReplica': {
        const m = input as CreateDBInstanceReadReplicaMessage;
        const tags = requestTags(m.Tags);
        const rds = (type: string, name: string | undefined) => (name ? [{ action, resource: `arn:aws:rds:${this.deployed.region}:${this.deployed.account}:${type}:${name}`, context: tags }] : []);
        const calls: TwinAuthorization[] = [
          { action, resource: db(m.DBInstanceIdentifier!), context: tags },
          { action, resource: db(m.SourceDBInstanceIdentifier!), context: { ...resourceTags(m.SourceDBInstanceIdentifier!), ...tags } },
          ...rds('subgrp', m.DBSubnetGroupName),
          ...rds('pg', m.DBParameterGroupName),
          ...rds('og', m.OptionGroupName),
        ];
        // Tag-on-create: RDS also authorizes AddTagsToResource on the new instance with the request's tags.
        if (m.Tags?.length) calls.push({ action: 'rds:AddTagsToResource', resource: db(m.DBInstanceIdentifier!), context: tags });
        if (m.MonitoringRoleArn) calls.push({ action: 'iam:PassRole', resource: m.MonitoringRoleArn, context: { 'iam:PassedToService': 'monitoring.rds.amazonaws.com' } });
        if (m.PerformanceInsightsKMSKeyId) {
          calls.push({
            action: 'kms:CreateGrant',
            resource: m.PerformanceInsightsKMSKeyId,
            context: { 'kms:ViaService': `rds.${this.deployed.region}.amazonaws.com` },
            resourcePolicy: keyPolicyOf(this.deployed, m.PerformanceInsightsKMSKeyId),
          });
        }
        return calls;
      }
      default:
        return [{ action, resource: '*' }];
    }
  }

  private async createReplica(m: CreateDBInstanceReadReplicaMessage): Promise<unknown> {
    const id = m.DBInstanceIdentifier!;
    if (this.instances.has(id)) throw awsError('DBInstanceAlreadyExistsFault', `DB instance already exists`);
    const source = this.instances.get(m.SourceDBInstanceIdentifier!);
    if (!source) throw awsError('DBInstanceNotFoundFault', `DBInstance ${m.SourceDBInstanceIdentifier} not found.`, 404);
    if (source.status !== 'available') throw awsError('InvalidDBInstanceStateFault', `DB Instance ${source.id} is not in available state.`);
    if (source.backupRetention < 1) {
      throw awsError('InvalidDBInstanceStateFault', `Automated backups are not enabled for this database instance. To enable automated backups, use ModifyDBInstance to set the backup retention period to a non-zero value.`);
    }
    const storageType = m.StorageType ?? source.shape.StorageType!;
    const allocated = source.shape.AllocatedStorage!;
    if (storageType === 'gp3' && allocated < GP3_PROVISIONED_MIN_GIB && (m.Iops !== undefined || m.StorageThroughput !== undefined)) {
      throw awsError('InvalidParameterCombination', `You can't specify IOPS or storage throughput for engine postgres and a storage size less than ${GP3_PROVISIONED_MIN_GIB}.`);
    }
    if ((storageType === 'io1' || storageType === 'io2') && m.Iops === undefined) throw awsError('InvalidParameterCombination', `Invalid storage type for DB engine postgres: ${storageType} requires Iops.`);
    const nodeId = this.spare.shift();
    if (!nodeId) throw awsError('InsufficientDBInstanceCapacity', `Cannot create a db.instance of the requested class: the twin has no spare local node left (give more spareNodes).`);
    const i = await this.add(id, nodeId, {
      status: 'creating',
      source: source.id,
      securityGroups: (m.VpcSecurityGroupIds ?? []).map((g) => ({ id: g, status: 'active' })),
      tags: m.Tags ?? [],
      backupRetention: 0,
      shape: {
        ...source.shape,
        DBInstanceClass: m.DBInstanceClass ?? source.shape.DBInstanceClass,
        AvailabilityZone: m.AvailabilityZone ?? source.shape.AvailabilityZone,
        DBSubnetGroup: { DBSubnetGroupName: m.DBSubnetGroupName ?? source.shape.DBSubnetGroup?.DBSubnetGroupName },
        DBParameterGroups: [{ DBParameterGroupName: m.DBParameterGroupName ?? source.shape.DBParameterGroups?.[0]?.DBParameterGroupName, ParameterApplyStatus: 'in-sync' }],
        StorageType: storageType,
        MultiAZ: m.MultiAZ ?? false,
        MonitoringInterval: m.MonitoringInterval,
        MonitoringRoleArn: m.MonitoringRoleArn,
        PerformanceInsightsEnabled: m.EnablePerformanceInsights ?? false,
        PerformanceInsightsKMSKeyId: m.PerformanceInsightsKMSKeyId,
        PerformanceInsightsRetentionPeriod: m.PerformanceInsightsRetentionPeriod,
        DeletionProtection: m.DeletionProtection ?? false,
        ...(m.Iops !== undefined ? { Iops: m.Iops } : {}),
        ...(m.StorageThroughput !== undefined ? { StorageThroughput: m.StorageThroughput } : {}),
      },
    });
    this.later(async () => {
      try {
        await this.o.cluster.rebuild(nodeId, source.nodeId);
      } catch (error) {
        this.o.log?.(`rds twin: creating ${id} from ${source.id} failed: ${(error as Error).message}`);
        i.status = 'failed';
        return;
      }
      i.status = 'backing-up';
      this.later(() => (i.status = 'available'));
    });
    return { DBInstance: this.describe(i) };
  }

  private async add(id: string, nodeId: string, init: Omit<Instance, 'id' | 'arn' | 'nodeId' | 'proxy'>): Promise<Instance> {
    const proxy = new InstanceProxy(`127.0.10.${this.nextAddress++}`, () => {
      const node = this.o.cluster.nodes().find((n) => n.id === nodeId);
      if (!node) throw new Error(`no local node ${nodeId}`);
      return node.port;
    });
    await proxy.listen();
    const i: Instance = { id, arn: this.arnOf(id), nodeId, proxy, ...init };
    this.applyNetwork(i);
    this.instances.set(id, i);
    return i;
  }

  private describe(i: Instance): DBInstance {
    const baseline = i.shape.StorageType === 'gp3' && (i.shape.AllocatedStorage ?? 0) < GP3_PROVISIONED_MIN_GIB;
    return {
      ...i.shape,
      ...(baseline ? { Iops: 3000, StorageThroughput: 125 } : {}),
      DBInstanceIdentifier: i.id,
      DBInstanceArn: i.arn,
      DBInstanceStatus: i.status,
      Endpoint: i.status === 'creating' ? undefined : { Address: i.proxy.address, Port: i.proxy.port },
      VpcSecurityGroups: i.securityGroups.map((g) => ({ VpcSecurityGroupId: g.id, Status: g.status })),
      TagList: i.tags.map((t) => ({ ...t })),
      BackupRetentionPeriod: i.backupRetention,
      ...(i.source ? { ReadReplicaSourceDBInstanceIdentifier: i.source } : {}),
    };
  }

  private event(i: Instance, message: string, category: string): void {
    this.events.push({ SourceIdentifier: i.id, SourceType: 'db-instance', SourceArn: i.arn, Message: message, EventCategories: [category], Date: new Date() });
  }

  private applyNetwork(i: Instance): void {
    i.proxy.refuseNew = !i.securityGroups.some((g) => g.status === 'active' && this.o.openSecurityGroups.has(g.id));
  }

  private requireAvailable(i: Instance): void {
    if (i.status !== 'available') throw awsError('InvalidDBInstanceStateFault', `Database instance is not in available state.`);
  }

  private get(id: string): Instance {
    const i = this.instances.get(id);
    if (!i) throw awsError('DBInstanceNotFoundFault', `DBInstance ${id} not found.`, 404);
    return i;
  }

  private byArn(arn: string): Instance {
    return this.get(this.idOfArn(arn));
  }

  private idOfArn(arn: string): string {
    const m = /^arn:aws:rds:[a-z0-9-]+:\d{12}:db:(.+)$/.exec(arn);
    if (!m) throw awsError('InvalidParameterValue', `The specified resource name does not match an RDS resource in this region.`);
    return m[1]!;
  }

  private arnOf(id: string): string {
    return `arn:aws:rds:${this.deployed.region}:${this.deployed.account}:db:${id}`;
  }

  private later(fn: () => unknown): void {
    const p = new Promise((resolve) => setTimeout(resolve, this.phaseMs)).then(fn);
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }
}
