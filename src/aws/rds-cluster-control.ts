/**
 * ClusterControl over RDS, Route 53 and SSM Parameter Store: what the failover runbook does in AWS.
 * - topology: the writer instance id and topology document from SSM, each instance described by RDS
 *   (role from ReadReplicaSourceDBInstanceIdentifier, priority and nofailover from tags).
 * - fence: read-only + sessions terminated over `pg` when the node answers (src/pg/fence.ts), then (unless
 *   writes-only) ModifyDBInstance to the quarantine security group (no ingress). Isolated only once RDS shows the
 *   quarantine group alone and 'active' AND the sessions opened before it applied are gone: a security group does not
 *   cut tracked connections, so the fence reboots the instance (RebootDBInstance, no failover) once, recorded in the
 *   rds-failover:fenced-at tag. It polls for that within a bounded wait; past it, isolated:false with what is pending.
 * - promote: PromoteReadReplica (with backups on, so the new primary can have replicas); no-op when the
 *   instance is no longer a replica or is busy (promotion under way, or a backup RDS would refuse it during).
 * - promotionStatus: done once RDS no longer lists a source, the status is not a failure, and PostgreSQL
 *   answers out of recovery and writable (the replayed write fence is cleared first). A node still a replica and
 *   'available' has no promotion under way (promote found it busy): it requests it again.
 * - repointWriter: Route 53 UPSERT of the writer CNAME, SSM writer id, SSM topology document.
 * - rebuildReplica: CreateDBInstanceReadReplica of the new primary, shaped like the replica it replaces,
 *   under a deterministic next-generation id (so a re-run finds it instead of creating a second). A primary too
 *   busy to take a replica yet (InvalidDBInstanceStateFault) is RunbookTransientError (retried); every other refusal
 *   is thrown as RDS gave it (the rebuild step fails that replica at once).
 */
import {
  AddTagsToResourceCommand,
  CreateDBInstanceReadReplicaCommand,
  DescribeDBInstancesCommand,
  DescribeEventsCommand,
  ModifyDBInstanceCommand,
  PromoteReadReplicaCommand,
  RebootDBInstanceCommand,
  RemoveTagsFromResourceCommand,
  type DBInstance,
  type RDSClient,
} from '@aws-sdk/client-rds';
import { ChangeResourceRecordSetsCommand, type Route53Client } from '@aws-sdk/client-route-53';
import { GetParameterCommand, PutParameterCommand, type SSMClient } from '@aws-sdk/client-ssm';
import type { WriteFencer } from '../pg/fence.js';
import { systemClock, type Clock } from '../ports/clock.js';
import type { ClusterControl, ClusterNode, FenceOptions, FenceResult, OperationStatus, Topology } from '../ports/cluster-control.js';
import type { DatabaseProbe } from '../ports/database-probe.js';
import { DEFAULT_FAILOVER_PRIORITY, ResourceTag } from '../core/resource-tags.js';
import { RunbookTransientError } from '../core/runbook/errors.js';
import { parseTopologyDocument, type TopologyDocument } from '../core/topology-document.js';

export { parseTopologyDocument, type TopologyDocument };


/**
 * DBInstanceStatus values in which RDS is bringing the instance back by itself (Multi-AZ failover, reboot,
 * maintenance, class or configuration changes): unreachable then is not dead. Not backing-up or
 * storage-optimization: an instance in those normally answers, so one that does not is really in trouble.
 */
export const RDS_RECOVERING_STATUSES: ReadonlySet<string> = new Set([
  'rebooting',
  'failing-over',
  'modifying',
  'maintenance',
  'upgrading',
  'starting',
  'configuring-enhanced-monitoring',
  'configuring-iam-database-auth',
  'configuring-log-exports',
  'moving-to-vpc',
  'renaming',
  'resetting-master-credentials',
]);

