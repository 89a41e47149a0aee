import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Context, ScheduledEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { decodeNotification } from '../../src/core/notification-envelope.js';

/**
 * The real lag-monitor handler with every AWS call mocked. The "database" is a TCP server that answers
 * PostgreSQL's SSLRequest with 'N' (no TLS): the handler must refuse to go on in plain text, so every node
 * is unreachable, and after K samples the monitor publishes that to SNS and keeps its state in DynamoDB.
 */
const ACCOUNT = '123456789012';
const DB_SECRET = `arn:aws:secretsmanager:eu-west-1:${ACCOUNT}:secret:prod-db-AbCdEf`;
const TOPIC = `arn:aws:sns:eu-west-1:${ACCOUNT}:prod-alerts`;
const secrets = mockClient(SecretsManagerClient);
const rds = mockClient(RDSClient);
const dynamodb = mockClient(DynamoDBClient);
const sns = mockClient(SNSClient);
const cloudwatch = mockClient(CloudWatchClient);
let server: Server;
const sockets = new Set<Socket>();
let sslRequests = 0;

beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', (data) => {
      // SSLRequest: length 8, code 80877103.
      if (data.length >= 8 && data.readInt32BE(4) === 80877103) sslRequests += 1;
      socket.end('N');
    });
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server.close(resolve));
  for (const mock of [secrets, rds, dynamodb, sns, cloudwatch]) mock.restore();
});

describe('lag-monitor handler', () => {
  it('wires the AWS adapters, insists on TLS, alerts through SNS and keeps state in DynamoDB', async () => {
    const port = (server.address() as AddressInfo).port;
    Object.assign(process.env, {
      CLUSTER_ID: 'prod',
      DB_INSTANCE_IDS: '["prod-a","prod-b"]',
      DB_SECRET_ARN: DB_SECRET,
      ALERT_TOPIC_ARN: TOPIC,
      STATE_TABLE_NAME: 'prod-monitor-state',
      MONITOR_CONFIG: JSON.stringify({ samplesToChange: 2, sampleIntervalMs: 50, runDurationMs: 200 }),
      POWERTOOLS_METRICS_DISABLED: 'true',
    });
    secrets.on(GetSecretValueCommand, { SecretId: DB_SECRET }).resolves({ SecretString: JSON.stringify({ username: 'monitor', password: 'pw' }) });
    for (const id of ['prod-a', 'prod-b']) {
      rds.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: id }).resolves({ DBInstances: [{ DBInstanceStatus: 'available', Endpoint: { Address: '127.0.0.1', Port: port } }] });
    }
    dynamodb.on(GetItemCommand).resolves({});
    const saved: Record<string, unknown>[] = [];
    dynamodb.on(PutItemCommand).callsFake((input) => {
      saved.push(input);
      return {};
    });
    sns.on(PublishCommand).resolves({ MessageId: 'm-1' });
    cloudwatch.on(GetMetricDataCommand).resolves({ MetricDataResults: [] });
    vi.spyOn(console, 'info').mockImplementation(() => undefined);
    vi.spyOn(console, 'warn').mockImplementation(() => undefined);

    const { handler } = await import('../../lambda/lag-monitor/index.js');
    const context = { getRemainingTimeInMillis: () => 60_000 } as Context;
    const summary = await handler({} as ScheduledEvent, context);

    expect(sslRequests).toBeGreaterThanOrEqual(2 * 5);
    expect(summary).toMatchObject({ clusterId: 'prod', samples: 5, primary: null, superseded: false, errors: [] });
    expect(summary.levels).toEqual({ cluster: 'UNREACHABLE', 'node:prod-a': 'UNREACHABLE', 'node:prod-b': 'UNREACHABLE' });
    const publishes = sns.commandCalls(PublishCommand).map((c) => c.args[0].input);
    expect(publishes).toHaveLength(1);
    expect(publishes[0]!.TopicArn).toBe(TOPIC);
    const notification = decodeNotification(JSON.parse(publishes[0]!.Message!))!;
    expect(notification).toMatchObject({ source: 'lag-monitor', severity: 'critical', clusterId: 'prod', title: '3 changes on cluster prod: UNREACHABLE cluster prod, UNREACHABLE node prod-a, UNREACHABLE node prod-b' });
    expect(notification.fields['node prod-a']).toBe('UNREACHABLE (was OK): cannot connect: The server does not support SSL connections');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(cloudwatch.commandCalls(GetMetricDataCommand)).toHaveLength(1);
    expect(dynamodb.commandCalls(GetItemCommand)[0]!.args[0].input).toMatchObject({ TableName: 'prod-monitor-state', Key: { ClusterId: { S: 'prod' } } });
    expect(saved.length).toBeGreaterThanOrEqual(2);
    expect(saved[0]).toMatchObject({ TableName: 'prod-monitor-state', ConditionExpression: 'attribute_not_exists(#k)' });
  });
});
