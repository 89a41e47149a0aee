import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LocalSlack } from '../../../src/local/local-slack.js';
import type { Notification, Notifier } from '../../../src/ports/notifier.js';
import { QueuedNotifier } from '../../../src/slack/queued-notifier.js';
import { SlackNotifier } from '../../../src/slack/slack-notifier.js';
import { SlackWebhookClient } from '../../../src/slack/webhook-client.js';
import { FakeClock } from '../../support/monitor-fakes.js';

const note = (title: string): Notification => ({ source: 'runbook', severity: 'info', clusterId: 'local-1', title, fields: {}, at: '2026-01-01T00:00:00.000Z' });

describe('QueuedNotifier', () => {
  it('returns from notify before delivery, then delivers in order', async () => {
    const log: string[] = [];
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const target: Notifier = {
      notify: async (n) => {
        await gate;
        log.push(`delivered ${n.title}`);
      },
    };
    const queued = new QueuedNotifier(target);
    await queued.notify(note('a'));
    await queued.notify(note('b'));
    log.push('notify returned');
    expect(queued.totals()).toEqual({ published: 2, delivered: 0, deadLetters: [], queued: 2 });
    open();
    const totals = await queued.settle(10_000);
    expect(log).toEqual(['notify returned', 'delivered a', 'delivered b']);
    expect(totals).toEqual({ published: 2, delivered: 2, deadLetters: [], queued: 0 });
  });

  it('keeps what the target gave up on as dead letters with the reason, and goes on with the rest', async () => {
    const queued = new QueuedNotifier({
      notify: async (n) => {
        if (n.title === 'bad') throw new Error('Slack unavailable after 3 attempts');
      },
    });
    for (const t of ['one', 'bad', 'two']) await queued.notify(note(t));
    const totals = await queued.settle(10_000);
    expect(totals.delivered).toBe(2);
    expect(totals.deadLetters).toEqual([{ title: 'bad', at: '2026-01-01T00:00:00.000Z', error: 'Slack unavailable after 3 attempts' }]);
  });

  it('settle reports what is still queued when its time is up (nothing is dropped)', async () => {
    const queued = new QueuedNotifier({ notify: () => new Promise<void>(() => undefined) });
    await queued.notify(note('stuck'));
    await queued.notify(note('behind it'));
    expect(await queued.settle(0)).toEqual({ published: 2, delivered: 0, deadLetters: [], queued: 2 });
  });
});

describe('LocalSlack (a webhook stand-in) behind the real webhook client', () => {
  let slack: LocalSlack;
  beforeAll(async () => {
    slack = await LocalSlack.start();
  });
  afterAll(() => slack.close());
  beforeEach(() => {
    slack.heal();
    slack.received.length = 0;
  });

  const notifier = (clock = new FakeClock(0)) =>
    new QueuedNotifier(new SlackNotifier(new SlackWebhookClient(slack.url, { clock, maxAttempts: 3, baseBackoffMs: 100, maxTotalWaitMs: 10_000, minIntervalMs: 0 })));

  it('receives what the client posts', async () => {
    const queued = notifier();
    await queued.notify(note('Failover of local-1: promote done'));
    expect((await queued.settle(10_000)).delivered).toBe(1);
    expect(JSON.stringify(slack.received[0]!.body)).toContain('Failover of local-1: promote done');
  });

  it('rate limited: 429 with Retry-After on every call; the client waits what it is told, then the message is a dead letter', async () => {
    slack.fail({ kind: 'rate-limited', retryAfterSeconds: 2 });
    const clock = new FakeClock(0);
    const queued = notifier(clock);
    await queued.notify(note('lost to the rate limit'));
    const totals = await queued.settle(10_000);
    expect(totals.delivered).toBe(0);
    expect(totals.deadLetters[0]!.error).toMatch(/Slack still rate limiting after 3 attempts \(HTTP 429 rate_limited\)/);
    expect(clock.sleeps).toEqual([2000, 2000]);
    expect(slack.refused[429]).toBeGreaterThanOrEqual(3);
    slack.heal();
    await queued.notify(note('after the outage'));
    expect((await queued.settle(10_000)).delivered).toBe(1);
    expect(slack.received).toHaveLength(1);
  });

  it('down: every call answers the 5xx given', async () => {
    slack.fail({ kind: 'down', status: 503 });
    const queued = notifier();
    await queued.notify(note('lost to the outage'));
    const totals = await queued.settle(10_000);
    expect(totals.deadLetters[0]!.error).toMatch(/Slack unavailable after 3 attempts \(last: HTTP 503 service_unavailable\)/);
    expect(slack.received).toHaveLength(0);
  });

  it('refuses an outage that is not one, naming the field', () => {
    expect(() => slack.fail({ kind: 'down', status: 404 })).toThrow(/status must be a 5xx, got 404/);
    expect(() => slack.fail({ kind: 'rate-limited', retryAfterSeconds: -1 })).toThrow(/retryAfterSeconds must be >= 0, got -1/);
  });
});