export const PRIORITY_TAG = ResourceTag.Priority;
export const NO_FAILOVER_TAG = ResourceTag.NoFailover;
export const REBUILT_FROM_TAG = ResourceTag.RebuiltFrom;
export const FENCED_AT_TAG = ResourceTag.FencedAt;

export interface RdsClusterControlOptions {
  readonly clusterId: string;
  readonly rds: RDSClient;
  readonly route53: Route53Client;
  readonly ssm: SSMClient;
  readonly writerParameterName: string;
  readonly topologyParameterName: string;
  readonly hostedZoneId: string;
  /** FQDN of the writer CNAME, e.g. writer.orders.internal. */
  readonly writerRecordName: string;
  /** @default 30 */
  readonly writerRecordTtlSeconds?: number;
  /** Security group with no ingress rules that fence moves the old primary into. */
  readonly quarantineSecurityGroupId: string;
  /** Read-only + terminate over pg; without it fence only isolates. */
  readonly writeFencer?: WriteFencer;
  /** Confirms writability after promotion; without it RDS status alone decides. */
  readonly probe?: DatabaseProbe;
  /** Automated backup retention of the promoted instance (replicas need it on their source). @default 7 */
  readonly backupRetentionDays?: number;
  /**
   * How long one fence call waits for the quarantine group to apply and the instance to take its reboot (the
   * runbook calls fence once before promotion and once after; each call must fit the fence Lambda's timeout).
   * @default 60000
   */
  readonly isolationWaitMs?: number;
  /** Between two DescribeDBInstances while waiting. @default 5000 */
  readonly isolationPollMs?: number;
  /** @default systemClock */
  readonly clock?: Clock;
}

const FAILED_STATUSES = new Set([
  'failed',
  'incompatible-network',
  'incompatible-option-group',
  'incompatible-parameters',
  'incompatible-restore',
  'inaccessible-encryption-credentials',
  'inaccessible-encryption-credentials-recoverable',
  'restore-error',
  'storage-full',
  'deleting',
  'stopped',
]);
/** States in which RDS refuses ModifyDBInstance / PromoteReadReplica because something is under way. */
const BUSY_STATUSES = new Set(['modifying', 'rebooting', 'backing-up', 'renaming', 'configuring-enhanced-monitoring', 'configuring-log-exports', 'upgrading', 'starting']);
const WRITABLE_STATUSES = new Set(['available', 'backing-up', 'configuring-enhanced-monitoring', 'configuring-log-exports', 'modifying']);

export class RdsClusterControl implements ClusterControl {
  private readonly ttl: number;
  private readonly clock: Clock;
  private readonly isolationWaitMs: number;
  private readonly isolationPollMs: number;

  constructor(private readonly o: RdsClusterControlOptions) {
    this.ttl = o.writerRecordTtlSeconds ?? 30;
    this.clock = o.clock ?? systemClock;
    this.isolationWaitMs = o.isolationWaitMs ?? 60_000;
    this.isolationPollMs = o.isolationPollMs ?? 5_000;
    if (!Number.isInteger(this.isolationWaitMs) || this.isolationWaitMs < 0) throw new Error(`RdsClusterControl: isolationWaitMs must be a whole number of ms >= 0, got ${this.isolationWaitMs}`);
    if (!Number.isInteger(this.isolationPollMs) || this.isolationPollMs < 1) throw new Error(`RdsClusterControl: isolationPollMs must be a whole number of ms >= 1, got ${this.isolationPollMs}`);
    if (!/^sg-[0-9a-f]+$/.test(o.quarantineSecurityGroupId)) {
      throw new Error(`RdsClusterControl: quarantineSecurityGroupId '${o.quarantineSecurityGroupId}' is not a security group id (sg-...)`);
    }
    if (!Number.isInteger(this.ttl) || this.ttl < 1) throw new Error(`RdsClusterControl: writerRecordTtlSeconds must be a positive integer, got ${this.ttl}`);
  }

