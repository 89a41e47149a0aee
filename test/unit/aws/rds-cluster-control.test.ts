import {
  AddTagsToResourceCommand,
  CreateDBInstanceReadReplicaCommand,
  DBInstanceNotFoundFault,
  DescribeDBInstancesCommand,
  DescribeEventsCommand,
  InvalidDBInstanceStateFault,
  ModifyDBInstanceCommand,
  PromoteReadReplicaCommand,
  RDSClient,
  RebootDBInstanceCommand,
  RemoveTagsFromResourceCommand,
  type DBInstance,
} from '@aws-sdk/client-rds';
import { ChangeResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { nextGenerationName, RdsClusterControl, type TopologyDocument } from '../../../src/aws/rds-cluster-control.js';
import { RunbookTransientError } from '../../../src/core/runbook/errors.js';
import type { DatabaseWriteFence, WriteFencer } from '../../../src/pg/fence.js';
import type { Clock } from '../../../src/ports/clock.js';
import type { DatabaseProbe, NodeProbe } from '../../../src/ports/database-probe.js';

const rds = mockClient(RDSClient);
const route53 = mockClient(Route53Client);
const ssm = mockClient(SSMClient);

const QUARANTINE = 'sg-0a1b2c3d4e5f60789';
const DOC: TopologyDocument = {
  version: 1,
  clusterId: 'orders',
  primary: 'a',
  nodes: [
    { name: 'a', instanceId: 'orders-a', role: 'primary' },
    { name: 'b', instanceId: 'orders-b', role: 'replica' },
    { name: 'c', instanceId: 'orders-c', role: 'replica' },
  ],
};

function instance(id: string, extra: Partial<DBInstance> = {}): DBInstance {
  return {
    DBInstanceIdentifier: id,
    DBInstanceStatus: 'available',
    Endpoint: { Address: `${id}.abc.eu-west-1.rds.amazonaws.com`, Port: 5432 },
    VpcSecurityGroups: [{ VpcSecurityGroupId: 'sg-0db0db0db0db0db01', Status: 'active' }],
    TagList: [],
    ...extra,
  };
}

function describes(...instances: DBInstance[]) {
  for (const db of instances) rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: db.DBInstanceIdentifier }).resolves({ DBInstances: [db] });
}

/** One instance described differently on each call; the last state repeats. */
function describeSequence(...states: DBInstance[]) {
  let stub = rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: states[0]!.DBInstanceIdentifier });
  for (const db of states.slice(0, -1)) stub = stub.resolvesOnce({ DBInstances: [db] });
  stub.resolves({ DBInstances: [states.at(-1)!] });
}

/** Time moves only when the code sleeps: the bounded isolation wait runs instantly and its sleeps are recorded. */
class FakeClock implements Clock {
  sleeps: number[] = [];
  constructor(public t = Date.parse('2025-03-01T10:00:00.000Z')) {}
  now() {
    return this.t;
  }
  async sleep(ms: number) {
    this.sleeps.push(ms);
    this.t += ms;
  }
}
let clock: FakeClock;

class FakeFencer implements WriteFencer {
  calls: string[] = [];
  constructor(private outcome: DatabaseWriteFence | { unreachable: string }) {}
  async fence(nodeId: string) {
    this.calls.push(`fence:${nodeId}`);
    return this.outcome;
  }
  async clear(nodeId: string) {
    this.calls.push(`clear:${nodeId}`);
    return ['app'];
  }
}

const writable = (nodeId: string): NodeProbe => ({
  nodeId,
  sampledAt: 'x',
  reachable: true,
  inRecovery: false,
  timelineId: 2,
  currentLsn: '0/5000000',
  receiveLsn: null,
  replayLsn: null,
  replayPaused: false,
  lastReplayAgeSeconds: null,
  acceptsWrites: true,
  replication: [],
});

function control(extra: { writeFencer?: WriteFencer; probe?: DatabaseProbe; isolationWaitMs?: number } = {}) {
  return new RdsClusterControl({
    clusterId: 'orders',
    rds: new RDSClient({}),
    route53: new Route53Client({}),
    ssm: new SSMClient({}),
    writerParameterName: '/rds-failover/orders/writer-instance-id',
    topologyParameterName: '/rds-failover/orders/topology',
    hostedZoneId: 'Z0123456789ABC',
    writerRecordName: 'writer.orders.internal',
    writerRecordTtlSeconds: 15,
    quarantineSecurityGroupId: QUARANTINE,
    backupRetentionDays: 14,
    clock,
    ...extra,
  });
}

