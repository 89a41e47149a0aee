import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { ConditionalCheckFailedException, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { DBInstanceNotFoundFault, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SnsNotifier, snsSubject } from '../../../src/aws/sns-notifier.js';
import { DynamoDbAlertStateStore } from '../../../src/aws/dynamodb-alert-state-store.js';
import { CloudWatchBufferBacklog } from '../../../src/aws/cloudwatch-buffer-backlog.js';
import { PowertoolsMetricsSink } from '../../../src/aws/powertools-metrics-sink.js';
import { describeInstanceEndpoints } from '../../../src/aws/rds-instance-endpoints.js';
import { decodeNotification } from '../../../src/core/notification-envelope.js';
import { StateConflictError } from '../../../src/ports/alert-state-store.js';
import type { Notification } from '../../../src/ports/notifier.js';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:rds-failover-prod-alerts';

describe('SnsNotifier', () => {
  const sns = mockClient(SNSClient);
  beforeEach(() => sns.reset());

  const notification: Notification = {
    source: 'lag-monitor',
    severity: 'critical',
    clusterId: 'prod',
    title: 'CRIT replica prod-b (was WARN) — lag 2 min',
    fields: { replica: 'prod-b', lagBytes: 612368384 },
    text: 'replay is paused',
    at: '2026-03-01T10:00:40.000Z',
  };

  it('publishes the enveloped notification with an ASCII subject and filterable attributes', async () => {
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    await new SnsNotifier(TOPIC, sns as unknown as SNSClient).notify(notification);
    const calls = sns.commandCalls(PublishCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    expect(input).toEqual({
      TopicArn: TOPIC,
      Subject: '[prod] CRIT replica prod-b (was WARN) ? lag 2 min',
      Message: JSON.stringify({ type: 'rds-failover.notification', version: 1, notification }),
      MessageAttributes: {
        source: { DataType: 'String', StringValue: 'lag-monitor' },
        severity: { DataType: 'String', StringValue: 'critical' },
        clusterId: { DataType: 'String', StringValue: 'prod' },
      },
    });
    expect(decodeNotification(JSON.parse(input.Message!))).toEqual(notification);
  });

  it('lets a publish failure reach the caller (the runbook wraps it in notifySafely)', async () => {
    sns.on(PublishCommand).rejects(new Error('KMSAccessDeniedException'));
    await expect(new SnsNotifier(TOPIC, sns as unknown as SNSClient).notify(notification)).rejects.toThrow('KMSAccessDeniedException');
  });

  it('refuses a malformed topic ARN and an oversized message', async () => {
    expect(() => new SnsNotifier('alerts')).toThrow("SnsNotifier: topicArn 'alerts' is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)");
    const big = { ...notification, text: 'x'.repeat(300_000) };
    await expect(new SnsNotifier(TOPIC, sns as unknown as SNSClient).notify(big)).rejects.toThrow(/bytes as JSON; SNS accepts at most 262144: shorten its text or fields/);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(0);
  });

  it('keeps subjects within what SNS accepts', () => {
    expect(snsSubject('a\nb\u00e9')).toBe('a b?');
    expect(snsSubject('x'.repeat(150))).toHaveLength(100);
    expect(snsSubject('\n')).toBe('rds-failover notification');
  });
});

describe('DynamoDbAlertStateStore', () => {
  const ddb = mockClient(DynamoDBClient);
  beforeEach(() => ddb.reset());
  const now = () => new Date('2026-03-01T10:00:00.000Z');
  const store = () => new DynamoDbAlertStateStore('rds-failover-prod-monitor', ddb as unknown as DynamoDBClient, now);

  it('loads with a consistent read', async () => {
    ddb.on(GetItemCommand).resolves({ Item: { ClusterId: { S: 'prod' }, State: { S: '{"schema":1}' }, Version: { N: '7' } } });
    expect(await store().load('prod')).toEqual({ state: { schema: 1 }, version: 7 });
    expect(ddb.commandCalls(GetItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'rds-failover-prod-monitor',
      Key: { ClusterId: { S: 'prod' } },
      ConsistentRead: true,
      ProjectionExpression: '#s, #v',
      ExpressionAttributeNames: { '#s': 'State', '#v': 'Version' },
    });
  });

  it('returns null when nothing is stored and names the broken attribute otherwise', async () => {
    ddb.on(GetItemCommand).resolvesOnce({}).resolvesOnce({ Item: { ClusterId: { S: 'prod' }, State: { S: '{' }, Version: { N: '1' } } });
    expect(await store().load('prod')).toBeNull();
    await expect(store().load('prod')).rejects.toThrow('table rds-failover-prod-monitor, item prod: State is not JSON');
  });

  it('creates the item only if absent, then writes only over the expected version', async () => {
    ddb.on(PutItemCommand).resolves({});
    expect(await store().save('prod', { schema: 1 }, null)).toBe(1);
    expect(await store().save('prod', { schema: 1, x: 2 }, 1)).toBe(2);
    const [first, second] = ddb.commandCalls(PutItemCommand).map((c) => c.args[0].input);
    expect(first).toEqual({
      TableName: 'rds-failover-prod-monitor',
      Item: { ClusterId: { S: 'prod' }, State: { S: '{"schema":1}' }, Version: { N: '1' }, UpdatedAt: { S: '2026-03-01T10:00:00.000Z' } },
      ConditionExpression: 'attribute_not_exists(#k)',
      ExpressionAttributeNames: { '#k': 'ClusterId' },
    });
    expect(second).toEqual({
      TableName: 'rds-failover-prod-monitor',
      Item: { ClusterId: { S: 'prod' }, State: { S: '{"schema":1,"x":2}' }, Version: { N: '2' }, UpdatedAt: { S: '2026-03-01T10:00:00.000Z' } },
      ConditionExpression: '#v = :expected',
      ExpressionAttributeNames: { '#v': 'Version' },
      ExpressionAttributeValues: { ':expected': { N: '1' } },
    });
  });

  it('turns a failed condition into StateConflictError and passes other errors on', async () => {
    ddb.on(PutItemCommand).rejectsOnce(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} })).rejectsOnce(new Error('ProvisionedThroughputExceeded'));
    await expect(store().save('prod', {}, 4)).rejects.toBeInstanceOf(StateConflictError);
    await expect(store().save('prod', {}, 4)).rejects.toThrow('ProvisionedThroughputExceeded');
  });

  it('refuses a bad table name', () => {
    expect(() => new DynamoDbAlertStateStore('a b')).toThrow("tableName 'a b' is not a DynamoDB table name");
  });
});

