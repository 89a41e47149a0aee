/**
 * The AWS twin's stand-ins on their own, against what AWS documents: DynamoDB's condition and update expressions,
 * RDS's refusals (the gp3 IOPS rule of issue 11 defect 1, busy instances) and its gp3 baseline, a security group's
 * effect on new and established connections, SSM's view of a worker instance cut off (Online with its last ping frozen,
 * then ConnectionLost; a command held Pending until it is reachable again within TimeoutSeconds, or DeliveryTimedOut
 * at ExpiresAfter), and intrinsics
 * resolved as CloudFormation would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DeployedTemplate, type CfnTemplate } from '../../../src/local/aws-twin/cfn-template.js';
import { applyUpdate, evaluateCondition, project } from '../../../src/local/aws-twin/dynamodb-expressions.js';
import { InstanceProxy } from '../../../src/local/aws-twin/instance-proxy.js';
import { RdsTwin } from '../../../src/local/aws-twin/rds-twin.js';
import { SsmTwin } from '../../../src/local/aws-twin/ssm-twin.js';
import type { LocalCluster } from '../../../src/local/local-cluster.js';

describe('DynamoDB expressions', () => {
  const item = { pk: { S: 'lock#orders' }, owner: { S: 'exec-1' }, expiresAt: { N: '100' } };
  const ctx = { names: { '#owner': 'owner' }, values: { ':owner': { S: 'exec-1' }, ':now': { N: '99' }, ':later': { N: '101' } } };

  it('evaluates the lock\'s conditions as DynamoDB does (numbers as numbers, a missing item has no attributes)', () => {
    expect(evaluateCondition('#owner = :owner', item, ctx)).toBe(true);
    expect(evaluateCondition('attribute_not_exists(pk) OR expiresAt < :now', item, ctx)).toBe(false);
    expect(evaluateCondition('attribute_not_exists(pk) OR expiresAt < :later', item, ctx)).toBe(true);
    expect(evaluateCondition('attribute_not_exists(pk) OR expiresAt < :now', undefined, ctx)).toBe(true);
    expect(evaluateCondition('#owner = :owner', undefined, ctx)).toBe(false);
    expect(evaluateCondition('NOT (#owner = :owner) AND attribute_exists(pk)', item, ctx)).toBe(false);
  });

  it('refuses what DynamoDB refuses: an undefined name or value, a syntax error', () => {
    expect(() => evaluateCondition('#nope = :owner', item, ctx)).toThrow('ExpressionAttributeNames');
    expect(() => evaluateCondition('owner = :nope', item, ctx)).toThrow('attribute value: :nope');
    expect(() => evaluateCondition('owner = = :owner', item, ctx)).toThrow('Invalid expression');
  });

  it('applies SET and projects attributes', () => {
    expect(applyUpdate('SET expiresAt = :later', item, ctx)).toEqual({ ...item, expiresAt: { N: '101' } });
    expect(project('#owner, pk', item, ctx)).toEqual({ pk: item.pk, owner: item.owner });
    expect(() => applyUpdate('REMOVE owner', item, ctx)).toThrow('SET only');
  });
});

describe('RDS stand-in', () => {
  const template: CfnTemplate = {
    Resources: {
      A: { Type: 'AWS::RDS::DBInstance', Properties: { DBInstanceIdentifier: 'orders-a', StorageType: 'gp3', AllocatedStorage: '100', BackupRetentionPeriod: 7, VPCSecurityGroups: ['sg-open'] } },
      B: { Type: 'AWS::RDS::DBInstance', Properties: { DBInstanceIdentifier: 'orders-b', StorageType: 'gp3', AllocatedStorage: '100', SourceDBInstanceIdentifier: { Ref: 'A' }, VPCSecurityGroups: ['sg-open'] } },
    },
  };
  let rds: RdsTwin | undefined;
  afterEach(async () => rds?.close());

  async function deploy() {
    const deployed = new DeployedTemplate(template, { account: '123456789012', region: 'eu-west-1', stackName: 'S' });
    // No call below reaches a node: refusals are decided before RDS starts any work.
    rds = new RdsTwin(deployed, { cluster: { nodes: () => [] } as unknown as LocalCluster, nodes: { 'orders-a': 'pg-0', 'orders-b': 'pg-1' }, spareNodes: ['pg-2'], openSecurityGroups: new Set(['sg-open']) });
    await rds.deploy();
    return rds.handlers();
  }

  it('describes gp3 under 400 GiB with the 3,000 IOPS / 125 MiBps baseline, and refuses a replica asked for them, with RDS\'s text', async () => {
    const h = await deploy();
    const described = (await h.DescribeDBInstances!({ DBInstanceIdentifier: 'orders-b' })) as { DBInstances: Record<string, unknown>[] };
    expect(described.DBInstances[0]).toMatchObject({ StorageType: 'gp3', AllocatedStorage: 100, Iops: 3000, StorageThroughput: 125, ReadReplicaSourceDBInstanceIdentifier: 'orders-a' });
    await expect(h.CreateDBInstanceReadReplica!({ DBInstanceIdentifier: 'orders-br2', SourceDBInstanceIdentifier: 'orders-a', StorageType: 'gp3', Iops: 3000 })).rejects.toMatchObject({
      name: 'InvalidParameterCombination',
      message: "You can't specify IOPS or storage throughput for engine postgres and a storage size less than 400.",
    });
  });

  it('refuses a replica of a source without backups, a second promotion request while one is under way, an unknown instance', async () => {
    const h = await deploy();
    await expect(h.CreateDBInstanceReadReplica!({ DBInstanceIdentifier: 'orders-x', SourceDBInstanceIdentifier: 'orders-b' })).rejects.toMatchObject({ name: 'InvalidDBInstanceStateFault' });
    await h.PromoteReadReplica!({ DBInstanceIdentifier: 'orders-b', BackupRetentionPeriod: 7 });
    await expect(h.PromoteReadReplica!({ DBInstanceIdentifier: 'orders-b' })).rejects.toMatchObject({ name: 'InvalidDBInstanceStateFault' });
    const busy = (await h.DescribeDBInstances!({ DBInstanceIdentifier: 'orders-b' })) as { DBInstances: Record<string, unknown>[] };
    // Still a replica while the promotion runs: RDS clears the source only when it is done.
    expect(busy.DBInstances[0]).toMatchObject({ DBInstanceStatus: 'modifying', ReadReplicaSourceDBInstanceIdentifier: 'orders-a' });
    await expect(h.DescribeDBInstances!({ DBInstanceIdentifier: 'orders-z' })).rejects.toMatchObject({ name: 'DBInstanceNotFoundFault' });
  });
});

describe('an instance endpoint under a security group', () => {
  it('refuses new connections once no group admits clients, keeps the established ones, drops them all on reboot', async () => {
    const server = net.createServer((s) => s.pipe(s)); // echo
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const proxy = new InstanceProxy('127.0.10.250', () => (server.address() as net.AddressInfo).port);
    await proxy.listen();
    const connect = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(proxy.port, proxy.address, () => resolve(s));
        s.once('error', reject);
      });
    const echo = (s: net.Socket, text: string) => new Promise<string>((resolve, reject) => {
      s.once('data', (d) => resolve(d.toString()));
      s.once('close', () => reject(new Error('closed')));
      s.write(text);
    });
    try {
      const established = await connect();
      expect(await echo(established, 'before')).toBe('before');
      proxy.refuseNew = true;
      const refused = await connect();
      await expect(echo(refused, 'x')).rejects.toThrow('closed');
      expect(await echo(established, 'still')).toBe('still');
      proxy.dropAll();
      await expect(echo(established, 'after reboot')).rejects.toThrow();
    } finally {
      await proxy.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('SSM stand-in: a worker instance cut off', () => {
  let dir: string;
  afterEach(() => {
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  // one second of SSM's timings lasts 10 ms here: a cut-off instance is Online for 40 s = 400 ms, then ConnectionLost
  function ssm() {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ssm-twin-'));
    const template: CfnTemplate = {
      Resources: {
        W1: { Type: 'AWS::EC2::Instance', Properties: { Tags: [{ Key: 'rds-failover:role', Value: 'worker' }] } },
        W2: { Type: 'AWS::EC2::Instance', Properties: { Tags: [{ Key: 'rds-failover:role', Value: 'worker' }] } },
        Unbound: { Type: 'AWS::EC2::Instance', Properties: { Tags: [{ Key: 'rds-failover:role', Value: 'worker' }] } },
        Doc: {
          Type: 'AWS::SSM::Document',
          Properties: { Name: 'drain', DocumentType: 'Command', Content: { schemaVersion: '2.2', mainSteps: [{ action: 'aws:runShellScript', name: 'd', inputs: { timeoutSeconds: '20', runCommand: ['echo ran'] } }] } },
        },
      },
    };
    const deployed = new DeployedTemplate(template, { account: '123456789012', region: 'eu-west-1', stackName: 'S' });
    const worker = (n: number) => ({ bufferPath: path.join(dir, `w${n}.sqlite`), configPath: path.join(dir, `w${n}.json`) });
    const twin = new SsmTwin(deployed, { workers: [worker(1), worker(2)], workerLayout: { agentCommand: '/usr/local/bin/agent', bufferPath: '/var/lib/buffer' }, localAgentCommand: ['true'], workDir: dir, secondMs: 10, connectionLostAfterSeconds: 40 });
    return { twin, h: twin.handlers(), ids: ['W1', 'W2', 'Unbound'].map((id) => deployed.ref(id)) };
  }

  type Info = { InstanceId: string; PingStatus: string; LastPingDateTime: Date };
  async function list(h: ReturnType<SsmTwin['handlers']>, filters: { Key: string; Values: string[] }[] = []): Promise<Info[]> {
    return ((await h.DescribeInstanceInformation!({ Filters: filters })) as { InstanceInformationList: Info[] }).InstanceInformationList;
  }

  async function invocation(h: ReturnType<SsmTwin['handlers']>, CommandId: string, InstanceId: string) {
    return (await h.GetCommandInvocation!({ CommandId, InstanceId })) as { Status: string; StatusDetails: string; ResponseCode: number; StandardOutputContent: string };
  }

  async function until(check: () => Promise<boolean>) {
    while (!(await check())) await sleep(20);
  }

  it('is listed Online with its last ping frozen at the cut-off for connectionLostAfterSeconds, then ConnectionLost; Online again once reconnected', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00.000Z'), toFake: ['Date'] });
    const { twin, h, ids } = ssm();
    expect((await list(h)).map((i) => [i.InstanceId, i.PingStatus])).toEqual([[ids[0], 'Online'], [ids[1], 'Online']]);
    vi.setSystemTime(new Date('2026-01-01T00:01:00.000Z'));
    twin.setReachable(ids[1]!, false);
    vi.setSystemTime(new Date('2026-01-01T00:01:00.399Z'));
    const justBefore = await list(h, [{ Key: 'tag:rds-failover:role', Values: ['worker'] }]);
    expect(justBefore.map((i) => [i.InstanceId, i.PingStatus, i.LastPingDateTime.toISOString()])).toEqual([
      [ids[0], 'Online', '2026-01-01T00:01:00.399Z'],
      [ids[1], 'Online', '2026-01-01T00:01:00.000Z'],
    ]);
    vi.setSystemTime(new Date('2026-01-01T00:01:00.400Z'));
    const lost = await list(h, [{ Key: 'PingStatus', Values: ['ConnectionLost'] }]);
    expect(lost.map((i) => [i.InstanceId, i.PingStatus, i.LastPingDateTime.toISOString()])).toEqual([[ids[1], 'ConnectionLost', '2026-01-01T00:01:00.000Z']]);
    vi.setSystemTime(new Date('2026-01-01T00:05:00.000Z'));
    twin.setReachable(ids[1]!, true);
    expect((await list(h, [{ Key: 'InstanceIds', Values: [ids[1]!] }])).map((i) => [i.PingStatus, i.LastPingDateTime.toISOString()])).toEqual([['Online', '2026-01-01T00:05:00.000Z']]);
  });

  it('refuses an InstanceIds filter naming an instance SSM does not manage (no agent registered, or unknown) with InvalidInstanceId, as AWS does', async () => {
    const { h, ids } = ssm();
    for (const id of [ids[2]!, 'i-0123456789abcdef0']) {
      await expect(list(h, [{ Key: 'InstanceIds', Values: [ids[0]!, id] }])).rejects.toMatchObject({ name: 'InvalidInstanceId' });
    }
    expect((await list(h, [{ Key: 'InstanceIds', Values: [ids[0]!] }])).map((i) => i.InstanceId)).toEqual([ids[0]]);
  });

  it('accepts a command for it and holds it Pending; past TimeoutSeconds + the execution timeout it is TimedOut / DeliveryTimedOut and never runs', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const { twin, h, ids } = ssm();
    twin.setReachable(ids[1]!, false);
    // TimeoutSeconds 30 + the document's execution timeout 20 s = 500 ms here
    const sent = (await h.SendCommand!({ InstanceIds: [ids[1]!], DocumentName: 'drain', TimeoutSeconds: 30 })) as { Command: { CommandId: string; Status: string } };
    expect(sent.Command.Status).toBe('Pending');
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'Pending', StatusDetails: 'Pending', ResponseCode: -1 });
    // past TimeoutSeconds alone it is still Pending (it will not run any more, but SSM says so only at ExpiresAfter)
    await vi.advanceTimersByTimeAsync(301);
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'Pending', StatusDetails: 'Pending' });
    await vi.advanceTimersByTimeAsync(198);
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'Pending', StatusDetails: 'Pending' });
    await vi.advanceTimersByTimeAsync(1);
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toEqual(expect.objectContaining({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut', ResponseCode: -1, StandardOutputContent: '' }));
    twin.setReachable(ids[1]!, true);
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut', StandardOutputContent: '' });
    await expect(h.SendCommand!({ InstanceIds: [ids[2]!], DocumentName: 'drain' })).rejects.toThrow(`Instances [[${ids[2]}]] not in a valid state`);
    twin.stop();
  });

  it('reachable again after TimeoutSeconds but before ExpiresAfter: the command does not run, and is DeliveryTimedOut at ExpiresAfter', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const { twin, h, ids } = ssm();
    twin.setReachable(ids[1]!, false);
    const sent = (await h.SendCommand!({ InstanceIds: [ids[1]!], DocumentName: 'drain', TimeoutSeconds: 30 })) as { Command: { CommandId: string; ExpiresAfter: Date } };
    expect(sent.Command.ExpiresAfter.getTime()).toBe(Date.now() + 500);
    await vi.advanceTimersByTimeAsync(301);
    twin.setReachable(ids[1]!, true);
    await twin.settle();
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'Pending', StandardOutputContent: '' });
    await vi.advanceTimersByTimeAsync(199);
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut', StandardOutputContent: '' });
    twin.stop();
  });

  it('an invocation InProgress at ExpiresAfter (it ran, but its instance was cut off and could not report) is DeliveryTimedOut; reconnected before, its result is reported', async () => {
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout'] });
    const { twin, h, ids } = ssm();
    const send = async () => ((await h.SendCommand!({ InstanceIds: [ids[1]!], DocumentName: 'drain', TimeoutSeconds: 30 })) as { Command: { CommandId: string } }).Command.CommandId;
    const lost = await send();
    twin.setReachable(ids[1]!, false); // cut off while the command runs
    await twin.settle();
    expect(await invocation(h, lost, ids[1]!)).toMatchObject({ Status: 'InProgress', StatusDetails: 'InProgress', ResponseCode: -1 });
    await vi.advanceTimersByTimeAsync(500);
    expect(await invocation(h, lost, ids[1]!)).toMatchObject({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut' });
    twin.setReachable(ids[1]!, true);
    expect(await invocation(h, lost, ids[1]!)).toMatchObject({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut' });

    const reported = await send();
    twin.setReachable(ids[1]!, false);
    await twin.settle();
    expect((await invocation(h, reported, ids[1]!)).Status).toBe('InProgress');
    twin.setReachable(ids[1]!, true);
    expect(await invocation(h, reported, ids[1]!)).toMatchObject({ Status: 'Success', StatusDetails: 'Success', ResponseCode: 0, StandardOutputContent: 'ran\n' });
    twin.stop();
  });

  it('delivers a pending command when it is reachable again before the timeout', async () => {
    const { twin, h, ids } = ssm();
    twin.setReachable(ids[1]!, false);
    const sent = (await h.SendCommand!({ InstanceIds: [ids[1]!], DocumentName: 'drain', TimeoutSeconds: 3000 })) as { Command: { CommandId: string } };
    await sleep(100);
    expect((await invocation(h, sent.Command.CommandId, ids[1]!)).Status).toBe('Pending');
    twin.setReachable(ids[1]!, true);
    await until(async () => (await invocation(h, sent.Command.CommandId, ids[1]!)).Status === 'Success');
    expect(await invocation(h, sent.Command.CommandId, ids[1]!)).toMatchObject({ StatusDetails: 'Success', ResponseCode: 0, StandardOutputContent: 'ran\n' });
    await twin.settle();
    twin.stop();
  });
});

it('resolves intrinsics as CloudFormation would: Ref, GetAtt Arn, Join, Sub, pseudo parameters', () => {
  const d = new DeployedTemplate(
    {
      Resources: {
        T: { Type: 'AWS::DynamoDB::Table', Properties: { TableName: 'locks' } },
        Topic: { Type: 'AWS::SNS::Topic' },
        P: { Type: 'AWS::SSM::Parameter', Properties: { Name: '/x/y', Value: { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['T', 'Arn'] }, '|', { Ref: 'Topic' }]] } } },
        Q: { Type: 'AWS::SSM::Parameter', Properties: { Name: { 'Fn::Sub': 'in-${AWS::Region}-${T}' }, Value: 'v' } },
      },
    },
    { account: '123456789012', region: 'eu-west-1', stackName: 'S' },
  );
  expect(d.property('P', 'Value')).toBe(`arn:aws:dynamodb:eu-west-1:123456789012:table/locks|arn:aws:sns:eu-west-1:123456789012:${d.name('Topic')}`);
  expect(d.ref('Q')).toBe('in-eu-west-1-locks');
  expect(d.attribute('P', 'Arn')).toBe('arn:aws:ssm:eu-west-1:123456789012:parameter/x/y');
  expect(() => d.resolve({ 'Fn::ImportValue': 'x' })).toThrow('the twin cannot resolve Fn::ImportValue');
});

it('the condition-key check flags a key the action does not support', async () => {
  const { unsupportedConditionKeys } = await import('../../../src/local/aws-twin/iam-policies.js');
  const found = await unsupportedConditionKeys([
    {
      name: 'p',
      document: {
        Statement: [
          { Sid: 'ok', Effect: 'Allow', Action: 'rds:PromoteReadReplica', Resource: '*', Condition: { StringEquals: { 'aws:ResourceTag/x': 'y' } } },
          { Sid: 'bad', Effect: 'Allow', Action: 'ssm:GetCommandInvocation', Resource: '*', Condition: { StringEquals: { 'ssm:resourceTag/x': 'y' } } },
        ],
      },
    },
  ]);
  expect(found).toEqual([{ policy: 'p', statement: 'bad', action: 'ssm:GetCommandInvocation', key: 'ssm:resourceTag/x' }]);
});