  async topology(): Promise<Topology> {
    const [writerId, doc] = await Promise.all([this.parameter(this.o.writerParameterName), this.topologyDocument()]);
    const ids = doc.nodes.map((n) => n.instanceId);
    // One describe per instance (by identifier): IAM can then scope DescribeDBInstances to the cluster's instances.
    const described = await Promise.all(ids.map((id) => this.describeOrNull(id)));
    const nodes: ClusterNode[] = ids.map((id, i) => {
      const db = described[i];
      if (!db) throw new Error(`topology parameter ${this.o.topologyParameterName} lists ${id}, but RDS has no such DB instance`);
      return toNode(db);
    });
    if (!ids.includes(writerId)) {
      throw new Error(`writer parameter ${this.o.writerParameterName} names ${writerId}, which is not in topology parameter ${this.o.topologyParameterName}`);
    }
    return { clusterId: this.o.clusterId, writerId, nodes };
  }

  async fence(nodeId: string, options: FenceOptions = {}): Promise<FenceResult> {
    const details: string[] = [];
    let readOnly: FenceResult['readOnly'] = 'unreachable';
    let sessionsTerminated = 0;
    let lsn: string | undefined;
    if (this.o.writeFencer) {
      const fenced = await this.o.writeFencer.fence(nodeId);
      if ('unreachable' in fenced) details.push(`no connection: ${fenced.unreachable}`);
      else {
        readOnly = fenced.failures.length === 0;
        sessionsTerminated = fenced.sessionsTerminated;
        lsn = fenced.lsn;
        if (fenced.failures.length > 0) details.push(`read-only not set on ${fenced.failures.join('; ')}`);
        if (fenced.skipped.length > 0) details.push(`not owned by the runbook's database user, left writable: ${fenced.skipped.join(', ')}`);
      }
    } else {
      details.push('no database access configured: read-only not attempted');
    }
    let isolated = false;
    if (!options.writesOnly) {
      const isolation = await this.isolate(nodeId);
      isolated = isolation.isolated;
      if (isolation.detail) details.push(isolation.detail);
    }
    return { isolated, readOnly, sessionsTerminated, ...(lsn ? { lsn } : {}), ...(details.length ? { detail: details.join('; ') } : {}) };
  }

  async unfence(nodeId: string): Promise<void> {
    if (!this.o.writeFencer) throw new Error(`cannot unfence ${nodeId}: no database access configured`);
    await this.o.writeFencer.clear(nodeId);
  }

  async promote(nodeId: string): Promise<void> {
    const db = await this.describe(nodeId);
    if (!db.ReadReplicaSourceDBInstanceIdentifier) return; // already standalone: promoted earlier
    if (db.DBInstanceStatus !== 'available') return; // busy (promotion under way, backing-up...): promotionStatus asks again once available
    const outcome = await this.requestPromotion(nodeId);
    if (outcome.refused) throw outcome.refused;
  }

  /** PromoteReadReplica; RDS refusing it because the node just became busy or standalone is not an error. */
  private async requestPromotion(nodeId: string): Promise<{ requested: boolean; refused?: Error; busy?: string }> {
    try {
      await this.o.rds.send(
        new PromoteReadReplicaCommand({ DBInstanceIdentifier: nodeId, BackupRetentionPeriod: this.o.backupRetentionDays ?? 7 }),
      );
      return { requested: true };
    } catch (error) {
      if ((error as Error).name !== 'InvalidDBInstanceStateFault') throw error;
      const now = await this.describe(nodeId);
      if (!now.ReadReplicaSourceDBInstanceIdentifier || BUSY_STATUSES.has(now.DBInstanceStatus ?? '')) return { requested: false, busy: now.DBInstanceStatus ?? 'unknown' };
      return { requested: false, refused: error as Error };
    }
  }