beforeEach(() => {
  clock = new FakeClock();
  rds.reset();
  route53.reset();
  ssm.reset();
  ssm.on(GetParameterCommand, { Name: '/rds-failover/orders/writer-instance-id' }).resolves({ Parameter: { Value: 'orders-a' } });
  ssm.on(GetParameterCommand, { Name: '/rds-failover/orders/topology' }).resolves({ Parameter: { Value: JSON.stringify(DOC) } });
});

describe('RdsClusterControl.topology', () => {
  it('reads writer and topology parameters and describes each instance: role, endpoint, priority and nofailover tags', async () => {
    describes(
      instance('orders-a'),
      instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', TagList: [{ Key: 'rds-failover:priority', Value: '5' }] }),
      instance('orders-c', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', TagList: [{ Key: 'rds-failover:nofailover', Value: 'true' }] }),
    );
    const topo = await control().topology();
    expect(topo).toEqual({
      clusterId: 'orders',
      writerId: 'orders-a',
      nodes: [
        { id: 'orders-a', role: 'primary', endpoint: 'orders-a.abc.eu-west-1.rds.amazonaws.com:5432', priority: 100, noFailover: false },
        { id: 'orders-b', role: 'replica', endpoint: 'orders-b.abc.eu-west-1.rds.amazonaws.com:5432', priority: 5, noFailover: false },
        { id: 'orders-c', role: 'replica', endpoint: 'orders-c.abc.eu-west-1.rds.amazonaws.com:5432', priority: 100, noFailover: true },
      ],
    });
    expect(rds.commandCalls(DescribeDBInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { DBInstanceIdentifier: 'orders-a' },
      { DBInstanceIdentifier: 'orders-b' },
      { DBInstanceIdentifier: 'orders-c' },
    ]);
  });

  it('names a malformed topology parameter and the expected form', async () => {
    ssm.on(GetParameterCommand, { Name: '/rds-failover/orders/topology' }).resolves({ Parameter: { Value: '{"primary":1}' } });
    await expect(control().topology()).rejects.toThrow(/\/rds-failover\/orders\/topology: expected \{"version":1,"clusterId":...,"primary":...,"nodes":\[...\]\}/);
  });

  it('refuses a writer that is not in the topology', async () => {
    describes(instance('orders-a'), instance('orders-b'), instance('orders-c'));
    ssm.on(GetParameterCommand, { Name: '/rds-failover/orders/writer-instance-id' }).resolves({ Parameter: { Value: 'orders-z' } });
    await expect(control().topology()).rejects.toThrow('writer parameter /rds-failover/orders/writer-instance-id names orders-z, which is not in topology parameter /rds-failover/orders/topology');
  });
});

describe('RdsClusterControl.fence', () => {
  const fenced: DatabaseWriteFence = { wasPrimary: true, fencedDatabases: ['app', 'postgres'], failures: [], skipped: [], sessionsTerminated: 4, lsn: '0/7000060' };
  const ARN = 'arn:aws:rds:eu-west-1:123456789012:db:orders-a';
  const OLD_SG = 'sg-0db0db0db0db0db01';
  const primary = (extra: Partial<DBInstance> = {}) => instance('orders-a', { DBInstanceArn: ARN, ...extra });
  const requested = (status = 'modifying') =>
    primary({ DBInstanceStatus: status, VpcSecurityGroups: [{ VpcSecurityGroupId: QUARANTINE, Status: 'adding' }, { VpcSecurityGroupId: OLD_SG, Status: 'removing' }] });
  const applied = (status = 'available', tags: DBInstance['TagList'] = []) =>
    primary({ DBInstanceStatus: status, VpcSecurityGroups: [{ VpcSecurityGroupId: QUARANTINE, Status: 'active' }], TagList: tags });
  const fencedTag = { Key: 'rds-failover:fenced-at', Value: '2025-02-01T00:00:00.000Z' };
  const tagAt = (at: string) => ({ Key: 'rds-failover:fenced-at', Value: at });
  /** RDS's event log for the instance: 'DB instance restarted' at these times. */
  const restarts = (...at: string[]) =>
    rds.on(DescribeEventsCommand).resolves({ Events: at.map((d) => ({ SourceIdentifier: 'orders-a', Message: 'DB instance restarted', EventCategories: ['availability'], Date: new Date(d) })) });
  const calls = () => ({
    modify: rds.commandCalls(ModifyDBInstanceCommand).map((c) => c.args[0].input),
    reboot: rds.commandCalls(RebootDBInstanceCommand).map((c) => c.args[0].input),
    tag: rds.commandCalls(AddTagsToResourceCommand).map((c) => c.args[0].input),
    untag: rds.commandCalls(RemoveTagsFromResourceCommand).map((c) => c.args[0].input),
  });

  it('sets read-only over pg, quarantines, waits until the group is active alone, reboots once (no failover) and tags it; isolated once RDS logged the restart', async () => {
    const rebootAt = '2025-03-01T10:00:10.000Z'; // the fake clock advanced by the two polls
    describeSequence(primary(), requested(), requested(), applied(), applied('rebooting', [tagAt(rebootAt)]), applied('available', [tagAt(rebootAt)]));
    rds.on(ModifyDBInstanceCommand).resolves({});
    rds.on(RebootDBInstanceCommand).resolves({});
    rds.on(AddTagsToResourceCommand).resolves({});
    restarts('2025-02-01T00:00:00.000Z', '2025-03-01T10:00:17.000Z');
    const fencer = new FakeFencer(fenced);
    const result = await control({ writeFencer: fencer }).fence('orders-a');
    expect(result).toEqual({ isolated: true, readOnly: true, sessionsTerminated: 4, lsn: '0/7000060' });
    expect(fencer.calls).toEqual(['fence:orders-a']);
    expect(calls()).toEqual({
      modify: [{ DBInstanceIdentifier: 'orders-a', VpcSecurityGroupIds: [QUARANTINE], ApplyImmediately: true }],
      reboot: [{ DBInstanceIdentifier: 'orders-a', ForceFailover: false }],
      tag: [{ ResourceName: ARN, Tags: [{ Key: 'rds-failover:fenced-at', Value: rebootAt }] }],
      untag: [],
    });
    expect(rds.commandCalls(DescribeEventsCommand).map((c) => c.args[0].input)).toEqual([
      { SourceIdentifier: 'orders-a', SourceType: 'db-instance', StartTime: new Date(rebootAt), EventCategories: ['availability'] },
    ]);
    expect(clock.sleeps).toEqual([5000, 5000, 5000, 5000]);
  });

  it('a reboot requested but not completed (a stalled host keeps its sessions) is not isolation: not isolated after the bounded wait', async () => {
    const rebootAt = '2025-03-01T10:00:00.000Z';
    describeSequence(applied('available', [tagAt(rebootAt)]));
    restarts('2025-02-28T00:00:00.000Z'); // an older restart says nothing about this reboot
    const stalled = await control({ writeFencer: new FakeFencer({ unreachable: 'timeout expired' }), isolationWaitMs: 10_000 }).fence('orders-a');
    expect(stalled).toEqual({
      isolated: false,
      readOnly: 'unreachable',
      sessionsTerminated: 0,
      detail: `no connection: timeout expired; isolation pending after 10 s: quarantine security group active, reboot requested at ${rebootAt} and not completed yet (orders-a is available): the sessions opened before it may still write`,
    });
    expect(calls()).toEqual({ modify: [], reboot: [], tag: [], untag: [] });
  });

  it('is not isolated while the quarantine group is still being added: pending, after a bounded wait, with no reboot', async () => {
    describeSequence(primary(), requested());
    rds.on(ModifyDBInstanceCommand).resolves({});
    const result = await control({ writeFencer: new FakeFencer(fenced), isolationWaitMs: 12_000 }).fence('orders-a');
    expect(result).toEqual({
      isolated: false,
      readOnly: true,
      sessionsTerminated: 4,
      lsn: '0/7000060',
      detail: `isolation pending after 12 s: quarantine security group ${QUARANTINE} requested, not applied yet (orders-a is modifying; security groups: ${QUARANTINE} adding, ${OLD_SG} removing)`,
    });
    expect(clock.sleeps).toEqual([5000, 5000, 2000]);
    expect(calls().reboot).toEqual([]);
  });

  it('a re-run finds the quarantine pending: it does not modify again, and completes the isolation once it applies and the reboot is done', async () => {
    describeSequence(requested(), applied(), applied('available', [tagAt('2025-03-01T10:00:05.000Z')]));
    rds.on(RebootDBInstanceCommand).resolves({});
    rds.on(AddTagsToResourceCommand).resolves({});
    restarts('2025-03-01T10:00:08.000Z');
    const result = await control({ writeFencer: new FakeFencer({ unreachable: 'timeout expired' }) }).fence('orders-a');
    expect(result).toEqual({ isolated: true, readOnly: 'unreachable', sessionsTerminated: 0, detail: 'no connection: timeout expired' });
    expect(calls().modify).toEqual([]);
    expect(calls().reboot).toEqual([{ DBInstanceIdentifier: 'orders-a', ForceFailover: false }]);
  });

  it('never reboots twice: a re-run finds the fenced-at tag and waits for that reboot; a reboot it did not request is waited for too', async () => {
    describeSequence(applied('available', [fencedTag]));
    restarts('2025-02-01T00:01:00.000Z');
    const tagged = await control({ writeFencer: new FakeFencer({ unreachable: 'timeout expired' }) }).fence('orders-a');
    expect(tagged).toEqual({ isolated: true, readOnly: 'unreachable', sessionsTerminated: 0, detail: 'no connection: timeout expired' });

    rds.reset();
    describeSequence(applied('rebooting'));
    const rebooting = await control({ isolationWaitMs: 5_000 }).fence('orders-a');
    expect(rebooting.isolated).toBe(false);
    expect(calls()).toEqual({ modify: [], reboot: [], tag: [], untag: [] });
    expect(clock.sleeps).toEqual([5000]);
  });

  it('waits for "available" to reboot: a backing-up instance stays not isolated, a refused reboot is polled again', async () => {
    describeSequence(applied('backing-up'));
    const busy = await control({ writeFencer: new FakeFencer(fenced), isolationWaitMs: 10_000 }).fence('orders-a');
    expect(busy.isolated).toBe(false);
    expect(busy.detail).toBe(
      "isolation pending after 10 s: quarantine security group active, but the sessions opened before it are not dropped yet: orders-a is backing-up, the reboot waits for 'available'",
    );
    expect(calls().reboot).toEqual([]);

    rds.reset();
    describeSequence(applied(), applied('rebooting'));
    rds.on(RebootDBInstanceCommand).rejects(new InvalidDBInstanceStateFault({ message: 'not available', $metadata: {} }));
    const raced = await control({ writeFencer: new FakeFencer(fenced), isolationWaitMs: 10_000 }).fence('orders-a');
    expect(raced.isolated).toBe(false); // RDS's own reboot, unknown to us: not claimed
    expect(calls().reboot).toHaveLength(1);
    expect(calls().tag).toEqual([]);
  });

  it('a fenced-at tag from an earlier quarantine is removed before a new one is requested', async () => {
    describeSequence(primary({ TagList: [fencedTag] }), applied(), applied('available', [tagAt('2025-03-01T10:00:00.000Z')]));
    restarts('2025-03-01T10:00:03.000Z');
    rds.on(RemoveTagsFromResourceCommand).resolves({});
    rds.on(ModifyDBInstanceCommand).resolves({});
    rds.on(RebootDBInstanceCommand).resolves({});
    rds.on(AddTagsToResourceCommand).resolves({});
    const result = await control({ writeFencer: new FakeFencer(fenced) }).fence('orders-a');
    expect(result.isolated).toBe(true);
    expect(calls()).toEqual({
      untag: [{ ResourceName: ARN, TagKeys: ['rds-failover:fenced-at'] }],
      modify: [{ DBInstanceIdentifier: 'orders-a', VpcSecurityGroupIds: [QUARANTINE], ApplyImmediately: true }],
      reboot: [{ DBInstanceIdentifier: 'orders-a', ForceFailover: false }],
      tag: [{ ResourceName: ARN, Tags: [{ Key: 'rds-failover:fenced-at', Value: '2025-03-01T10:00:00.000Z' }] }],
    });
  });

  it('writes-only (switchover) leaves the security groups alone so replicas keep streaming', async () => {
    describes(primary());
    const result = await control({ writeFencer: new FakeFencer(fenced) }).fence('orders-a', { writesOnly: true });
    expect(result).toEqual({ isolated: false, readOnly: true, sessionsTerminated: 4, lsn: '0/7000060' });
    expect(calls()).toEqual({ modify: [], reboot: [], tag: [], untag: [] });
  });

  it('reports (not throws) RDS refusing to modify a failed instance', async () => {
    describes(primary({ DBInstanceStatus: 'failed' }));
    rds.on(ModifyDBInstanceCommand).rejects(new InvalidDBInstanceStateFault({ message: 'Instance is not in available state', $metadata: {} }));
    const result = await control({ writeFencer: new FakeFencer({ unreachable: 'ECONNREFUSED' }) }).fence('orders-a');
    expect(result.isolated).toBe(false);
    expect(result.detail).toBe('no connection: ECONNREFUSED; RDS refused the quarantine security group while orders-a is failed: Instance is not in available state');
    expect(clock.sleeps).toEqual([]);
  });

  it('reports databases it could not set read-only', async () => {
    describes(applied('available', [fencedTag]));
    restarts('2025-02-01T00:02:00.000Z');
    const fencer = new FakeFencer({ ...fenced, failures: ['billing: must be owner of database billing'] });
    const result = await control({ writeFencer: fencer }).fence('orders-a');
    expect(result.readOnly).toBe(false);
    expect(result.isolated).toBe(true);
    expect(result.detail).toBe('read-only not set on billing: must be owner of database billing');
  });
});

describe('RdsClusterControl.managedState', () => {
  it('reads DBInstanceStatus: a Multi-AZ failover or a reboot is RDS recovering the node, a failed instance is not', async () => {
    describes(instance('orders-a', { DBInstanceStatus: 'failing-over' }), instance('orders-b', { DBInstanceStatus: 'rebooting' }), instance('orders-c', { DBInstanceStatus: 'failed' }));
    await expect(control().managedState('orders-a')).resolves.toEqual({ status: 'failing-over', recovering: true });
    await expect(control().managedState('orders-b')).resolves.toEqual({ status: 'rebooting', recovering: true });
    await expect(control().managedState('orders-c')).resolves.toEqual({ status: 'failed', recovering: false });
    expect(rds.commandCalls(DescribeDBInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { DBInstanceIdentifier: 'orders-a' },
      { DBInstanceIdentifier: 'orders-b' },
      { DBInstanceIdentifier: 'orders-c' },
    ]);
  });

  it('modifying because of our own quarantine (a fence retried after its ModifyDBInstance) is not RDS recovering the node', async () => {
    describes(instance('orders-a', { DBInstanceStatus: 'modifying', VpcSecurityGroups: [{ VpcSecurityGroupId: QUARANTINE, Status: 'adding' }, { VpcSecurityGroupId: 'sg-0db0db0db0db0db01', Status: 'removing' }] }));
    await expect(control().managedState('orders-a')).resolves.toEqual({ status: 'modifying', recovering: false });
  });
});

describe('RdsClusterControl.promote and promotionStatus', () => {
  it('promotes an available replica with backups on', async () => {
    describes(instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a' }));
    rds.on(PromoteReadReplicaCommand).resolves({});
    await control().promote('orders-b');
    expect(rds.commandCalls(PromoteReadReplicaCommand).map((c) => c.args[0].input)).toEqual([{ DBInstanceIdentifier: 'orders-b', BackupRetentionPeriod: 14 }]);
  });

  it('is a no-op on an instance that is no longer a replica, or busy promoting', async () => {
    describes(instance('orders-b'), instance('orders-c', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'modifying' }));
    await control().promote('orders-b');
    await control().promote('orders-c');
    expect(rds.commandCalls(PromoteReadReplicaCommand)).toHaveLength(0);
  });

  it('treats InvalidDBInstanceState from a promotion that just started elsewhere as in progress', async () => {
    rds
      .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-b' })
      .resolvesOnce({ DBInstances: [instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a' })] })
      .resolves({ DBInstances: [instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'modifying' })] });
    rds.on(PromoteReadReplicaCommand).rejects(new InvalidDBInstanceStateFault({ message: 'busy', $metadata: {} }));
    await expect(control().promote('orders-b')).resolves.toBeUndefined();
  });

  it('polls DescribeDBInstances until the instance is standalone, then clears the replayed fence and confirms writes', async () => {
    const states = [
      instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'modifying' }),
      instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'rebooting' }),
      instance('orders-b', { DBInstanceStatus: 'backing-up' }),
    ];
    rds
      .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-b' })
      .resolvesOnce({ DBInstances: [states[0]!] })
      .resolvesOnce({ DBInstances: [states[1]!] })
      .resolves({ DBInstances: [states[2]!] });
    const fencer = new FakeFencer({ unreachable: 'n/a' });
    const probe: DatabaseProbe = { probe: async (id) => writable(id) };
    const c = control({ writeFencer: fencer, probe });
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b is still a replica of orders-a (modifying)' });
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b is still a replica of orders-a (rebooting)' });
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'done', detail: 'orders-b accepts writes on timeline 2' });
    expect(fencer.calls).toEqual(['clear:orders-b']);
    expect(rds.commandCalls(DescribeDBInstancesCommand)).toHaveLength(3);
  });

  it('a promotion promote skipped (candidate backing-up) is requested by promotionStatus once the replica is available, once', async () => {
    const replica = (status: string) => instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: status });
    describeSequence(replica('backing-up'), replica('backing-up'), replica('available'), replica('modifying'), instance('orders-b'));
    rds.on(PromoteReadReplicaCommand).resolves({});
    const probe: DatabaseProbe = { probe: async (id) => writable(id) };
    const c = control({ probe });
    await c.promote('orders-b');
    expect(rds.commandCalls(PromoteReadReplicaCommand)).toHaveLength(0);
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b is still a replica of orders-a (backing-up)' });
    expect(await c.promotionStatus('orders-b')).toEqual({
      state: 'pending',
      detail: 'orders-b is still a replica of orders-a and was available with no promotion under way: PromoteReadReplica requested again',
    });
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b is still a replica of orders-a (modifying)' });
    expect(await c.promotionStatus('orders-b')).toEqual({ state: 'done', detail: 'orders-b accepts writes on timeline 2' });
    expect(rds.commandCalls(PromoteReadReplicaCommand).map((x) => x.args[0].input)).toEqual([{ DBInstanceIdentifier: 'orders-b', BackupRetentionPeriod: 14 }]);
  });

  it('promotionStatus: RDS refusing the repeated request because a promotion just started is pending, not a failure', async () => {
    const replica = (status: string) => instance('orders-b', { ReadReplicaSourceDBInstanceIdentifier: 'orders-a', DBInstanceStatus: status });
    describeSequence(replica('available'), replica('modifying'));
    rds.on(PromoteReadReplicaCommand).rejects(new InvalidDBInstanceStateFault({ message: 'busy', $metadata: {} }));
    expect(await control().promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b is still a replica of orders-a (modifying)' });
    expect(rds.commandCalls(PromoteReadReplicaCommand)).toHaveLength(1);
  });

  it('stays pending while PostgreSQL is read-only, fails on a failed instance', async () => {
    describes(instance('orders-b'), instance('orders-c', { DBInstanceStatus: 'storage-full' }));
    const probe: DatabaseProbe = { probe: async (id) => ({ ...writable(id), acceptsWrites: false }) };
    expect(await control({ probe }).promotionStatus('orders-b')).toEqual({ state: 'pending', detail: 'orders-b (available) is read-only' });
    expect(await control({ probe }).promotionStatus('orders-c')).toEqual({ state: 'failed', detail: 'orders-c is storage-full' });
  });
});