describe('CloudWatchBufferBacklog', () => {
  const cw = mockClient(CloudWatchClient);
  beforeEach(() => cw.reset());
  const end = new Date('2026-03-01T10:00:00.000Z');

  it('reads the backlog figures and the confirmation of every worker of the cluster in one query, newest point each', async () => {
    cw.on(GetMetricDataCommand)
      .resolvesOnce({
        MetricDataResults: [
          { Id: 'pending', Label: 'pending i-0aaa', Timestamps: [new Date('2026-03-01T09:59:00Z'), new Date('2026-03-01T09:58:00Z')], Values: [120, 90] },
          { Id: 'pending', Label: 'pending i-0bbb', Timestamps: [new Date('2026-03-01T09:57:00Z')], Values: [0] },
          { Id: 'age', Label: 'age i-0aaa', Timestamps: [new Date('2026-03-01T09:59:00Z')], Values: [75] },
          { Id: 'unconfirmed', Label: 'unconfirmed i-0aaa', Timestamps: [new Date('2026-03-01T09:59:00Z')], Values: [1] },
          { Id: 'unconfirmed', Label: 'unconfirmed i-0bbb', Timestamps: [new Date('2026-03-01T09:57:00Z')], Values: [0] },
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        // The second page carries an older point of a series already seen: it must not win.
        MetricDataResults: [{ Id: 'pending', Label: 'pending i-0aaa', Timestamps: [new Date('2026-03-01T09:55:00Z')], Values: [5000] }],
      });
    const backlog = await new CloudWatchBufferBacklog(cw as unknown as CloudWatchClient, { now: () => end }).read('prod');
    expect(backlog).toEqual([
      { workerId: 'i-0aaa', pendingRows: 120, oldestPendingAgeSeconds: 75, unconfirmed: true, at: '2026-03-01T09:59:00.000Z' },
      { workerId: 'i-0bbb', pendingRows: 0, oldestPendingAgeSeconds: null, unconfirmed: false, at: '2026-03-01T09:57:00.000Z' },
    ]);
    const inputs = cw.commandCalls(GetMetricDataCommand).map((c) => c.args[0].input);
    expect(inputs[0]).toEqual({
      MetricDataQueries: [
        {
          Id: 'pending',
          Expression: `SEARCH('{RdsFailover,ClusterId,WorkerId} MetricName="BufferPendingRows" ClusterId="prod"', 'Maximum', 60)`,
          Label: "pending ${PROP('Dim.WorkerId')}",
          ReturnData: true,
        },
        {
          Id: 'age',
          Expression: `SEARCH('{RdsFailover,ClusterId,WorkerId} MetricName="BufferOldestPendingAgeSeconds" ClusterId="prod"', 'Maximum', 60)`,
          Label: "age ${PROP('Dim.WorkerId')}",
          ReturnData: true,
        },
        {
          Id: 'unconfirmed',
          Expression: `SEARCH('{RdsFailover,ClusterId,WorkerId} MetricName="WorkerUnconfirmed" ClusterId="prod"', 'Maximum', 60)`,
          Label: "unconfirmed ${PROP('Dim.WorkerId')}",
          ReturnData: true,
        },
      ],
      StartTime: new Date('2026-03-01T09:50:00.000Z'),
      EndTime: end,
      ScanBy: 'TimestampDescending',
      NextToken: undefined,
    });
    expect(inputs[1]!.NextToken).toBe('page-2');
  });

  it('returns no workers when none reported recently', async () => {
    cw.on(GetMetricDataCommand).resolves({ MetricDataResults: [{ Id: 'pending', Label: 'pending', Timestamps: [], Values: [] }] });
    expect(await new CloudWatchBufferBacklog(cw as unknown as CloudWatchClient, { now: () => end }).read('prod')).toEqual([]);
  });
});

describe('PowertoolsMetricsSink', () => {
  let lines: string[] = [];
  let spy: ReturnType<typeof vi.spyOn>;
  beforeEach(() => {
    lines = [];
    spy = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stdout.write);
  });
  afterEach(() => spy.mockRestore());

  it('writes one EMF document per replica sample with exactly ClusterId and ReplicaId as dimensions', async () => {
    const sink = new PowertoolsMetricsSink(new Metrics({ namespace: 'RdsFailover', serviceName: 'lag-monitor' }));
    const at = Date.parse('2026-03-01T10:00:40.000Z');
    sink.recordLag({ clusterId: 'prod', replicaId: 'prod-b', lagSeconds: 1.5, lagBytes: 6000, at });
    sink.recordLag({ clusterId: 'prod', replicaId: 'prod-c', lagSeconds: null, lagBytes: 0, at: at + 10_000 });
    sink.recordLag({ clusterId: 'prod', replicaId: 'prod-d', lagSeconds: null, lagBytes: null, at });
    await sink.flush();
    const docs = lines.map((l) => JSON.parse(l));
    expect(docs).toEqual([
      {
        _aws: { Timestamp: at, CloudWatchMetrics: [{ Namespace: 'RdsFailover', Dimensions: [['ClusterId', 'ReplicaId']], Metrics: [{ Name: 'ReplicationLagSeconds', Unit: 'Seconds' }, { Name: 'ReplicationLagBytes', Unit: 'Bytes' }] }] },
        ClusterId: 'prod',
        ReplicaId: 'prod-b',
        ReplicationLagSeconds: 1.5,
        ReplicationLagBytes: 6000,
      },
      {
        _aws: { Timestamp: at + 10_000, CloudWatchMetrics: [{ Namespace: 'RdsFailover', Dimensions: [['ClusterId', 'ReplicaId']], Metrics: [{ Name: 'ReplicationLagBytes', Unit: 'Bytes' }] }] },
        ClusterId: 'prod',
        ReplicaId: 'prod-c',
        ReplicationLagBytes: 0,
      },
    ]);
  });
});

