import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type ConnectionOptions } from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/agent/config.js';
import { bufferMetricData, MetricsPublisher } from '../../../src/agent/metrics-publisher.js';
import type { BufferStatus } from '../../../src/agent/status.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { createWriterSource, resolveCnameChain, type CnameResolver } from '../../../src/agent/writer-source.js';

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** A DNS stand-in: name -> CNAME target; a name without a record answers ENODATA like node:dns. */
function dnsResolver(records: Record<string, string>, lookups: string[] = []): CnameResolver {
  return async (name) => {
    lookups.push(name);
    const target = records[name];
    if (target === undefined) throw Object.assign(new Error(`queryCname ENODATA ${name}`), { code: 'ENODATA' });
    return [target];
  };
}

interface KeyPair {
  readonly key: string;
  readonly cert: string;
}

function selfSignedCertificate(dir: string, label: string, dnsName: string): KeyPair {
  const key = path.join(dir, `${label}.key`);
  const cert = path.join(dir, `${label}.pem`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${dnsName}`,
    '-addext', `subjectAltName=DNS:${dnsName}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

/** A real TLS handshake against a local server presenting `server`, with the client options the agent gives pg. */
async function handshake(ssl: ConnectionOptions, server: KeyPair): Promise<string> {
  const listener = createServer({ key: server.key, cert: server.cert }, (socket) => socket.end());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  try {
    return await new Promise<string>((resolve) => {
      const socket = connect({ ...ssl, host: '127.0.0.1', port: (listener.address() as AddressInfo).port }, () => {
        socket.destroy();
        resolve('verified');
      });
      socket.on('error', (error) => resolve(error.message));
    });
  } finally {
    await new Promise((resolve) => listener.close(resolve));
  }
}

const settings = { connectTimeoutMs: 5000, queryTimeoutMs: 60000 };
const secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db-AbCdEf';

const status: BufferStatus = {
  bufferPath: '/data/buffer.db',
  fileBytes: 4096,
  pendingRows: 12,
  pendingByStream: { events: 12 },
  oldestPendingAgeSeconds: 3.5,
  syncedRows: 40,
  syncedPastRetention: 0,
  rejectedRows: 0,
  lastSyncAt: null,
  lastSyncMarker: null,
  lastSyncError: null,
  lastSyncErrorAt: null,
  consecutiveFailures: 0,
  currentWriter: null,
  lastPrune: null,
  lineage: {
    epoch: 'e1',
    generation: 2,
    epochsKnown: 2,
    writerEpoch: 'e1',
    confirmedEpoch: 'e0',
    resendDue: false,
    outsideHistoryRows: 0,
    supersededCommits: 0,
    writerRefusals: 4,
    lastWriterRefusal: null,
  },
};

afterEach(() => {
  mockClient(SecretsManagerClient).restore();
  mockClient(CloudWatchClient).restore();
});

describe('writer sources', () => {
  it('AWS: credentials from Secrets Manager (refetched after invalidate()), the CNAME chain resolved on every connection, TLS verified', async () => {
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand, { SecretId: secretArn }).resolves({ SecretString: JSON.stringify({ username: 'agent', password: 's3cret' }) });
    const dir = tempDir('writer-');
    writeFileSync(path.join(dir, 'rds-ca.pem'), 'PEM');
    const records: Record<string, string> = { 'writer.orders.internal': 'db-1.abc123.eu-west-1.rds.amazonaws.com.' };
    const lookups: string[] = [];
    const resolver = dnsResolver(records, lookups);
    const source = createWriterSource(
      { kind: 'aws', host: 'writer.orders.internal', port: 5432, database: 'orders', secretArn, tlsCaFile: path.join(dir, 'rds-ca.pem') },
      settings,
      new SecretsManagerClient({ region: 'eu-west-1' }),
      resolver,
    );
    const target = await source.current();
    expect(target.description).toBe('postgres://agent:***@writer.orders.internal:5432/orders via db-1.abc123.eu-west-1.rds.amazonaws.com');
    expect(target.clientConfig).toEqual({
      connectionTimeoutMillis: 5000,
      query_timeout: 60000,
      keepAlive: true,
      application_name: 'rds-failover-agent',
      host: 'db-1.abc123.eu-west-1.rds.amazonaws.com',
      port: 5432,
      database: 'orders',
      user: 'agent',
      password: 's3cret',
      ssl: { rejectUnauthorized: true, checkServerIdentity: expect.any(Function), ca: 'PEM' },
    });
    expect(lookups).toEqual(['writer.orders.internal', 'db-1.abc123.eu-west-1.rds.amazonaws.com']);

    // The failover repoints the record: the next connection goes to (and verifies) the new instance endpoint.
    records['writer.orders.internal'] = 'db-2.abc123.eu-west-1.rds.amazonaws.com';
    expect((await source.current()).clientConfig.host).toBe('db-2.abc123.eu-west-1.rds.amazonaws.com');
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    source.invalidate(); // after a failed sync: the secret may have been rotated
    await source.current();
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([{ SecretId: secretArn }, { SecretId: secretArn }]);
  });

  it('CNAME chains: followed to the end (trailing dots, case), a name without CNAME is its own end, lookup failures and loops are errors', async () => {
    const records = { 'writer.orders.internal': 'Cluster.Orders.internal.', 'cluster.orders.internal': 'db-1.abc123.eu-west-1.rds.amazonaws.com', 'loop-a.x': 'loop-b.x', 'loop-b.x': 'loop-a.x' };
    expect(await resolveCnameChain('writer.orders.internal.', dnsResolver(records))).toEqual([
      'writer.orders.internal',
      'cluster.orders.internal',
      'db-1.abc123.eu-west-1.rds.amazonaws.com',
    ]);
    expect(await resolveCnameChain('db-1.abc123.eu-west-1.rds.amazonaws.com', dnsResolver(records))).toEqual(['db-1.abc123.eu-west-1.rds.amazonaws.com']);
    const missing = async () => Promise.reject(Object.assign(new Error('queryCname ENOTFOUND nowhere.internal'), { code: 'ENOTFOUND' }));
    expect(await resolveCnameChain('nowhere.internal', missing)).toEqual(['nowhere.internal']);
    const servfail = async () => Promise.reject(Object.assign(new Error('queryCname ESERVFAIL writer.orders.internal'), { code: 'ESERVFAIL' }));
    await expect(resolveCnameChain('writer.orders.internal', servfail)).rejects.toThrow(
      'resolving the writer name writer.orders.internal: CNAME lookup of writer.orders.internal failed: queryCname ESERVFAIL writer.orders.internal',
    );
    await expect(resolveCnameChain('loop-a.x', dnsResolver(records))).rejects.toThrow('resolving the writer name loop-a.x: CNAME loop (loop-a.x -> loop-b.x -> loop-a.x)');
  });

  it('TLS handshake: accepts the certificate of the instance endpoint the record resolves to, refuses one for the record name or from an untrusted CA', async () => {
    const dir = tempDir('writer-tls-');
    const rdsName = 'db-1.abc123.eu-west-1.rds.amazonaws.com';
    const rds = selfSignedCertificate(dir, 'rds', rdsName);
    const record = selfSignedCertificate(dir, 'record', 'writer.orders.internal');
    writeFileSync(path.join(dir, 'bundle.pem'), rds.cert + record.cert); // a CA bundle trusting both
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ username: 'agent', password: 's3cret' }) });
    const sslOf = async (tlsCaFile?: string) => {
      const source = createWriterSource(
        { kind: 'aws', host: 'writer.orders.internal', port: 5432, database: 'orders', secretArn, tlsCaFile },
        settings,
        new SecretsManagerClient({ region: 'eu-west-1' }),
        dnsResolver({ 'writer.orders.internal': rdsName }),
      );
      return (await source.current()).clientConfig.ssl as ConnectionOptions;
    };
    const trusted = await sslOf(path.join(dir, 'bundle.pem'));
    expect(await handshake(trusted, rds)).toBe('verified');
    expect(await handshake(trusted, record)).toBe(
      `the writer's TLS certificate is not valid for ${rdsName} (resolved from writer.orders.internal): Hostname/IP does not match certificate's altnames: Host: ${rdsName}. is not in the cert's altnames: DNS:writer.orders.internal`,
    );
    expect(await handshake(await sslOf(undefined), rds)).toBe('self-signed certificate');
  });
  it('writer file: re-read when replaced (rename) and rejected with the file named when it holds no postgres URL', async () => {
    const dir = tempDir('writer-');
    const file = path.join(dir, 'writer.url');
    writeFileSync(file, 'postgres://app:pw@10.0.0.1:5432/app\n');
    const source = createWriterSource({ kind: 'file', path: file, follow: 'watch' }, settings);
    expect((await source.current()).description).toBe('postgres://app:***@10.0.0.1:5432/app');
    expect(source.hasChanged()).toBe(false);
    writeFileSync(`${file}.tmp`, 'postgres://app:pw@10.0.0.2:5432/app\n');
    renameSync(`${file}.tmp`, file);
    expect(source.hasChanged()).toBe(true);
    expect((await source.current()).clientConfig.connectionString).toBe('postgres://app:pw@10.0.0.2:5432/app');
    expect(source.hasChanged()).toBe(false);
    writeFileSync(`${file}.tmp`, 'not a url\n');
    renameSync(`${file}.tmp`, file);
    await expect(source.current()).rejects.toThrow(`writer file ${file}: expected a postgres URL`);
  });

  it("writer file followed on reconnect, as an AWS worker follows the writer's name: a live session is never told, a new one reads the file", async () => {
    const dir = tempDir('writer-');
    const file = path.join(dir, 'writer.url');
    writeFileSync(file, 'postgres://app:pw@10.0.0.1:5432/app\n');
    const source = createWriterSource({ kind: 'file', path: file, follow: 'reconnect' }, settings);
    expect((await source.current()).description).toBe('postgres://app:***@10.0.0.1:5432/app');
    writeFileSync(`${file}.tmp`, 'postgres://app:pw@10.0.0.2:5432/app\n');
    renameSync(`${file}.tmp`, file);
    expect(source.hasChanged()).toBe(false);
    expect((await source.current()).description).toBe('postgres://app:***@10.0.0.2:5432/app');
  });

  it('without any writer the error says how to configure one', () => {
    expect(() => createWriterSource(undefined, settings)).toThrow('no writer configured: set writerUrl, writerFile or writerHost+writerPort+database+secretArn');
  });
});

