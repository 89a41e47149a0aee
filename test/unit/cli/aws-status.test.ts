/**
 * status, drain and reconcile against AWS: SSM parameters, DescribeDBInstances, CloudWatch GetMetricData,
 * SSM Run Command, with exact parameters, and the states the lag and backlog policies give.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, GetParameterCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WORKER_CLUSTER_TAG } from '../../../src/cli/commands/drain.js';
import type { StatusReport } from '../../../src/cli/commands/status.js';
import { WORKER_TAGS } from '../../../lib/buffered-workers.js';
import { stackName } from '../../../lib/failover-stack.js';
import { defaultStackName } from '../../../src/cli/aws/aws-target.js';
import { defaultNodeWindows, parseConfig } from '../../../lib/config.js';
import { runInProcess } from './cli-harness.js';

const TOPOLOGY = '/rds-failover/orders/topology';
const WRITER = '/rds-failover/orders/writer-instance-id';
const NOW = Date.parse('2025-03-01T10:00:00.000Z');

const ssm = mockClient(SSMClient);
const rds = mockClient(RDSClient);
const cw = mockClient(CloudWatchClient);
const cfn = mockClient(CloudFormationClient);

function topology(primary = 'a', nodes = ['a', 'b', 'c', 'd']): void {
  ssm.on(GetParameterCommand, { Name: TOPOLOGY }).resolves({
    Parameter: {
      Value: JSON.stringify({
        version: 1,
        clusterId: 'orders',
        primary,
        nodes: nodes.map((n) => ({ name: n, instanceId: `orders-${n}`, role: n === primary ? 'primary' : 'replica' })),
      }),
    },
  });
  ssm.on(GetParameterCommand, { Name: WRITER }).resolves({ Parameter: { Value: `orders-${primary}` } });
}

beforeEach(() => {
  ssm.reset();
  rds.reset();
  cw.reset();
  cfn.reset();
});

describe('status against AWS', () => {
  it('reads the topology, the published lag and backlog, and judges them with the monitor policies', async () => {
    topology();
    const instance = (id: string, status: string, source?: string) => ({
      DBInstanceIdentifier: id,
      DBInstanceStatus: status,
      Endpoint: { Address: `${id}.abc.eu-west-1.rds.amazonaws.com`, Port: 5432 },
      ...(source ? { ReadReplicaSourceDBInstanceIdentifier: source } : {}),
    });
    rds.on(DescribeDBInstancesCommand).resolves({
      DBInstances: [instance('orders-a', 'available'), instance('orders-b', 'available', 'orders-a'), instance('orders-c', 'rebooting', 'orders-a'), instance('orders-d', 'available', 'orders-a')],
    });
    const at = (s: number) => new Date(NOW - s * 1000);
    cw.on(GetMetricDataCommand)
      .callsFake((input: { MetricDataQueries: { Id: string }[] }) => {
        if (input.MetricDataQueries[0]!.Id === 's0') {
          // Lag: b is 100 MiB behind (WARN by bytes), c has old figures, d published nothing.
          return {
            MetricDataResults: [
              { Id: 's0', Timestamps: [at(30), at(90)], Values: [12, 50] },
              { Id: 'b0', Timestamps: [at(30)], Values: [100 * 1024 * 1024] },
              { Id: 's1', Timestamps: [at(300)], Values: [1] },
              { Id: 'b1', Timestamps: [at(300)], Values: [10] },
              { Id: 's2', Timestamps: [], Values: [] },
              { Id: 'b2', Timestamps: [], Values: [] },
            ],
          };
        }
        // Backlog (CloudWatchBufferBacklog): w1 healthy and confirmed, w2 with a 400 s old pending row (CRIT), w3
        // idle but not confirmed since the failover (WARN).
        return {
          MetricDataResults: [
            { Id: 'pending', Label: 'pending i-1', Timestamps: [at(60)], Values: [5] },
            { Id: 'age', Label: 'age i-1', Timestamps: [at(60)], Values: [2] },
            { Id: 'unconfirmed', Label: 'unconfirmed i-1', Timestamps: [at(60)], Values: [0] },
            { Id: 'pending', Label: 'pending i-3', Timestamps: [at(60)], Values: [0] },
            { Id: 'age', Label: 'age i-3', Timestamps: [at(60)], Values: [0] },
            { Id: 'unconfirmed', Label: 'unconfirmed i-3', Timestamps: [at(60)], Values: [1] },
            { Id: 'pending', Label: 'pending i-2', Timestamps: [at(60)], Values: [900] },
            { Id: 'age', Label: 'age i-2', Timestamps: [at(60)], Values: [400] },
          ],
        };
      });

    const run = await runInProcess(['status', '--cluster-id', 'orders', '--region', 'eu-west-1', '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    expect(ssm.commandCalls(GetParameterCommand).map((c) => c.args[0].input.Name).sort()).toEqual([TOPOLOGY, WRITER]);
    expect(rds.commandCalls(DescribeDBInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { Filters: [{ Name: 'db-instance-id', Values: ['orders-a', 'orders-b', 'orders-c', 'orders-d'] }] },
    ]);
    const lagCall = cw.commandCalls(GetMetricDataCommand).find((c) => c.args[0].input.MetricDataQueries![0]!.Id === 's0')!.args[0].input;
    expect(lagCall.MetricDataQueries!.slice(0, 2)).toEqual([
      {
        Id: 's0',
        MetricStat: {
          Metric: { Namespace: 'RdsFailover', MetricName: 'ReplicationLagSeconds', Dimensions: [{ Name: 'ClusterId', Value: 'orders' }, { Name: 'ReplicaId', Value: 'orders-b' }] },
          Period: 60,
          Stat: 'Maximum',
        },
        ReturnData: true,
      },
      {
        Id: 'b0',
        MetricStat: {
          Metric: { Namespace: 'RdsFailover', MetricName: 'ReplicationLagBytes', Dimensions: [{ Name: 'ClusterId', Value: 'orders' }, { Name: 'ReplicaId', Value: 'orders-b' }] },
          Period: 60,
          Stat: 'Maximum',
        },
        ReturnData: true,
      },
    ]);
    expect(lagCall.MetricDataQueries).toHaveLength(6);
    expect(lagCall.StartTime).toEqual(new Date(NOW - 600_000));
    expect(lagCall.EndTime).toEqual(new Date(NOW));

    const report = JSON.parse(run.stdout) as StatusReport;
    expect(report).toMatchObject({ source: 'aws', clusterId: 'orders', writerId: 'orders-a', primaryId: 'orders-a', state: 'CRIT' });
    const byId = Object.fromEntries(report.nodes.map((n) => [n.id, n]));
    expect(byId['orders-a']).toMatchObject({ role: 'primary', writer: true, status: 'available', state: 'OK', endpoint: 'orders-a.abc.eu-west-1.rds.amazonaws.com:5432' });
    expect(byId['orders-b']).toMatchObject({ role: 'replica', lagSeconds: 12, lagBytes: 100 * 1024 * 1024, state: 'WARN' });
    expect(byId['orders-c']).toMatchObject({ state: 'UNREACHABLE', detail: 'RDS status rebooting' });
    expect(byId['orders-d']).toMatchObject({ state: 'UNKNOWN', lagSeconds: null, detail: 'no lag published in the last 10 minutes: is the lag monitor running?' });
    expect(report.workers).toEqual([
      { id: 'i-1', pendingRows: 5, oldestPendingAgeSeconds: 2, at: '2025-03-01T09:59:00.000Z', state: 'OK', detail: null, confirmed: true },
      { id: 'i-2', pendingRows: 900, oldestPendingAgeSeconds: 400, at: '2025-03-01T09:59:00.000Z', state: 'CRIT', detail: null },
      {
        id: 'i-3',
        pendingRows: 0,
        oldestPendingAgeSeconds: 0,
        at: '2025-03-01T09:59:00.000Z',
        state: 'WARN',
        detail: 'has not confirmed the newest epoch: its agent has not yet re-sent what the failover may have lost (WorkerUnconfirmed)',
        confirmed: false,
      },
    ]);
    expect(byId['orders-b']!.detail).toBe('lag as of 2025-03-01T09:59:30.000Z');
    expect(report.sampledAt).toBe('2025-03-01T10:00:00.000Z');
  });

  it('the table says which replica is where and why', async () => {
    topology('b', ['a', 'b', 'c']);
    rds.on(DescribeDBInstancesCommand).resolves({
      DBInstances: [
        { DBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'available' },
        { DBInstanceIdentifier: 'orders-b', DBInstanceStatus: 'available' },
        { DBInstanceIdentifier: 'orders-c', DBInstanceStatus: 'available', ReadReplicaSourceDBInstanceIdentifier: 'orders-a' },
      ],
    });
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    const run = await runInProcess(['status', '--cluster-id', 'orders']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('cluster orders (aws): writer orders-b, primary NONE, state CRIT');
    expect(run.stdout).toMatch(/orders-a\s+primary\s+available.*CRIT\s+standalone instance that is not the writer \(orders-b\)/);
    expect(run.stdout).toMatch(/orders-c\s+replica\s+available.*BROKEN\s+replicates from orders-a, not from the writer orders-b/);
    expect(run.stdout).toContain('workers: none (no buffer metrics in CloudWatch for orders in the last 10 minutes)');
  });

  it('the table says which worker has not confirmed the epoch since the failover', async () => {
    topology('a', ['a']);
    rds.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: 'orders-a', DBInstanceStatus: 'available' }] });
    cw.on(GetMetricDataCommand).callsFake((input: { MetricDataQueries: { Id: string }[] }) =>
      input.MetricDataQueries[0]!.Id === 'pending'
        ? {
            MetricDataResults: [
              { Id: 'pending', Label: 'pending i-7', Timestamps: [new Date()], Values: [0] },
              { Id: 'unconfirmed', Label: 'unconfirmed i-7', Timestamps: [new Date()], Values: [1] },
            ],
          }
        : { MetricDataResults: [] },
    );
    const run = await runInProcess(['status', '--cluster-id', 'orders']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/i-7\s+0\s+.*unconfirmed\s+WARN\s+has not confirmed the newest epoch/);
  });
});

describe('drain against AWS', () => {
  it('runs the stack\'s drain document on every tagged worker through SSM Run Command and reports each summary', async () => {
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-0aaa' }, { InstanceId: 'i-0bbb' }] });
    ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => ({ Command: { CommandId: `cmd-${input.InstanceIds[0]}` } }));
    const epoch = '3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
    const summary = { epochId: epoch, examined: 10, resent: 4, inserted: 1, alreadyPresent: 3, remainingPending: 0, rejected: 0 };
    ssm
      .on(GetCommandInvocationCommand, { CommandId: 'cmd-i-0aaa' })
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({ Status: 'Success', StandardOutputContent: `${JSON.stringify(summary)}\n` });
    ssm.on(GetCommandInvocationCommand, { CommandId: 'cmd-i-0bbb' }).resolves({ Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1, StandardErrorContent: 'error: writer unreachable' });

    const run = await runInProcess(['drain', '--cluster-id', 'orders', '--epoch', epoch]);

    expect(ssm.commandCalls(DescribeInstanceInformationCommand)[0]!.args[0].input).toEqual({
      Filters: [{ Key: 'tag:rds-failover:cluster', Values: ['orders'] }, { Key: 'tag:rds-failover:role', Values: ['worker'] }],
      MaxResults: 50,
      NextToken: undefined,
    });
    // the stack's drain document, found from the cluster id; the epoch is its only input
    expect(ssm.commandCalls(SendCommandCommand).map((c) => [c.args[0].input.DocumentName, c.args[0].input.DocumentVersion, c.args[0].input.Parameters])).toEqual([
      ['rds-failover-orders-drain', '$LATEST', { epoch: [epoch] }],
      ['rds-failover-orders-drain', '$LATEST', { epoch: [epoch] }],
    ]);
    expect(ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.InstanceIds)).toEqual([['i-0aaa'], ['i-0bbb']]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`drain: converge on epoch ${epoch}; re-send rows synced outside its history, plus every pending row`);
    expect(run.stdout).toMatch(/i-0aaa\s+done\s+3f2b1c4d\s+10\s+4\s+1\s+3\s+0\s+0\s+2\.00s/);
    expect(run.stdout).toMatch(/i-0bbb\s+failed.*error: writer unreachable/);
    expect(run.stderr).toContain('error: drain did not complete on i-0bbb (failed); it is idempotent: re-run it');
  });

  it('the worker tag and the default stack name are the ones the stack uses', () => {
    expect(WORKER_CLUSTER_TAG).toBe(WORKER_TAGS.cluster);
    expect(defaultStackName('orders')).toBe(stackName(parseConfig({ clusterId: 'orders', workers: { streams: { events: { table: 'events', key: ['id'], columns: ['id'] } } } })));
  });
});

describe('reconcile against AWS', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'reconcile-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const config = {
    clusterId: 'orders',
    database: { nodes: ['a', 'b', 'c'], instanceClass: 'db.r7g.large', windows: { c: { maintenance: 'sun:06:00-sun:06:30', backup: '23:10-23:40' } } },
    workers: { count: 2, streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } },
  };

  it('shows the change without --write, writes it with --write, and prints the cdk diff command', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'prod.json');
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
    // After a failover a -> b the runbook removed the fenced a from the topology parameter.
    topology('b', ['b', 'c']);

    const preview = await runInProcess(['reconcile', '--config', 'prod.json'], { cwd: dir });
    expect(preview.stderr).toBe("");
    expect(preview.code).toBe(0);
    expect(ssm.commandCalls(GetParameterCommand).map((c) => c.args[0].input)).toEqual([{ Name: TOPOLOGY }]);
    expect(cfn.calls()).toHaveLength(0);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(config);
    expect(preview.stdout).toContain('primary: a -> b (the promoted instance stays in place)');
    expect(preview.stdout).toContain('node a is retired');
    expect(preview.stdout).toContain('maintenance and backup windows pinned to their current values');
    expect(preview.stdout).toContain('not written: re-run with --write to apply');
    expect(preview.stdout).toContain('review the stack change: npx cdk diff -c config=prod.json');

    const write = await runInProcess(['reconcile', '--config', 'prod.json', '--write', '--json'], { cwd: dir });
    expect(write.code).toBe(0);
    expect(JSON.parse(write.stdout)).toMatchObject({ changed: true, written: true, review: 'npx cdk diff -c config=prod.json' });
    const written = JSON.parse(readFileSync(file, 'utf8'));
    expect(written).toEqual({
      ...config,
      database: {
        ...config.database,
        nodes: ['b', 'c'],
        primary: 'b',
        originalPrimary: 'a',
        retired: ['a'],
        windows: { b: defaultNodeWindows(1), c: config.database.windows.c, a: defaultNodeWindows(0) },
      },
    });
    // What the stack deploys: same instances' windows and creation properties; only roles moved.
    const beforeParsed = parseConfig(config);
    const afterParsed = parseConfig(written);
    expect(afterParsed.database.windows).toEqual(beforeParsed.database.windows);
    expect(afterParsed.database.originalPrimary).toBe(beforeParsed.database.originalPrimary);

    const again = await runInProcess(['reconcile', '--config', 'prod.json', '--write'], { cwd: dir });
    expect(again.stdout).toContain('the config already matches the live topology: nothing to change');
  });

  it('refuses a config of another cluster (exit 2)', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ ...config, clusterId: 'billing' }));
    ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify({ version: 1, clusterId: 'orders', primary: 'b', nodes: [{ name: 'b', instanceId: 'orders-b', role: 'primary' }] }) } });
    const run = await runInProcess(['reconcile', '--config', 'c.json', '--cluster-id', 'orders'], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("c.json is the config of cluster 'billing', but the live topology (SSM parameter /rds-failover/orders/topology) is of 'orders'");
  });

  it('names a config file it cannot read', async () => {
    const run = await runInProcess(['reconcile', '--config', 'nope.json'], { cwd: os.tmpdir() });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--config: cannot read nope.json (ENOENT)');
    expect(ssm.calls()).toHaveLength(0);
  });
});
