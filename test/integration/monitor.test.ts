/**
 * The lag monitor end to end on a real local cluster (primary + 2 streaming replicas):
 * monitor core + real PgDatabaseProbe -> SnsNotifier (SNS mocked, delivering asynchronously like SNS does)
 * -> the slack-notifier's core -> SlackWebhookClient -> a local HTTP server standing in for Slack.
 * Replay is paused on pg-2 while the primary is written to: WARN, then CRIT (answered first with 429 and
 * Retry-After, delivered after it), then resumed: RESOLVED. Exactly those messages, with the figures.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { mockClient } from 'aws-sdk-client-mock';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { ClusterProcesses } from '../support/cluster-processes.js';
import { until } from '../support/poll.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';
import { SnsNotifier } from '../../src/aws/sns-notifier.js';
import { runMonitor, type MonitorReport } from '../../src/core/monitor.js';
import { resolveMonitorConfig } from '../../src/core/monitor-config.js';
import { deliverToSlack } from '../../src/slack/sns-to-slack.js';
import { SlackWebhookClient } from '../../src/slack/webhook-client.js';
import { renderSlackText, type SlackMessage } from '../../src/slack/block-kit.js';
import { systemClock } from '../../src/ports/clock.js';
import { MemoryAlertStateStore, MemoryMetricsSink } from '../support/monitor-fakes.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:local-alerts';
const MONITOR_ROLE = { user: 'lag_monitor', password: 'monitor-pw' };

interface SlackRequest {
  readonly at: number;
  readonly status: number;
  readonly message: SlackMessage;
}

async function sql(cluster: LocalCluster, nodeId: string, text: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

/** Polls `check` until it returns a value, at most `timeoutMs`. */
function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  return until(what, check, (value) => value !== undefined, timeoutMs) as Promise<T>;
}

const header = (m: SlackMessage) => {
  const block = m.attachments[0].blocks[0]!;
  return block.type === 'header' ? block.text.text : '';
};
const field = (m: SlackMessage, label: string): string | undefined => {
  for (const block of m.attachments[0].blocks) {
    if (block.type !== 'section' || !block.fields) continue;
    for (const f of block.fields) {
      const [name, value] = f.text.split('\n');
      if (name === `*${label}*`) return value;
    }
  }
  return undefined;
};
/** '1.3 MiB (1363968 B)' -> 1363968, '272 B' -> 272 */
const bytesOf = (value: string | undefined) => Number((/\((\d+) B\)$/.exec(value ?? '') ?? /^(\d+) B$/.exec(value ?? ''))?.[1] ?? NaN);