  /**
   * 'modifying' or 'rebooting' because of our own quarantine and reboot (a retried or resumed fence) is not RDS
   * recovering the node by itself: the instance in the quarantine group is ours.
   */
  async managedState(nodeId: string): Promise<{ status: string; recovering: boolean }> {
    const db = await this.describe(nodeId);
    const status = db.DBInstanceStatus ?? 'unknown';
    return { status, recovering: RDS_RECOVERING_STATUSES.has(status) && !quarantineRequested(db, this.o.quarantineSecurityGroupId) };
  }

  async promotionStatus(nodeId: string): Promise<OperationStatus> {
    const db = await this.describe(nodeId);
    const status = db.DBInstanceStatus ?? 'unknown';
    if (FAILED_STATUSES.has(status)) return { state: 'failed', detail: `${nodeId} is ${status}` };
    if (db.ReadReplicaSourceDBInstanceIdentifier) {
      const replicaOf = `${nodeId} is still a replica of ${db.ReadReplicaSourceDBInstanceIdentifier}`;
      // 'available' while still a replica: nothing is promoting it (promote found it busy, or RDS dropped the request).
      if (status !== 'available') return { state: 'pending', detail: `${replicaOf} (${status})` };
      const again = await this.requestPromotion(nodeId);
      if (again.requested) return { state: 'pending', detail: `${replicaOf} and was available with no promotion under way: PromoteReadReplica requested again` };
      if (again.busy) return { state: 'pending', detail: `${replicaOf} (${again.busy})` };
      return { state: 'pending', detail: `${replicaOf}; RDS refused PromoteReadReplica, asking again at the next check: ${again.refused!.message}` };
    }
    if (!WRITABLE_STATUSES.has(status)) return { state: 'pending', detail: `${nodeId} is ${status}` };
    if (!this.o.probe) return status === 'available' || status === 'backing-up' ? { state: 'done' } : { state: 'pending', detail: `${nodeId} is ${status}` };
    // The old primary's write fence is WAL-logged: a candidate that replayed it starts read-only.
    if (this.o.writeFencer) await this.o.writeFencer.clear(nodeId).catch(() => undefined);
    const probe = await this.o.probe.probe(nodeId);
    if (!probe.reachable) return { state: 'pending', detail: `${nodeId} (${status}) does not answer yet: ${probe.error}` };
    if (probe.inRecovery) return { state: 'pending', detail: `${nodeId} (${status}) is still in recovery` };
    if (!probe.acceptsWrites) return { state: 'pending', detail: `${nodeId} (${status}) is read-only` };
    return { state: 'done', detail: `${nodeId} accepts writes on timeline ${probe.timelineId}` };
  }