describe('describeInstanceEndpoints', () => {
  const rds = mockClient(RDSClient);
  beforeEach(() => rds.reset());

  it('describes each instance by identifier and reports the ones without an endpoint', async () => {
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'prod-a' }).resolves({ DBInstances: [{ Endpoint: { Address: 'prod-a.abc.eu-west-1.rds.amazonaws.com', Port: 5432 }, DBInstanceStatus: 'available' }] });
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'prod-b' }).resolves({ DBInstances: [{ DBInstanceStatus: 'creating' }] });
    rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: 'prod-c' }).rejects(new DBInstanceNotFoundFault({ message: 'DBInstance prod-c not found.', $metadata: {} }));
    const { endpoints, missing } = await describeInstanceEndpoints(['prod-a', 'prod-b', 'prod-c'], rds as unknown as RDSClient);
    expect([...endpoints]).toEqual([['prod-a', { host: 'prod-a.abc.eu-west-1.rds.amazonaws.com', port: 5432 }]]);
    expect(Object.fromEntries(missing)).toEqual({ 'prod-b': 'no endpoint yet (status creating)', 'prod-c': 'DB instance not found' });
    expect(rds.commandCalls(DescribeDBInstancesCommand).map((c) => c.args[0].input)).toEqual([{ DBInstanceIdentifier: 'prod-a' }, { DBInstanceIdentifier: 'prod-b' }, { DBInstanceIdentifier: 'prod-c' }]);
  });

  it('passes other errors on (e.g. access denied)', async () => {
    rds.on(DescribeDBInstancesCommand).rejects(new Error('AccessDenied'));
    await expect(describeInstanceEndpoints(['prod-a'], rds as unknown as RDSClient)).rejects.toThrow('AccessDenied');
  });
});
