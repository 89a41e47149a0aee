import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseRetryAfter, SlackDeliveryError, SlackWebhookClient } from '../../src/slack/webhook-client.js';
import { parseWebhookSecret } from '../../src/slack/webhook-secret.js';
import { SlackNotifier } from '../../src/slack/slack-notifier.js';
import { toSlackMessage, type SlackMessage } from '../../src/slack/block-kit.js';
import { FakeClock } from '../support/monitor-fakes.js';

/** A local HTTP server standing in for Slack; each test scripts its answers. */
type Answer = { status: number; body?: string; headers?: Record<string, string> } | 'hang';
let server: Server;
let url: string;
let answers: Answer[] = [];
let received: { path: string; contentType: string | undefined; body: unknown }[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (chunk) => (data += chunk));
    req.on('end', () => {
      received.push({ path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(data) });
      const answer = answers.shift() ?? { status: 200, body: 'ok' };
      if (answer === 'hang') return; // never answers: the client's timeout must fire
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T000/B000/secret-token`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  answers = [];
  received = [];
});

const message: SlackMessage = toSlackMessage({ source: 'runbook', severity: 'info', clusterId: 'prod', title: 'promote pg-1: done', fields: {}, at: '2026-03-01T10:00:00.000Z' });

describe('SlackWebhookClient', () => {
  it('posts the Block Kit JSON to the webhook', async () => {
    const report = await new SlackWebhookClient(url, { clock: new FakeClock(0) }).post(message);
    expect(report).toEqual({ attempts: 1, waitedMs: 0, retriedStatuses: [] });
    expect(received).toEqual([{ path: '/services/T000/B000/secret-token', contentType: 'application/json; charset=utf-8', body: message }]);
  });

  it('waits as long as a 429 Retry-After says, then delivers', async () => {
    const clock = new FakeClock(0);
    answers = [{ status: 429, body: 'rate_limited', headers: { 'retry-after': '3' } }, { status: 200, body: 'ok' }];
    const report = await new SlackWebhookClient(url, { clock }).post(message);
    expect(clock.sleeps).toEqual([3000]);
    expect(report).toEqual({ attempts: 2, waitedMs: 3000, retriedStatuses: [429] });
    expect(received).toHaveLength(2);
  });

  it('retries 5xx and network failures with exponential backoff', async () => {
    const clock = new FakeClock(0);
    answers = [{ status: 503 }, { status: 500 }, { status: 502 }, { status: 200, body: 'ok' }];
    const report = await new SlackWebhookClient(url, { clock, baseBackoffMs: 100 }).post(message);
    expect(clock.sleeps).toEqual([100, 200, 400]);
    expect(report.retriedStatuses).toEqual([503, 500, 502]);
    expect(report.attempts).toBe(4);
  });

  it('gives up with a retryable error after maxAttempts, without the URL in the message', async () => {
    const clock = new FakeClock(0);
    answers = [{ status: 503, body: 'no_service' }, { status: 503, body: 'no_service' }, { status: 503, body: 'no_service' }];
    const error = await new SlackWebhookClient(url, { clock, maxAttempts: 3, baseBackoffMs: 10 }).post(message).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlackDeliveryError);
    expect(error).toMatchObject({ status: 503, retryable: true, attempts: 3, message: 'Slack unavailable after 3 attempts (last: HTTP 503 no_service)' });
    expect((error as Error).message).not.toContain('secret-token');
  });

  it('does not retry a rejected payload or a revoked webhook', async () => {
    answers = [{ status: 404, body: 'no_team' }];
    await expect(new SlackWebhookClient(url, { clock: new FakeClock(0) }).post(message)).rejects.toMatchObject({
      status: 404,
      retryable: false,
      attempts: 1,
      message: 'Slack rejected the message: HTTP 404 no_team',
    });
    expect(received).toHaveLength(1);
  });

  it('refuses to wait past its budget for a long Retry-After (so a Lambda can hand the message to its DLQ)', async () => {
    const clock = new FakeClock(0);
    answers = [{ status: 429, headers: { 'retry-after': '120' } }];
    const error = await new SlackWebhookClient(url, { clock, maxTotalWaitMs: 20_000 }).post(message).catch((e: unknown) => e);
    expect(error).toMatchObject({ retryable: true, status: 429 });
    expect((error as Error).message).toContain('waiting 120000 ms more would exceed the 20000 ms budget');
    expect(clock.sleeps).toEqual([]);
  });

  it('treats a request that times out as a network failure and retries it', async () => {
    const clock = new FakeClock(0);
    answers = ['hang', { status: 200, body: 'ok' }];
    const report = await new SlackWebhookClient(url, { clock, requestTimeoutMs: 200, baseBackoffMs: 50 }).post(message);
    expect(report).toMatchObject({ attempts: 2, retriedStatuses: ['network'] });
  });

  it('retries when nothing listens, then reports the network error', async () => {
    const clock = new FakeClock(0);
    const spare = createServer();
    await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
    const port = (spare.address() as AddressInfo).port;
    await new Promise((resolve) => spare.close(resolve));
    const closed = `http://127.0.0.1:${port}/services/secret-token`;
    const error = await new SlackWebhookClient(closed, { clock, maxAttempts: 2, baseBackoffMs: 10 }).post(message).catch((e: unknown) => e);
    expect((error as Error).message).toBe(`Slack unavailable after 2 attempts (last: network error: fetch failed: connect ECONNREFUSED 127.0.0.1:${port})`);
    expect(clock.sleeps).toEqual([10]);
  });

  it('spaces two messages at least a second apart', async () => {
    const clock = new FakeClock(10_000);
    const client = new SlackWebhookClient(url, { clock });
    await client.post(message);
    clock.current += 300;
    const second = await client.post(message);
    expect(clock.sleeps).toEqual([700]);
    expect(second.waitedMs).toBe(700);
  });
});