  async repointWriter(nodeId: string): Promise<void> {
    const db = await this.describe(nodeId);
    const address = db.Endpoint?.Address;
    if (!address) throw new Error(`${nodeId} has no endpoint address yet (${db.DBInstanceStatus}); cannot point the writer at it`);
    await this.o.route53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: this.o.hostedZoneId,
        ChangeBatch: {
          Comment: `rds-failover: writer of ${this.o.clusterId} -> ${nodeId}`,
          Changes: [
            {
              Action: 'UPSERT',
              ResourceRecordSet: { Name: this.o.writerRecordName, Type: 'CNAME', TTL: this.ttl, ResourceRecords: [{ Value: address }] },
            },
          ],
        },
      }),
    );
    await this.putParameter(this.o.writerParameterName, nodeId);
    const doc = await this.topologyDocument();
    const entry = doc.nodes.find((n) => n.instanceId === nodeId);
    if (!entry) throw new Error(`${nodeId} is not in topology parameter ${this.o.topologyParameterName}`);
    const oldPrimary = doc.nodes.find((n) => n.role === 'primary' && n.instanceId !== nodeId);
    const next: TopologyDocument = {
      ...doc,
      primary: entry.name,
      // The fenced old primary leaves the topology (reconcile retires it); the rest are replicas.
      nodes: doc.nodes.filter((n) => n !== oldPrimary).map((n) => ({ ...n, role: n.instanceId === nodeId ? 'primary' : 'replica' })),
    };
    await this.putParameter(this.o.topologyParameterName, JSON.stringify(next));
  }

  async rebuildReplica(replicaId: string, primaryId: string): Promise<{ readonly nodeId: string }> {
    const doc = await this.topologyDocument();
    // A re-run finds the replica already replaced in the document: derive the same name from the id.
    const prefix = `${doc.clusterId}-`;
    const name = doc.nodes.find((n) => n.instanceId === replicaId)?.name ?? (replicaId.startsWith(prefix) ? replicaId.slice(prefix.length) : replicaId);
    const conventional = replicaId === `${prefix}${name}` && /^[a-z][a-z0-9]{0,9}$/.test(name);
    const nextName = conventional ? nextGenerationName(name) : `${name}-r2`;
    const nodeId = conventional ? `${prefix}${nextName}` : `${replicaId}-r2`;
    assertInstanceId(nodeId, replicaId);

    const existing = await this.describeOrNull(nodeId);
    if (!existing) {
      const old = await this.describe(replicaId);
      try {
        await this.o.rds.send(new CreateDBInstanceReadReplicaCommand(replicaShapedLike(old, nodeId, primaryId, this.o.clusterId)));
      } catch (error) {
        // The new primary is busy (its first backup after promotion, a modification): it can take a replica later.
        if ((error as Error).name === 'InvalidDBInstanceStateFault') {
          throw new RunbookTransientError(`${primaryId} cannot take a read replica yet: ${(error as Error).name}: ${(error as Error).message}`);
        }
        throw error;
      }
    }
    const nodes = doc.nodes.filter((n) => n.instanceId !== replicaId && n.instanceId !== nodeId);
    await this.putParameter(
      this.o.topologyParameterName,
      JSON.stringify({ ...doc, nodes: [...nodes, { name: nextName, instanceId: nodeId, role: 'replica' }] } satisfies TopologyDocument),
    );
    return { nodeId };
  }

  async rebuildStatus(nodeId: string): Promise<OperationStatus> {
    const db = await this.describeOrNull(nodeId);
    if (!db) return { state: 'failed', detail: `${nodeId} does not exist` };
    const status = db.DBInstanceStatus ?? 'unknown';
    if (FAILED_STATUSES.has(status)) return { state: 'failed', detail: `${nodeId} is ${status}` };
    if (status !== 'available') return { state: 'pending', detail: `${nodeId} is ${status}` };
    if (!db.ReadReplicaSourceDBInstanceIdentifier) return { state: 'failed', detail: `${nodeId} is available but not a read replica` };
    return { state: 'done', detail: `${nodeId} replicates from ${db.ReadReplicaSourceDBInstanceIdentifier}` };
  }

  /**
   * Moves the instance into the quarantine security group, waits (bounded) until RDS shows it alone and active, then
   * drops the sessions opened before it applied with one reboot. Refused or unfinished states are reported, not thrown.
   */
  private async isolate(nodeId: string): Promise<{ isolated: boolean; detail?: string }> {
    const deadline = this.clock.now() + this.isolationWaitMs;
    let db = await this.describe(nodeId);
    if (!quarantineRequested(db, this.o.quarantineSecurityGroupId)) {
      // A new quarantine: a fenced-at tag left by an earlier one says nothing about this one's sessions.
      if (tagValue(db, FENCED_AT_TAG) !== undefined) {
        await this.o.rds.send(new RemoveTagsFromResourceCommand({ ResourceName: instanceArn(db), TagKeys: [FENCED_AT_TAG] }));
      }
      try {
        await this.o.rds.send(
          new ModifyDBInstanceCommand({ DBInstanceIdentifier: nodeId, VpcSecurityGroupIds: [this.o.quarantineSecurityGroupId], ApplyImmediately: true }),
        );
      } catch (error) {
        const name = (error as Error).name;
        if (name === 'InvalidDBInstanceStateFault' || name === 'InvalidVPCNetworkStateFault') {
          return { isolated: false, detail: `RDS refused the quarantine security group while ${nodeId} is ${db.DBInstanceStatus}: ${(error as Error).message}` };
        }
        throw error;
      }
      db = await this.describe(nodeId);
    }
    // Isolated only once it provably cannot write: no new session (the quarantine group is active alone) and none of
    // the old ones (it is stopped, or the reboot we requested has completed: RDS logged the restart after it).
    // A requested reboot is not enough: a stalled host keeps its sessions until it really restarts.
    for (;;) {
      const status = db.DBInstanceStatus ?? 'unknown';
      if (quarantineApplied(db, this.o.quarantineSecurityGroupId)) {
        if (status === 'stopped') return { isolated: true, detail: `${nodeId} is stopped: no session opened before the quarantine survives it` };
        const requestedAt = tagValue(db, FENCED_AT_TAG);
        if (requestedAt !== undefined && status === 'available' && (await this.restartedSince(nodeId, requestedAt))) return { isolated: true };
        if (requestedAt === undefined && status === 'available') await this.requestReboot(db);
      }
      const now = this.clock.now();
      if (now >= deadline) return { isolated: false, detail: isolationPending(db, this.o.quarantineSecurityGroupId, this.isolationWaitMs) };
      await this.clock.sleep(Math.min(this.isolationPollMs, deadline - now));
      db = await this.describe(nodeId);
    }
  }

  /**
   * One reboot (no failover) drops every session once it completes; the fenced-at tag records when it was requested, so
   * a re-run does not reboot again and can tell when it completed. RDS refusing it (the node just left 'available')
   * is polled again.
   */
  private async requestReboot(db: DBInstance): Promise<void> {
    const nodeId = db.DBInstanceIdentifier!;
    const at = new Date(this.clock.now()).toISOString();
    try {
      await this.o.rds.send(new RebootDBInstanceCommand({ DBInstanceIdentifier: nodeId, ForceFailover: false }));
    } catch (error) {
      if ((error as Error).name === 'InvalidDBInstanceStateFault') return;
      throw error;
    }
    await this.o.rds.send(new AddTagsToResourceCommand({ ResourceName: instanceArn(db), Tags: [{ Key: FENCED_AT_TAG, Value: at }] }));
  }

  /** RDS logged 'DB instance restarted' (RDS-EVENT-0006, category availability) for the node at or after `since`. */
  private async restartedSince(nodeId: string, since: string): Promise<boolean> {
    const start = new Date(since);
    if (Number.isNaN(start.getTime())) return false;
    const out = await this.o.rds.send(new DescribeEventsCommand({ SourceIdentifier: nodeId, SourceType: 'db-instance', StartTime: start, EventCategories: ['availability'] }));
    return (out.Events ?? []).some((e) => /DB instance restarted/i.test(e.Message ?? '') && e.Date !== undefined && e.Date.getTime() >= start.getTime());
  }

  private async describe(nodeId: string): Promise<DBInstance> {
    const out = await this.o.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: nodeId }));
    const db = out.DBInstances?.[0];
    if (!db) throw new Error(`RDS returned no DB instance ${nodeId}`);
    return db;
  }

  private async describeOrNull(nodeId: string): Promise<DBInstance | null> {
    try {
      return await this.describe(nodeId);
    } catch (error) {
      if ((error as Error).name === 'DBInstanceNotFoundFault') return null;
      throw error;
    }
  }

  private async parameter(name: string): Promise<string> {
    const out = await this.o.ssm.send(new GetParameterCommand({ Name: name }));
    const value = out.Parameter?.Value;
    if (!value) throw new Error(`SSM parameter ${name} is empty`);
    return value;
  }

  private async topologyDocument(): Promise<TopologyDocument> {
    const raw = await this.parameter(this.o.topologyParameterName);
    return parseTopologyDocument(raw, this.o.topologyParameterName);
  }

  private async putParameter(name: string, value: string): Promise<void> {
    await this.o.ssm.send(new PutParameterCommand({ Name: name, Value: value, Type: 'String', Overwrite: true }));
  }
}

