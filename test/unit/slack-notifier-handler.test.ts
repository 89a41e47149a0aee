import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mockClient } from 'aws-sdk-client-mock';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SNSEvent } from 'aws-lambda';
import { encodeNotification } from '../../src/core/notification-envelope.js';

/** The real slack-notifier handler, with Secrets Manager mocked and a local server standing in for Slack. */
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-webhook-AbCdEf';
const secrets = mockClient(SecretsManagerClient);
let server: Server;
let hookUrl: string;
let statuses: number[] = [];
const received: unknown[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(statuses.shift() ?? 200).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T/B/token`;
  Object.assign(process.env, { CLUSTER_ID: 'prod', WEBHOOK_SECRET_ARN: SECRET_ARN, DASHBOARD_URL: 'https://example.test/dashboard' });
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  secrets.reset();
  received.length = 0;
  statuses = [];
});

function snsEvent(message: string): SNSEvent {
  return {
    Records: [
      {
        EventSource: 'aws:sns',
        EventVersion: '1.0',
        EventSubscriptionArn: 'arn:aws:sns:eu-west-1:123456789012:prod-alerts:sub',
        Sns: {
          Type: 'Notification',
          MessageId: 'msg-1',
          TopicArn: 'arn:aws:sns:eu-west-1:123456789012:prod-alerts',
          Subject: 'subject',
          Message: message,
          Timestamp: '2026-03-01T10:00:00.000Z',
          SignatureVersion: '1',
          Signature: 'x',
          SigningCertUrl: 'https://example.test/cert',
          UnsubscribeUrl: 'https://example.test/unsub',
          MessageAttributes: {},
        },
      },
    ],
  };
}

describe('slack-notifier handler', () => {
  it('reads the webhook URL from the secret and posts the formatted message', async () => {
    secrets.on(GetSecretValueCommand, { SecretId: SECRET_ARN }).resolves({ SecretString: JSON.stringify({ url: hookUrl }) });
    const { handler } = await import('../../lambda/slack-notifier/index.js');
    const result = await handler(
      snsEvent(encodeNotification({ source: 'runbook', severity: 'critical', clusterId: 'prod', title: 'promote prod-b: failed', fields: { step: 'promote' }, at: '2026-03-01T10:00:00.000Z' })),
    );
    expect(result).toEqual({ delivered: 1 });
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([{ SecretId: SECRET_ARN }]);
    expect(received).toHaveLength(1);
    expect((received[0] as { text: string }).text).toBe(':red_circle: CRITICAL [prod] promote prod-b: failed');
    expect(JSON.stringify(received[0])).toContain('<https://example.test/dashboard|Dashboard>');

    // A 4xx from Slack fails the invocation (Lambda retries it, then the DLQ gets it); the cached secret is reused.
    statuses = [404];
    await expect(handler(snsEvent('plain text'))).rejects.toThrow('1 of 1 message(s) not delivered to Slack: msg-1: Slack rejected the message: HTTP 404 ok');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });
});