describe('RdsClusterControl.repointWriter', () => {
  it('UPSERTs the writer CNAME, writes the writer id and the new topology document', async () => {
    describes(instance('orders-b'));
    route53.on(ChangeResourceRecordSetsCommand).resolves({ ChangeInfo: { Id: 'c1', Status: 'PENDING', SubmittedAt: new Date() } });
    ssm.on(PutParameterCommand).resolves({ Version: 2 });
    await control().repointWriter('orders-b');
    expect(route53.commandCalls(ChangeResourceRecordSetsCommand).map((c) => c.args[0].input)).toEqual([
      {
        HostedZoneId: 'Z0123456789ABC',
        ChangeBatch: {
          Comment: 'rds-failover: writer of orders -> orders-b',
          Changes: [
            {
              Action: 'UPSERT',
              ResourceRecordSet: {
                Name: 'writer.orders.internal',
                Type: 'CNAME',
                TTL: 15,
                ResourceRecords: [{ Value: 'orders-b.abc.eu-west-1.rds.amazonaws.com' }],
              },
            },
          ],
        },
      },
    ]);
    const puts = ssm.commandCalls(PutParameterCommand).map((c) => c.args[0].input);
    expect(puts[0]).toEqual({ Name: '/rds-failover/orders/writer-instance-id', Value: 'orders-b', Type: 'String', Overwrite: true });
    expect(puts[1]).toMatchObject({ Name: '/rds-failover/orders/topology', Type: 'String', Overwrite: true });
    expect(JSON.parse(puts[1]!.Value!)).toEqual({
      version: 1,
      clusterId: 'orders',
      primary: 'b',
      nodes: [
        { name: 'b', instanceId: 'orders-b', role: 'primary' },
        { name: 'c', instanceId: 'orders-c', role: 'replica' },
      ],
    });
  });
});