describe('lag monitor on a real cluster, alerting a local Slack', () => {
  let cluster: LocalCluster;
  let server: Server;
  const requests: SlackRequest[] = [];
  const processes = new ClusterProcesses();
  const remember = () => processes.remember(cluster);

  beforeAll(async () => {
    // Slack stand-in: answers the first CRIT message with 429 + Retry-After: 1, everything else with 200 ok.
    let throttled = false;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const message = JSON.parse(body) as SlackMessage;
        const status = !throttled && header(message).includes('CRIT') ? ((throttled = true), 429) : 200;
        requests.push({ at: Date.now(), status, message });
        if (status === 429) res.writeHead(429, { 'retry-after': '1', 'content-type': 'text/plain' }).end('rate_limited');
        else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

    cluster = await LocalCluster.start({ replicas: 2 });
    remember();
    // What the monitor gets on RDS: a login in pg_monitor, nothing more.
    await sql(cluster, 'pg-0', `CREATE ROLE ${MONITOR_ROLE.user} LOGIN PASSWORD '${MONITOR_ROLE.password}' IN ROLE pg_monitor`);
    await sql(cluster, 'pg-0', 'CREATE TABLE writes (id bigserial PRIMARY KEY, payload text NOT NULL)');
    const lsn = (await sql(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS l'))[0]!.l as string;
    await cluster.waitForReplay('pg-1', lsn);
    await cluster.waitForReplay('pg-2', lsn);
  });

  afterAll(async () => {
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    if (cluster) await processes.stopAndExpectNothingLeft(cluster);
  });

  it('goes WARN then CRIT with the figures while replay is paused under writes, and RESOLVED after resuming', async () => {
    const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0/B0/local-token`;
    // The slack-notifier Lambda's side: one webhook client per warm container.
    const slack = new SlackWebhookClient(hookUrl, { maxTotalWaitMs: 10_000 });
    const deliveries: Promise<unknown>[] = [];
    const sns = mockClient(SNSClient);
    let published = 0;
    // SNS accepts and returns at once; the subscriber delivers in the background (a Slack outage never blocks the publisher).
    sns.on(PublishCommand).callsFake((input: { Message: string; Subject?: string }) => {
      published += 1;
      const messageId = `m-${published}`;
      deliveries.push(deliverToSlack([{ messageId, message: input.Message, subject: input.Subject }], { post: (m) => slack.post(m), clusterId: cluster.clusterId }));
      return { MessageId: messageId };
    });

    const config = resolveMonitorConfig({
      // Bytes drive the states here; the time thresholds are out of reach for this test's duration.
      lag: { warnBytes: 512 * KiB, critBytes: 4 * MiB, warnSeconds: 3600, critSeconds: 7200 },
      samplesToChange: 3,
      sampleIntervalMs: 200,
      // Runs of 3 s back to back, like Lambda invocations: hysteresis and alert state cross run boundaries.
      runDurationMs: 3000,
      reminderIntervalMs: 600_000,
    });
    const probe = new PgDatabaseProbe((id) => ({ ...cluster.clientConfig(id), ...MONITOR_ROLE }), { connectTimeoutMs: 1000 });
    const store = new MemoryAlertStateStore();
    const metrics = new MemoryMetricsSink();
    const reports: MonitorReport[] = [];
    const log: string[] = [];
    let stopMonitor = false;
    const monitorLoop = (async () => {
      const loopDeadline = Date.now() + 150_000;
      while (!stopMonitor && Date.now() < loopDeadline) {
        reports.push(
          await runMonitor(
            { clusterId: cluster.clusterId, nodes: cluster.nodes().map((n) => ({ id: n.id })) },
            config,
            { probe, store, notifier: new SnsNotifier(TOPIC, sns as unknown as SNSClient), metrics, clock: systemClock, log: (l) => log.push(l) },
          ),
        );
      }
    })();

    // A steady trickle of writes the whole time, plus bulk steps that move pg-2's lag across the thresholds.
    let stopWriter = false;
    const writer = (async () => {
      const client = new pg.Client(cluster.clientConfig('pg-0'));
      await client.connect();
      const writerDeadline = Date.now() + 150_000;
      try {
        while (!stopWriter && Date.now() < writerDeadline) {
          await client.query("INSERT INTO writes (payload) VALUES (repeat('t', 100))");
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        await client.end();
      }
    })();
    const bulk = (rows: number) => sql(cluster, 'pg-0', `INSERT INTO writes (payload) SELECT repeat(md5(g::text), 8) FROM generate_series(1, ${rows}) g`);
    const delivered = (word: string) => () => requests.find((r) => r.status === 200 && header(r.message).includes(word));

    try {
      await waitFor('a few clean samples', () => (metrics.samples.filter((s) => s.replicaId === 'pg-2').length >= 5 ? true : undefined));
      await cluster.pauseReplay('pg-2');
      await bulk(4_000); // about 1.5 MiB of WAL: above WARN (512 KiB), below CRIT (4 MiB)
      await waitFor('WARN in Slack', delivered('WARN'));
      await bulk(20_000); // several MiB more: above CRIT
      await waitFor('CRIT in Slack after the 429', delivered('CRIT'));
      await cluster.resumeReplay('pg-2');
      await waitFor('RESOLVED in Slack', delivered('RESOLVED'));
    } finally {
      stopWriter = true;
      stopMonitor = true;
      await Promise.allSettled([writer, monitorLoop]);
      await Promise.allSettled(deliveries);
      sns.restore();
    }
    await Promise.all(deliveries); // every delivery succeeded

    // Exactly these requests reached Slack: WARN, CRIT refused with 429, the same CRIT after Retry-After, RESOLVED.
    expect(requests.map((r) => [r.status, header(r.message)])).toEqual([
      [200, ':large_orange_circle: WARN replica pg-2 (was OK)'],
      [429, ':red_circle: CRIT replica pg-2 (was WARN)'],
      [200, ':red_circle: CRIT replica pg-2 (was WARN)'],
      [200, ':large_green_circle: RESOLVED replica pg-2 (was CRIT)'],
    ]);
    const [warn, throttledCrit, crit, resolved] = requests as [SlackRequest, SlackRequest, SlackRequest, SlackRequest];
    expect(crit.message).toEqual(throttledCrit.message);
    expect(crit.at - throttledCrit.at).toBeGreaterThanOrEqual(1000);
    // At most one message per second on the channel.
    expect(throttledCrit.at - warn.at).toBeGreaterThanOrEqual(1000);
    expect(resolved.at - crit.at).toBeGreaterThanOrEqual(1000);

    // The figures are in the messages.
    const warnBytes = bytesOf(field(warn.message, 'Lag bytes'));
    expect(warnBytes).toBeGreaterThanOrEqual(512 * KiB);
    expect(warnBytes).toBeLessThan(4 * MiB);
    expect(field(warn.message, 'Replay paused')).toBe('yes');
    expect(field(warn.message, 'Primary')).toBe('pg-0');
    expect(field(warn.message, 'Lag seconds')).toMatch(/^\d+(\.\d)? s$/);
    expect(bytesOf(field(crit.message, 'Lag bytes'))).toBeGreaterThanOrEqual(4 * MiB);
    expect(field(crit.message, 'Was')).toBe('WARN');
    expect(renderSlackText(crit.message)).toMatch(/┃ .* \/ \d+\.\d MiB behind pg-0; replay is paused \(pg_wal_replay_pause\)/);
    expect(bytesOf(field(resolved.message, 'Lag bytes'))).toBeLessThan(512 * KiB);
    expect(field(resolved.message, 'Replay paused')).toBe('no');
    for (const r of requests) expect(r.message.attachments[0].blocks.at(-1)).toMatchObject({ type: 'context' });

    // The lag metrics tell the same story; pg-1 kept up and never left OK.
    const pg2 = metrics.samples.filter((s) => s.replicaId === 'pg-2').map((s) => s.lagBytes ?? 0);
    expect(Math.max(...pg2)).toBeGreaterThanOrEqual(4 * MiB);
    expect(pg2.at(-1)).toBeLessThan(512 * KiB);
    expect(reports.flatMap((r) => r.samples).every((s) => s.replicas.find((x) => x.nodeId === 'pg-1')!.level === 'OK')).toBe(true);
    expect(reports.length).toBeGreaterThan(1);
    expect(reports.flatMap((r) => r.errors)).toEqual([]);
    expect(published).toBe(3);
  });
});
