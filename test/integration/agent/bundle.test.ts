import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_BUNDLE_ENTRY, AGENT_BUNDLE_NODE, AGENT_BUNDLE_RDS_CA, agentAssetBundling, workerNodeBinary } from '../../../lib/agent-bundle.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { collect, forkEpoch, runAgent, sql, type AgentRun } from './agent-fixture.js';

/** The Node.js 22 the workers run (tools/worker-node, installed by `npm test`'s pretest), x64 here. */
const NODE22 = workerNodeBinary('x64');
let node: string;

let cluster: LocalCluster;
let dir: string;
let bundle: string;
let configPath: string;

function spawnBundle(args: readonly string[]): ChildProcess {
  return spawn(node, ['--disable-warning=ExperimentalWarning', bundle, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
}

function runBundle(args: readonly string[], input = ''): Promise<AgentRun> {
  return collect(spawnBundle(args), input);
}

const ndjson = (ids: string[]) => ids.map((id) => JSON.stringify({ id, body: `body of ${id}` })).join('\n') + '\n';

beforeAll(async () => {
  if (!existsSync(NODE22)) throw new Error(`${NODE22} is missing: run \`npm run worker-node\` (npm test's pretest does)`);
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-bundle-'));
  // The asset exactly as synth builds it for x64 workers: bundle, Node.js 22, RDS CA bundle.
  const asset = path.join(dir, 'asset');
  mkdirSync(asset);
  expect(agentAssetBundling('x64').local!.tryBundle(asset, {} as never)).toBe(true);
  expect(readdirSync(asset).sort()).toEqual([AGENT_BUNDLE_NODE, AGENT_BUNDLE_ENTRY, AGENT_BUNDLE_RDS_CA].sort());
  bundle = path.join(asset, AGENT_BUNDLE_ENTRY);
  node = path.join(asset, AGENT_BUNDLE_NODE);
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

  it('ships Node.js 22 and the Amazon RDS certificate authorities beside the bundle', async () => {
    expect((await collect(spawn(node, ['--version'], { stdio: ['pipe', 'pipe', 'pipe'] }))).stdout.trim()).toBe('v22.23.3');
    const pem = readFileSync(path.join(path.dirname(bundle), AGENT_BUNDLE_RDS_CA), 'utf8');
    const subjects = pem.split(/(?<=-----END CERTIFICATE-----)\n/).filter((c) => c.includes('BEGIN')).map((c) => new X509Certificate(c).subject);
    expect(subjects.length).toBeGreaterThan(50);
    expect(subjects.some((s) => s.includes('CN=Amazon RDS eu-west-1 Root CA RSA2048 G1'))).toBe(true);
  });

  it('for Graviton workers (the default t4g) the asset carries an arm64 Node.js', () => {
    const asset = path.join(dir, 'asset-arm64');
    mkdirSync(asset);
    agentAssetBundling('arm64').local!.tryBundle(asset, {} as never);
    const header = readFileSync(path.join(asset, AGENT_BUNDLE_NODE)).subarray(0, 20);
    expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(header.readUInt16LE(18)).toBe(0xb7); // e_machine EM_AARCH64 (x64 is 0x3e)
    rmSync(asset, { recursive: true });
  });

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
    const epoch = await forkEpoch(cluster, 'pg-0', 'postgres');
    const drained = await runBundle(['drain', '--epoch', epoch.id, '--json', '--buffer', buffer(), '--config', configPath]);
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.stdout)).toEqual({ epochId: epoch.id, examined: 600, resent: 600, inserted: 600, alreadyPresent: 0, remainingPending: 0, rejected: 0 });
    expect(await sql<{ n: number }>(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM bundle_events')).toEqual([{ n: 600 }]);
    const checkpoint = await runBundle(['checkpoint', '--json', '--buffer', buffer()]);
    expect(checkpoint.code).toBe(0);
  });

  it('the outbox and converter unit suites pass on node:sqlite too (Node.js 22, RDS_FAILOVER_SQLITE=node)', async () => {
    const report = path.join(dir, 'node-sqlite-report.json');
    const vitest = path.join(__dirname, '..', '..', '..', 'node_modules', 'vitest', 'vitest.mjs');
    const run = await collect(
      spawn(NODE22, ['--disable-warning=ExperimentalWarning', vitest, 'run', 'test/unit/agent/outbox.test.ts', 'test/unit/agent/copy-rows.test.ts', '--reporter=json', `--outputFile=${report}`], {
        cwd: path.join(__dirname, '..', '..', '..'),
        env: { ...process.env, RDS_FAILOVER_SQLITE: 'node' },
        stdio: ['pipe', 'pipe', 'pipe'],
      }),
    );
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const result = JSON.parse(readFileSync(report, 'utf8')) as { numPassedTests: number; numFailedTests: number; numPendingTests: number };
    expect(result).toMatchObject({ numFailedTests: 0, numPendingTests: 0 });
    expect(result.numPassedTests).toBeGreaterThanOrEqual(30);
  }, 120_000);

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