/**
 * The node name a rebuild of `name` creates: 'c' -> 'cr2' -> 'cr3'. Config node names are 1-10 lower-case
 * letters and digits (lib/config.ts), so the base is shortened when the suffix would not fit.
 */
export function nextGenerationName(name: string): string {
  const m = /^([a-z][a-z0-9]*?)r(\d+)$/.exec(name);
  const [base, generation] = m ? [m[1]!, Number(m[2]) + 1] : [name, 2];
  const suffix = `r${generation}`;
  return `${base.slice(0, Math.max(1, 10 - suffix.length))}${suffix}`;
}

function assertInstanceId(id: string, from: string): void {
  if (id.length > 63 || !/^[A-Za-z](?:[A-Za-z0-9]|-(?!-))*[A-Za-z0-9]$/.test(id)) {
    throw new Error(`cannot rebuild ${from}: the new instance id '${id}' is not a valid DB instance identifier (letters, digits, single hyphens, at most 63)`);
  }
}

function securityGroups(db: DBInstance) {
  return (db.VpcSecurityGroups ?? []).map((g) => ({ id: g.VpcSecurityGroupId ?? '?', status: g.Status ?? 'unknown' }));
}

/** The quarantine group is the instance's only group, or the only one not on its way out: the change was asked for. */
function quarantineRequested(db: DBInstance, quarantine: string): boolean {
  const staying = securityGroups(db).filter((g) => g.status !== 'removing');
  return staying.length === 1 && staying[0]!.id === quarantine;
}

