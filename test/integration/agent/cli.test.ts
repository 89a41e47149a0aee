import Database from 'better-sqlite3';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../src/agent/cli.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { EVENTS_STREAM, ndjson, runAgent, writeConfig } from './agent-fixture.js';

/** The CLI contract on real SQLite files, without PostgreSQL. */
let dir: string;
let config: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-cli-'));
  config = writeConfig(path.join(dir, 'agent.json'), { writerUrl: 'postgres://agent:pw@127.0.0.1:1/app', streams: { events: EVENTS_STREAM } });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI in this process (fast) with string stdin; returns exit code and output. */
async function cli(args: string[], stdin = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  const input = new PassThrough();
  input.end(stdin);
  let stdout = '';
  let stderr = '';
  const out = new PassThrough().on('data', (b: Buffer) => (stdout += b.toString()));
  const err = new PassThrough().on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await runCli(args, { stdin: input, stdout: out, stderr: err, env: {} });
  return { code, stdout, stderr };
}

function storedIds(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT id FROM outbox ORDER BY seq').all() as { id: string }[]).map((r) => r.id);
  } finally {
    db.close();
  }
}

describe('rds-failover-agent CLI', () => {
  it('append prints one id per acknowledged row and skips blank lines', async () => {
    const buffer = path.join(dir, 'append.db');
    const run = await cli(['append', '--stream', 'events', '--buffer', buffer, '--config', config], '{"id":"a","n":1}\n\n{"id":"b","body":"x"}\n{"id":"c"}');
    expect(run).toEqual({ code: 0, stdout: 'a\nb\nc\n', stderr: '' });
    expect(storedIds(buffer)).toEqual(['a', 'b', 'c']);
  });

  it('append exits 2 on the first rejected row; the rows before it stay acknowledged, none after it is written', async () => {
    const buffer = path.join(dir, 'reject.db');
    const run = await cli(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson([{ id: '1' }, { id: '2' }, { nope: true }, { id: '4' }]));
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('1\n2\n');
    expect(run.stderr).toBe("error: line 3: field 'nope' is not a column of stream 'events' (columns: id, body, n)\n");
    expect(storedIds(buffer)).toEqual(['1', '2']);
  });

  it.each([
    [['append', '--stream', 'nope'], "error: --stream: unknown stream 'nope' (configured: events)"],
    [['append', '--stream', 'events', '--no-config'], "error: unknown option '--no-config'"],
    [['drain', '--epoch', '2'], "error: --epoch: expected the epoch's UUID (lowercase, e.g. 3f2b...-...), got '2'"],
    [['drain', '--epoch', '3F2B1C4D-0000-4000-8000-000000000000'], "error: --epoch: expected the epoch's UUID"],
    [['drain', '--window', '5m'], "error: unknown option '--window'"],
    [['sync-once', '--writer', 'http://db'], "error: --writer: expected a postgres URL like postgres://user:password@host:5432/db, got 'http://db'"],
  ])('rejects %j with exit 2 and a message naming the option', async (args, message) => {
    const buffer = path.join(dir, 'usage.db');
    const outbox = Outbox.open(buffer);
    outbox.close();
    const run = await cli([...args, '--buffer', buffer, '--config', config]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('commands that need streams refuse to run without a config; status and checkpoint do not need one', async () => {
    const buffer = path.join(dir, 'noconfig.db');
    expect(await cli(['append', '--stream', 'events', '--buffer', buffer], '{"id":"x"}\n')).toMatchObject({
      code: 2,
      stderr: 'error: --config <file> is required for this command (or set RDS_FAILOVER_AGENT_CONFIG)\n',
    });
    expect((await cli(['append', '--stream', 'events', '--buffer', buffer, '--config', config], '{"id":"x"}\n')).code).toBe(0);
    const status = await cli(['status', '--json', '--buffer', buffer]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ bufferPath: buffer, pendingRows: 1, pendingByStream: { events: 1 }, syncedRows: 0, rejectedRows: 0, currentWriter: null });
  });

  it('takes the buffer from the config when --buffer is absent, and asks for one when neither gives it', async () => {
    const buffer = path.join(dir, 'from-config.db');
    const withPath = writeConfig(path.join(dir, 'with-path.json'), { bufferPath: 'from-config.db', writerUrl: 'postgres://a:b@127.0.0.1:1/x', streams: { events: EVENTS_STREAM } });
    expect(await cli(['append', '--stream', 'events', '--config', withPath], '{"id":"cfg"}\n')).toMatchObject({ code: 0, stdout: 'cfg\n' });
    expect(storedIds(buffer)).toEqual(['cfg']);
    expect(await cli(['status', '--json'])).toMatchObject({ code: 2, stderr: 'error: --buffer <file> is required (or bufferPath in the config)\n' });
  });

  it('status and checkpoint print a readable table without --json; a missing buffer is an error, not a new file', async () => {
    const buffer = path.join(dir, 'table.db');
    await cli(['append', '--stream', 'events', '--buffer', buffer, '--config', config], '{"id":"t"}\n');
    const status = await cli(['status', '--buffer', buffer]);
    // keys as wide as the longest (a nested field: lineage.outsideHistoryRows), values as wide as the buffer path
    const width = 'lineage.outsideHistoryRows'.length;
    expect(status.stdout.split('\n').slice(0, 4)).toEqual([
      `${'field'.padEnd(width)}  value`,
      `${'-'.repeat(width)}  ${'-'.repeat(Math.max(5, buffer.length))}`,
      `${'bufferPath'.padEnd(width)}  ${buffer}`,
      expect.stringMatching(/^fileBytes\s+\d+$/),
    ]);
    expect(status.stdout).toMatch(/\npendingRows\s+1\n/);
    expect(status.stdout).toMatch(/\npendingByStream\.events\s+1\n/);
    expect(status.stdout).toMatch(/\nlineage\.writerRefusals\s+0\n/);
    const checkpoint = await cli(['checkpoint', '--buffer', buffer]);
    expect(checkpoint.code).toBe(0);
    expect(checkpoint.stdout).toMatch(/\nhealthy\s+true\n/);
    expect(checkpoint.stdout).toMatch(/\nwalBytesAfter\s+0\n/);

    const missing = path.join(dir, 'missing.db');
    expect(await cli(['status', '--buffer', missing])).toMatchObject({ code: 1, stderr: `error: buffer file ${missing} does not exist\n` });
    expect(await cli(['checkpoint', '--buffer', missing])).toMatchObject({ code: 1 });
  });

  it('sync-once against an unreachable writer exits 1 and leaves the rows pending with the error in status', async () => {
    const buffer = path.join(dir, 'unreachable.db');
    await cli(['append', '--stream', 'events', '--buffer', buffer, '--config', config], '{"id":"u"}\n');
    const run = await cli(['sync-once', '--json', '--buffer', buffer, '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^error: connect ECONNREFUSED 127\.0\.0\.1:1/m);
    const status = JSON.parse((await cli(['status', '--json', '--buffer', buffer])).stdout);
    expect(status).toMatchObject({ pendingRows: 1, consecutiveFailures: 1 });
    expect(status.lastSyncError).toMatch(/ECONNREFUSED/);
  });

  it('eight processes appending to one file at once: every printed id is stored once', async () => {
    const buffer = path.join(dir, 'concurrent.db');
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, p) =>
        runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(Array.from({ length: 250 }, (_, i) => ({ id: `p${p}-${i}`, n: i })))),
      ),
    );
    for (const run of runs) {
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
    }
    const printed = runs.flatMap((r) => r.stdout.trim().split('\n'));
    expect(printed).toHaveLength(2000);
    const stored = storedIds(buffer);
    expect(stored).toHaveLength(2000);
    expect(new Set(stored)).toEqual(new Set(printed));
  });

  it('checkpoint through the real binary exits 1 with the reason when the file is corrupt', async () => {
    const buffer = path.join(dir, 'corrupt.db');
    const outbox = Outbox.open(buffer);
    const stream = { ...EVENTS_STREAM, name: 'events', maxPayloadBytes: 1000 };
    outbox.appendMany('events', stream, Array.from({ length: 3000 }, (_, i) => ({ id: `c${i}`, body: 'z'.repeat(40) })));
    outbox.checkpoint();
    outbox.close();
    const fd = openSync(buffer, 'r+');
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4096 * 12);
    closeSync(fd);
    const run = await runAgent(['checkpoint', '--json', '--buffer', buffer]);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ healthy: false });
    expect(run.stderr).toMatch(/^buffer not healthy: integrity_check failed: /);
  });
});