describe('parseRetryAfter', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('2', 0)).toBe(2000);
    expect(parseRetryAfter('0.5', 0)).toBe(500);
    expect(parseRetryAfter('Sun, 01 Mar 2026 10:00:05 GMT', Date.parse('2026-03-01T10:00:00Z'))).toBe(5000);
    expect(parseRetryAfter(null, 0)).toBeNull();
    expect(parseRetryAfter('soon', 0)).toBeNull();
  });
});

describe('parseWebhookSecret', () => {
  it('accepts the URL itself or JSON with url/webhookUrl', () => {
    expect(parseWebhookSecret('https://hooks.slack.com/services/T/B/x', 'sec')).toBe('https://hooks.slack.com/services/T/B/x');
    expect(parseWebhookSecret('{"url":"https://hooks.slack.com/services/T/B/x"}', 'sec')).toBe('https://hooks.slack.com/services/T/B/x');
    expect(parseWebhookSecret('{"webhookUrl":"https://hooks.slack.com/services/T/B/y"}', 'sec')).toBe('https://hooks.slack.com/services/T/B/y');
    expect(parseWebhookSecret('http://127.0.0.1:8080/hook', 'sec')).toBe('http://127.0.0.1:8080/hook');
  });

  it('names the secret and the expected form, never the value', () => {
    expect(() => parseWebhookSecret('', 'arn:sec')).toThrow('secret arn:sec is empty: expected the webhook URL');
    expect(() => parseWebhookSecret('{"token":"abc"}', 'arn:sec')).toThrow("secret arn:sec: field 'url' missing or not a string");
    expect(() => parseWebhookSecret('{nope', 'arn:sec')).toThrow('looks like JSON but does not parse');
    expect(() => parseWebhookSecret('placeholder-value-xyz', 'arn:sec')).toThrow('secret arn:sec does not hold a URL');
    const insecure = (() => {
      try {
        parseWebhookSecret('http://hooks.slack.com/services/T/B/leak', 'arn:sec');
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    })();
    expect(insecure).toBe('secret arn:sec: the webhook URL must use https (plain http only to a loopback address for local tests)');
  });
});

describe('SlackNotifier', () => {
  it('posts a notification as Block Kit through the client', async () => {
    const notifier = new SlackNotifier(new SlackWebhookClient(url, { clock: new FakeClock(0) }), [{ text: 'Dashboard', url: 'https://example.test/d' }]);
    await notifier.notify({ source: 'runbook', severity: 'warning', clusterId: 'prod', title: 'fence pg-0: started', fields: { node: 'pg-0' }, at: '2026-03-01T10:00:00.000Z' });
    expect(received).toHaveLength(1);
    expect((received[0]!.body as SlackMessage).text).toBe(':large_orange_circle: WARNING [prod] fence pg-0: started');
  });
});