describe('RdsClusterControl.rebuildReplica and rebuildStatus', () => {
  const oldReplica = instance('orders-c', {
    ReadReplicaSourceDBInstanceIdentifier: 'orders-a',
    DBInstanceClass: 'db.r6g.large',
    AvailabilityZone: 'eu-west-1b',
    DBSubnetGroup: { DBSubnetGroupName: 'orders-db-subnets' },
    DBParameterGroups: [{ DBParameterGroupName: 'orders-pg16' }],
    StorageType: 'gp3',
    AutoMinorVersionUpgrade: true,
    CopyTagsToSnapshot: true,
    DeletionProtection: true,
    IAMDatabaseAuthenticationEnabled: true,
    EnabledCloudwatchLogsExports: ['postgresql'],
    MonitoringInterval: 60,
    MonitoringRoleArn: 'arn:aws:iam::123456789012:role/rds-monitoring',
    PerformanceInsightsEnabled: true,
    PerformanceInsightsKMSKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/k',
    PerformanceInsightsRetentionPeriod: 7,
    TagList: [{ Key: 'team', Value: 'orders' }, { Key: 'aws:cloudformation:stack-name', Value: 's' }],
  });

  it('creates a replica of the new primary shaped like the old one, under the next-generation id, and updates the topology', async () => {
    describes(oldReplica);
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-cr2' }).rejects(new DBInstanceNotFoundFault({ message: 'not found', $metadata: {} }));
    rds.on(CreateDBInstanceReadReplicaCommand).resolves({});
    ssm.on(PutParameterCommand).resolves({});
    const result = await control().rebuildReplica('orders-c', 'orders-b');
    expect(result).toEqual({ nodeId: 'orders-cr2' });
    expect(rds.commandCalls(CreateDBInstanceReadReplicaCommand).map((c) => c.args[0].input)).toEqual([
      {
        DBInstanceIdentifier: 'orders-cr2',
        SourceDBInstanceIdentifier: 'orders-b',
        DBInstanceClass: 'db.r6g.large',
        AvailabilityZone: 'eu-west-1b',
        DBSubnetGroupName: 'orders-db-subnets',
        VpcSecurityGroupIds: ['sg-0db0db0db0db0db01'],
        DBParameterGroupName: 'orders-pg16',
        StorageType: 'gp3',
        MultiAZ: false,
        PubliclyAccessible: false,
        AutoMinorVersionUpgrade: true,
        CopyTagsToSnapshot: true,
        DeletionProtection: true,
        EnableIAMDatabaseAuthentication: true,
        EnableCloudwatchLogsExports: ['postgresql'],
        MonitoringInterval: 60,
        MonitoringRoleArn: 'arn:aws:iam::123456789012:role/rds-monitoring',
        EnablePerformanceInsights: true,
        PerformanceInsightsKMSKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/k',
        PerformanceInsightsRetentionPeriod: 7,
        Tags: [{ Key: 'rds-failover:cluster', Value: 'orders' }, { Key: 'team', Value: 'orders' }, { Key: 'rds-failover:rebuilt-from', Value: 'orders-c' }],
      },
    ]);
    const doc = JSON.parse(ssm.commandCalls(PutParameterCommand)[0]!.args[0].input.Value!);
    expect(doc.nodes).toEqual([
      { name: 'a', instanceId: 'orders-a', role: 'primary' },
      { name: 'b', instanceId: 'orders-b', role: 'replica' },
      { name: 'cr2', instanceId: 'orders-cr2', role: 'replica' },
    ]);
  });

  it('sends IOPS and throughput only where RDS accepts them: io1/io2, and gp3 from 400 GiB (PostgreSQL); below, RDS reports the baseline it refuses', async () => {
    const cases: { storage: Partial<DBInstance>; expected: Record<string, unknown> }[] = [
      // gp3 under 400 GiB: DescribeDBInstances shows the 3,000 IOPS / 125 MiBps baseline, which CreateDBInstanceReadReplica refuses.
      { storage: { StorageType: 'gp3', AllocatedStorage: 100, Iops: 3000, StorageThroughput: 125 }, expected: {} },
      { storage: { StorageType: 'gp3', AllocatedStorage: 400, Iops: 12000, StorageThroughput: 500 }, expected: { Iops: 12000, StorageThroughput: 500 } },
      { storage: { StorageType: 'io1', AllocatedStorage: 100, Iops: 5000, StorageThroughput: 0 }, expected: { Iops: 5000 } },
      { storage: { StorageType: 'io2', AllocatedStorage: 100, Iops: 8000 }, expected: { Iops: 8000 } },
      { storage: { StorageType: 'gp2', AllocatedStorage: 1000, Iops: 3000 }, expected: {} },
    ];
    for (const { storage, expected } of cases) {
      rds.reset();
      describes({ ...oldReplica, ...storage });
      rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-cr2' }).rejects(new DBInstanceNotFoundFault({ message: 'not found', $metadata: {} }));
      rds.on(CreateDBInstanceReadReplicaCommand).resolves({});
      ssm.on(PutParameterCommand).resolves({});
      await control().rebuildReplica('orders-c', 'orders-b');
      const input = rds.commandCalls(CreateDBInstanceReadReplicaCommand)[0]!.args[0].input;
      const sent = Object.fromEntries(Object.entries({ Iops: input.Iops, StorageThroughput: input.StorageThroughput }).filter(([, v]) => v !== undefined));
      expect(sent, JSON.stringify(storage)).toEqual(expected);
      expect(input.StorageType).toBe(storage.StorageType);
    }
  });

  it('RDS refusing a replica of a primary that is busy (still taking its first backup) is transient; any other refusal is thrown as RDS gave it', async () => {
    describes(oldReplica);
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-cr2' }).rejects(new DBInstanceNotFoundFault({ message: 'not found', $metadata: {} }));
    ssm.on(PutParameterCommand).resolves({});
    rds.on(CreateDBInstanceReadReplicaCommand).rejectsOnce(new InvalidDBInstanceStateFault({ message: 'DB Instance orders-b is not in available state.', $metadata: {} }));
    const busy = await control().rebuildReplica('orders-c', 'orders-b').catch((e: Error) => e);
    expect(busy).toBeInstanceOf(RunbookTransientError);
    expect((busy as Error).message).toBe('orders-b cannot take a read replica yet: InvalidDBInstanceStateFault: DB Instance orders-b is not in available state.');
    const denied = Object.assign(new Error('User: arn:aws:sts::1:assumed-role/r is not authorized to perform: rds:CreateDBInstanceReadReplica'), { name: 'AccessDenied' });
    rds.on(CreateDBInstanceReadReplicaCommand).rejects(denied);
    await expect(control().rebuildReplica('orders-c', 'orders-b')).rejects.toBe(denied);
    expect(ssm.commandCalls(PutParameterCommand)).toHaveLength(0); // nothing recorded for a replica that was not created
  });

  it('a re-run finds the replica it created and creates nothing', async () => {
    ssm.on(GetParameterCommand, { Name: '/rds-failover/orders/topology' }).resolves({
      Parameter: { Value: JSON.stringify({ ...DOC, nodes: [DOC.nodes[1], { name: 'cr2', instanceId: 'orders-cr2', role: 'replica' }] }) },
    });
    describes(instance('orders-cr2', { DBInstanceStatus: 'creating' }));
    ssm.on(PutParameterCommand).resolves({});
    expect(await control().rebuildReplica('orders-c', 'orders-b')).toEqual({ nodeId: 'orders-cr2' });
    expect(rds.commandCalls(CreateDBInstanceReadReplicaCommand)).toHaveLength(0);
  });

  it('rebuildStatus polls until the new replica is available and replicating', async () => {
    rds
      .on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'orders-cr2' })
      .resolvesOnce({ DBInstances: [instance('orders-cr2', { DBInstanceStatus: 'creating', ReadReplicaSourceDBInstanceIdentifier: 'orders-b' })] })
      .resolves({ DBInstances: [instance('orders-cr2', { ReadReplicaSourceDBInstanceIdentifier: 'orders-b' })] });
    expect(await control().rebuildStatus('orders-cr2')).toEqual({ state: 'pending', detail: 'orders-cr2 is creating' });
    expect(await control().rebuildStatus('orders-cr2')).toEqual({ state: 'done', detail: 'orders-cr2 replicates from orders-b' });
  });

  it('generation names stay valid config node names (1-10 lower-case letters and digits)', () => {
    expect(nextGenerationName('c')).toBe('cr2');
    expect(nextGenerationName('cr2')).toBe('cr3');
    expect(nextGenerationName('cr19')).toBe('cr20');
    expect(nextGenerationName('replica1')).toBe('replica1r2');
    expect(nextGenerationName('abcdefghij')).toBe('abcdefghr2');
    for (const n of ['c', 'cr9', 'abcdefghij', 'r1', 'x9']) expect(nextGenerationName(n)).toMatch(/^[a-z][a-z0-9]{0,9}$/);
  });
});

it('rejects a quarantine group that is not a security group id', () => {
  expect(
    () =>
      new RdsClusterControl({
        clusterId: 'orders',
        rds: new RDSClient({}),
        route53: new Route53Client({}),
        ssm: new SSMClient({}),
        writerParameterName: 'w',
        topologyParameterName: 't',
        hostedZoneId: 'Z',
        writerRecordName: 'writer',
        quarantineSecurityGroupId: 'quarantine',
      }),
  ).toThrow("RdsClusterControl: quarantineSecurityGroupId 'quarantine' is not a security group id (sg-...)");
});