/** RDS lists the quarantine group alone and active: new connections are refused. */
function quarantineApplied(db: DBInstance, quarantine: string): boolean {
  const groups = securityGroups(db);
  return groups.length === 1 && groups[0]!.id === quarantine && groups[0]!.status === 'active';
}

function isolationPending(db: DBInstance, quarantine: string, waitedMs: number): string {
  const id = db.DBInstanceIdentifier;
  const status = db.DBInstanceStatus ?? 'unknown';
  const groups = securityGroups(db).map((g) => `${g.id} ${g.status}`).join(', ') || 'none';
  const requestedAt = tagValue(db, FENCED_AT_TAG);
  const what = !quarantineApplied(db, quarantine)
    ? `quarantine security group ${quarantine} requested, not applied yet (${id} is ${status}; security groups: ${groups})`
    : requestedAt !== undefined
      ? `quarantine security group active, reboot requested at ${requestedAt} and not completed yet (${id} is ${status}): the sessions opened before it may still write`
      : `quarantine security group active, but the sessions opened before it are not dropped yet: ${id} is ${status}, the reboot waits for 'available'`;
  return `isolation pending after ${Math.round(waitedMs / 1000)} s: ${what}`;
}

function tagValue(db: DBInstance, key: string): string | undefined {
  return db.TagList?.find((t) => t.Key === key)?.Value;
}

function instanceArn(db: DBInstance): string {
  if (!db.DBInstanceArn) throw new Error(`RDS described ${db.DBInstanceIdentifier} without its DBInstanceArn`);
  return db.DBInstanceArn;
}

function toNode(db: DBInstance): ClusterNode {
  const tags = new Map((db.TagList ?? []).map((t) => [t.Key, t.Value]));
  const priorityTag = tags.get(PRIORITY_TAG);
  const priority = priorityTag !== undefined && /^\d+$/.test(priorityTag) ? Number(priorityTag) : DEFAULT_FAILOVER_PRIORITY;
  return {
    id: db.DBInstanceIdentifier!,
    role: db.ReadReplicaSourceDBInstanceIdentifier ? 'replica' : 'primary',
    endpoint: `${db.Endpoint?.Address ?? 'pending'}:${db.Endpoint?.Port ?? 5432}`,
    priority,
    noFailover: tags.get(NO_FAILOVER_TAG) === 'true',
  };
}