describe('CloudWatch metrics', () => {
  it('publishes the buffer metrics with the configured namespace and dimensions; SyncErrors and WriterRefusals count new ones only', async () => {
    const cw = mockClient(CloudWatchClient);
    cw.on(PutMetricDataCommand).resolves({});
    const publisher = new MetricsPublisher(
      { enabled: true, namespace: 'RdsFailover', dimensions: { ClusterId: 'orders', WorkerId: 'i-0abc' }, intervalSeconds: 60 },
      new CloudWatchClient({ region: 'eu-west-1' }),
    );
    const at = new Date('2026-01-02T03:04:05Z');
    await publisher.publish(status, { syncErrors: 3, writerRefusals: 1 }, at);
    await publisher.publish(status, { syncErrors: 5, writerRefusals: 1 }, at);
    const dims = [
      { Name: 'ClusterId', Value: 'orders' },
      { Name: 'WorkerId', Value: 'i-0abc' },
    ];
    expect(cw.commandCalls(PutMetricDataCommand)[0]!.args[0].input).toEqual({
      Namespace: 'RdsFailover',
      MetricData: [
        { MetricName: 'BufferPendingRows', Dimensions: dims, Timestamp: at, Value: 12, Unit: 'Count' },
        { MetricName: 'BufferOldestPendingAgeSeconds', Dimensions: dims, Timestamp: at, Value: 3.5, Unit: 'Seconds' },
        { MetricName: 'BufferSyncedUnprunableRows', Dimensions: dims, Timestamp: at, Value: 40, Unit: 'Count' },
        { MetricName: 'BufferFileBytes', Dimensions: dims, Timestamp: at, Value: 4096, Unit: 'Bytes' },
        { MetricName: 'BufferSyncErrors', Dimensions: dims, Timestamp: at, Value: 3, Unit: 'Count' },
        { MetricName: 'BufferWriterRefusals', Dimensions: dims, Timestamp: at, Value: 1, Unit: 'Count' },
        // the worker knows epoch e1 and confirmed only e0: 1 until it confirms
        { MetricName: 'WorkerUnconfirmed', Dimensions: dims, Timestamp: at, Value: 1, Unit: 'Count' },
      ],
    });
    expect(cw.commandCalls(PutMetricDataCommand)[1]!.args[0].input.MetricData!.map((d) => d.Value).slice(4)).toEqual([2, 0, 1]);
    const confirmed = bufferMetricData({ ...status, lineage: { ...status.lineage, confirmedEpoch: 'e1' } }, { syncErrors: 0, writerRefusals: 0 }, {}, at);
    expect(confirmed.find((d) => d.MetricName === 'WorkerUnconfirmed')?.Value).toBe(0);
  });

  it('reports no pending age as 0', () => {
    expect(bufferMetricData({ ...status, oldestPendingAgeSeconds: null }, { syncErrors: 0, writerRefusals: 0 }, {}, new Date(0))[1]).toMatchObject({ MetricName: 'BufferOldestPendingAgeSeconds', Value: 0, Dimensions: [] });
  });

  it('the daemon publishes on its interval when metrics are enabled, with failed syncs counted', async () => {
    const cw = mockClient(CloudWatchClient);
    cw.on(PutMetricDataCommand).resolves({});
    const dir = tempDir('metrics-');
    const config = parseConfig({
      writerUrl: 'postgres://agent:pw@127.0.0.1:1/app',
      clusterId: 'orders',
      workerId: 'w-1',
      backoff: { initialMs: 20, maxMs: 40 },
      metrics: { enabled: true, namespace: 'Custom/Buffer', intervalSeconds: 1 },
      streams: { events: { table: 'events', key: ['id'], columns: ['id'] } },
    });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'b.db'), config, cloudWatch: new CloudWatchClient({ region: 'eu-west-1' }) });
    buffer.append('events', { id: 'a' });
    buffer.append('events', { id: 'b' });
    const daemon = buffer.startDaemon();
    const deadline = Date.now() + 5000;
    while (cw.commandCalls(PutMetricDataCommand).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await daemon.stop();
    await buffer.close();
    const input = cw.commandCalls(PutMetricDataCommand)[0]!.args[0].input;
    expect(input.Namespace).toBe('Custom/Buffer');
    const byName = Object.fromEntries(input.MetricData!.map((d) => [d.MetricName, d]));
    expect(byName.BufferPendingRows).toMatchObject({ Value: 2, Dimensions: [{ Name: 'ClusterId', Value: 'orders' }, { Name: 'WorkerId', Value: 'w-1' }] });
    expect(byName.BufferSyncErrors!.Value).toBeGreaterThan(0);
  });

  it('metrics are off by default: the daemon never calls CloudWatch', async () => {
    const cw = mockClient(CloudWatchClient);
    const dir = tempDir('metrics-');
    const config = parseConfig({ writerUrl: 'postgres://agent:pw@127.0.0.1:1/app', backoff: { initialMs: 20, maxMs: 40 }, streams: { events: { table: 'events', key: ['id'], columns: ['id'] } } });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'b.db'), config, cloudWatch: new CloudWatchClient({ region: 'eu-west-1' }) });
    const daemon = buffer.startDaemon();
    await new Promise((r) => setTimeout(r, 300));
    await daemon.stop();
    await buffer.close();
    expect(cw.calls()).toHaveLength(0);
  });
});
