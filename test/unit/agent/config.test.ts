import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, redactUrl } from '../../../src/agent/config.js';

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

const streams = { events: { table: 'app.events', key: ['id'], columns: ['id', 'body'] } };

describe('agent config', () => {
  it('applies the documented defaults', () => {
    const config = parseConfig({ writerUrl: 'postgres://u:p@db:5432/app', streams });
    expect(config.writer).toEqual({ kind: 'url', url: 'postgres://u:p@db:5432/app' });
    expect(config.streams.events).toEqual({ name: 'events', table: 'app.events', key: ['id'], columns: ['id', 'body'], maxPayloadBytes: 262144 });
    expect(config.batchSize).toBe(1000);
    expect(config.retention).toEqual({ seconds: 86400, minReplicas: 1, pruneIntervalSeconds: 600 });
    expect(config.backoff).toEqual({ initialMs: 250, maxMs: 30000 });
    expect(config.drain).toEqual({ batchSize: 5000, timeoutSeconds: 300 });
    expect(config.metrics).toEqual({ enabled: false, namespace: 'RdsFailover', dimensions: {}, intervalSeconds: 60 });
  });

  it('resolves writerFile against the config file directory', () => {
    const dir = tempDir('agent-config-');
    const file = path.join(dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ writerFile: 'writer.url', streams }));
    expect(loadConfig(file).writer).toEqual({ kind: 'file', follow: 'watch', path: path.join(dir, 'writer.url') });
  });

  it('reads the AWS writer source and puts ClusterId/WorkerId into the metric dimensions', () => {
    const config = parseConfig({
      writerHost: 'writer.db.internal',
      database: 'app',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-abc',
      clusterId: 'orders',
      workerId: 'i-0abc',
      metrics: { enabled: true, dimensions: { Env: 'prod' } },
      streams,
    });
    expect(config.writer).toEqual({
      kind: 'aws',
      host: 'writer.db.internal',
      port: 5432,
      database: 'app',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-abc',
      tlsCaFile: undefined,
    });
    expect(config.metrics.dimensions).toEqual({ ClusterId: 'orders', WorkerId: 'i-0abc', Env: 'prod' });
  });

  it.each([
    [{ streams: {} }, 'streams: expected at least one stream'],
    [{ streams: { events: { table: 'events', key: ['id'], columns: ['body'] } } }, "streams.events.key: key column 'id' must also be listed in streams.events.columns"],
    [{ streams: { events: { table: 'a.b.c', key: ['id'], columns: ['id'] } } }, "streams.events.table: expected 'table' or 'schema.table', got 'a.b.c'"],
    [{ streams: { events: { table: 'events', key: [], columns: ['id'] } } }, 'streams.events.key: expected a non-empty array of column names'],
    [{ streams: { events: { table: 'events', key: ['id'], columns: ['id', 'id'] } } }, "streams.events.columns: column 'id' is listed twice"],
    [{ streams: { 'bad name': { table: 't', key: ['id'], columns: ['id'] } } }, "streams.bad name: stream names use letters, digits, '_', '.', '-'"],
    [{ streams, batchSize: 0 }, 'batchSize: expected an integer from 1 to 50000, got 0'],
    [{ streams, backoff: { initialMs: 500, maxMs: 100 } }, 'backoff.maxMs (100) must be >= backoff.initialMs (500)'],
    [{ streams, writerUrl: 'mysql://x' }, "writerUrl: expected a postgres URL like postgres://user:password@host:5432/db, got 'mysql://x'"],
    [{ streams, writerUrl: 'postgres://a@b/c', writerFile: 'w' }, 'config: give only one writer source'],
    [{ streams, writerHost: 'h', database: 'd', secretArn: 'not-an-arn' }, "secretArn: expected a Secrets Manager ARN (arn:aws:secretsmanager:...), got 'not-an-arn'"],
    [{ streams, writerHost: 'h', secretArn: 'arn:aws:secretsmanager:x' }, 'database: expected a non-empty string'],
    [{ streams, retentoin: {} }, "config: unknown field 'retentoin'"],
    [{ streams, metrics: { enabled: 'yes' } }, 'metrics.enabled: expected true or false'],
    [{ streams, drain: { defaultWindowSeconds: 900 } }, "drain: unknown field 'defaultWindowSeconds'"],
    [{ streams, writerUrl: 'postgres://a@b/c', writerFileFollow: 'reconnect' }, 'writerFileFollow: only with writerFile'],
    [{ streams, writerFile: 'w', writerFileFollow: 'dns' }, `writerFileFollow: expected 'watch' or 'reconnect', got "dns"`],
  ])('rejects %j naming the field', (raw, message) => {
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(message);
  });

  it('a writer file is watched by default, or followed only on reconnect like the AWS writer name', () => {
    expect(parseConfig({ streams, writerFile: '/run/w.url' }).writer).toEqual({ kind: 'file', path: '/run/w.url', follow: 'watch' });
    expect(parseConfig({ streams, writerFile: '/run/w.url', writerFileFollow: 'reconnect' }).writer).toEqual({ kind: 'file', path: '/run/w.url', follow: 'reconnect' });
    expect(parseConfig({ streams, retention: { seconds: 0 } }).retention.seconds).toBe(0);
  });

  it('reads the config the CDK worker user data writes (AWS writer, bufferPath, metrics with the instance id)', () => {
    const config = parseConfig(
      {
        writerHost: 'writer.orders.rds-failover.internal',
        writerPort: 5432,
        database: 'orders',
        secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db-AbCdEf',
        bufferPath: '/var/lib/rds-failover/outbox.sqlite',
        streams,
        metrics: { enabled: true, namespace: 'RdsFailover', dimensions: { ClusterId: 'orders', WorkerId: 'i-0123456789abcdef0' } },
      },
      '/etc/rds-failover',
    );
    expect(config.bufferPath).toBe('/var/lib/rds-failover/outbox.sqlite');
    expect(config.writer).toMatchObject({ kind: 'aws', host: 'writer.orders.rds-failover.internal', port: 5432, database: 'orders' });
    expect(config.metrics).toEqual({ enabled: true, namespace: 'RdsFailover', dimensions: { ClusterId: 'orders', WorkerId: 'i-0123456789abcdef0' }, intervalSeconds: 60 });
    expect(parseConfig({ bufferPath: 'data/b.db', streams }, '/srv/agent').bufferPath).toBe('/srv/agent/data/b.db');
  });

  it('names the file when it is not JSON', () => {
    const dir = tempDir('agent-config-');
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, '{ nope');
    expect(() => loadConfig(file)).toThrow(`config file ${file} is not valid JSON`);
  });

  it('redacts passwords from writer URLs', () => {
    expect(redactUrl('postgres://app:s3cret@db:5432/x')).toBe('postgres://app:***@db:5432/x');
    expect(redactUrl('postgresql://app@db/x')).toBe('postgresql://app@db/x');
  });
});