/**
 * gp3 of RDS for PostgreSQL below this size runs at a fixed baseline (3,000 IOPS, 125 MiBps) that
 * DescribeDBInstances reports but CreateDBInstanceReadReplica refuses to be given ("You can't specify IOPS or
 * storage throughput for engine postgres and a storage size less than 400"). From it on, both are settable.
 */
export const GP3_PROVISIONED_MIN_GIB = 400;

/**
 * The IOPS and throughput of `old` to ask for, where RDS accepts them: provisioned IOPS storage (io1, io2: IOPS
 * only) and gp3 at or above GP3_PROVISIONED_MIN_GIB (both). Elsewhere the storage type and size decide them.
 */
export function provisionedPerformance(old: Pick<DBInstance, 'StorageType' | 'AllocatedStorage' | 'Iops' | 'StorageThroughput'>): { Iops?: number; StorageThroughput?: number } {
  const type = old.StorageType ?? '';
  if ((type === 'io1' || type === 'io2') && old.Iops) return { Iops: old.Iops };
  if (type === 'gp3' && (old.AllocatedStorage ?? 0) >= GP3_PROVISIONED_MIN_GIB) {
    return { ...(old.Iops ? { Iops: old.Iops } : {}), ...(old.StorageThroughput ? { StorageThroughput: old.StorageThroughput } : {}) };
  }
  return {};
}

/** CreateDBInstanceReadReplica input for a replica of `primaryId` that takes the place of `old`. */
function replicaShapedLike(old: DBInstance, nodeId: string, primaryId: string, clusterId: string) {
  // The cluster tag is what the rebuild role's policy requires on the request (and what fence and promote check later).
  const tags = (old.TagList ?? []).filter((t) => t.Key !== REBUILT_FROM_TAG && t.Key !== ResourceTag.Cluster && !t.Key?.startsWith('aws:'));
  return {
    DBInstanceIdentifier: nodeId,
    SourceDBInstanceIdentifier: primaryId,
    DBInstanceClass: old.DBInstanceClass,
    AvailabilityZone: old.AvailabilityZone,
    DBSubnetGroupName: old.DBSubnetGroup?.DBSubnetGroupName,
    VpcSecurityGroupIds: (old.VpcSecurityGroups ?? []).map((g) => g.VpcSecurityGroupId!).filter(Boolean),
    DBParameterGroupName: old.DBParameterGroups?.[0]?.DBParameterGroupName,
    StorageType: old.StorageType,
    ...provisionedPerformance(old),
    MultiAZ: false,
    PubliclyAccessible: false,
    AutoMinorVersionUpgrade: old.AutoMinorVersionUpgrade,
    CopyTagsToSnapshot: old.CopyTagsToSnapshot,
    DeletionProtection: old.DeletionProtection,
    EnableIAMDatabaseAuthentication: old.IAMDatabaseAuthenticationEnabled,
    EnableCloudwatchLogsExports: old.EnabledCloudwatchLogsExports,
    ...(old.MonitoringInterval ? { MonitoringInterval: old.MonitoringInterval, MonitoringRoleArn: old.MonitoringRoleArn } : {}),
    ...(old.PerformanceInsightsEnabled
      ? {
          EnablePerformanceInsights: true,
          PerformanceInsightsKMSKeyId: old.PerformanceInsightsKMSKeyId,
          PerformanceInsightsRetentionPeriod: old.PerformanceInsightsRetentionPeriod,
        }
      : {}),
    Tags: [{ Key: ResourceTag.Cluster, Value: clusterId }, ...tags, { Key: REBUILT_FROM_TAG, Value: old.DBInstanceIdentifier! }],
  };
}
