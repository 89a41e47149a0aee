/**
 * The CLI against a real local cluster (primary + 2 streaming replicas) and real worker buffers: status, plan,
 * a switchover with drains, status after it, reconcile and a drain re-run. One cluster for the whole file.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig as parseAgentConfig } from '../../src/agent/config.js';
import { WriteBuffer } from '../../src/agent/write-buffer.js';
import type { OutcomeView } from '../../src/cli/commands/failover.js';
import type { PlanView } from '../../src/cli/commands/plan.js';
import type { StatusReport } from '../../src/cli/commands/status.js';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { runInProcess } from '../unit/cli/cli-harness.js';

const REPO = path.join(__dirname, '..', '..');

async function query(cluster: LocalCluster, nodeId: string, sql: string): Promise<pg.QueryResultRow[]> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('rds-failover --local against a real cluster', () => {
  let work: string;
  let dir: string;
  let cluster: LocalCluster;
  let agentConfig: string;
  let buffers: string[];

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'cli-local-'));
    chmodSync(work, 0o755); // the PostgreSQL OS user must be able to enter it
    dir = path.join(work, 'cluster');
    cluster = await LocalCluster.start({ replicas: 2, baseDir: dir });
    await cluster.setWriter('pg-0');
    await query(cluster, 'pg-0', 'CREATE TABLE events (id text PRIMARY KEY, v integer NOT NULL)');
    agentConfig = path.join(work, 'agent.json');
    const config = { writerFile: cluster.writerFile, streams: { events: { table: 'events', key: ['id'], columns: ['id', 'v'] } }, retention: { minReplicas: 1 } };
    writeFileSync(agentConfig, JSON.stringify(config));
    buffers = [path.join(work, 'w1.sqlite'), path.join(work, 'w2.sqlite')];
    const parsed = parseAgentConfig(config, work);
    // w1: 30 rows acknowledged and synced; w2: 20 rows acknowledged, never synced (its writer was "down").
    const w1 = WriteBuffer.open({ bufferPath: buffers[0]!, config: parsed });
    w1.appendMany('events', Array.from({ length: 30 }, (_, i) => ({ id: `w1-${i}`, v: i })));
    await w1.syncOnce();
    await w1.close();
    const w2 = WriteBuffer.open({ bufferPath: buffers[1]!, config: parsed });
    w2.appendMany('events', Array.from({ length: 20 }, (_, i) => ({ id: `w2-${i}`, v: i })));
    await w2.close();
  });

  afterAll(async () => {
    // The CLI changed the cluster (promotion, rebuild): stop what its state file says is running now.
    if (dir && existsSync(path.join(dir, 'state.json'))) await LocalCluster.attach(dir).stop();
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('status: the primary, both replicas with their lag and state, and each buffer backlog', async () => {
    const run = await runInProcess(['status', '--local', dir, '--buffer', ...buffers, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as StatusReport;
    expect(report).toMatchObject({ source: 'local', clusterId: cluster.clusterId, writerId: 'pg-0', primaryId: 'pg-0', state: 'OK' });
    expect(report.nodes.map((n) => [n.id, n.role, n.writer, n.state, n.timeline])).toEqual([
      ['pg-0', 'primary', true, 'OK', 1],
      ['pg-1', 'replica', false, 'OK', 1],
      ['pg-2', 'replica', false, 'OK', 1],
    ]);
    const ports = cluster.nodes().map((n) => `127.0.0.1:${n.port}`);
    expect(report.nodes.map((n) => n.endpoint)).toEqual(ports);
    for (const replica of report.nodes.slice(1)) {
      expect(replica.lagBytes).toEqual(expect.any(Number));
      expect(replica.lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    }
    expect(report.workers.map((w) => [w.id, w.pendingRows, w.state])).toEqual([
      ['w1', 0, 'OK'],
      ['w2', 20, 'OK'],
    ]);
    expect(report.workers[1]!.detail).toBe('never synced');
  });

  it('status as a spawned process prints the topology table', () => {
    const out = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'bin', 'rds-failover.ts'), 'status', '--local', dir], { cwd: REPO, encoding: 'utf8' });
    expect(out.status).toBe(0);
    expect(out.stdout).toContain(`cluster ${cluster.clusterId} (local): writer pg-0, primary pg-0, state OK`);
    expect(out.stdout).toMatch(/^pg-0\s+primary\s+\*\s+running/m);
    expect(out.stdout).toMatch(/^pg-1\s+replica\s+running/m);
    expect(out.stdout).toMatch(/^pg-2\s+replica\s+running/m);
  });

  it('plan: a failover is refused while the primary is healthy (exit 3)', async () => {
    const run = await runInProcess(['plan', '--local', dir]);
    expect(run.code).toBe(3);
    expect(run.stdout).toContain(`failover of ${cluster.clusterId}: REFUSED (primary-healthy)`);
    expect(run.stderr).toContain('error: the runbook would refuse: primary pg-0 answers and accepts writes');
  });

  it('plan: a switchover to pg-2 is planned, and nothing changes', async () => {
    const run = await runInProcess(['plan', '--local', dir, '--mode', 'switchover', '--candidate', 'pg-2', '--json']);
    expect(run.code).toBe(0);
    const view = JSON.parse(run.stdout) as PlanView;
    expect(view).toMatchObject({ outcome: 'plan', mode: 'switchover', plan: { oldPrimaryId: 'pg-0', candidateId: 'pg-2', rebuildReplicaIds: ['pg-1'], referenceSource: 'primary', forced: false } });
    expect(view.candidates.map((c) => [c.nodeId, c.eligible])).toEqual([
      ['pg-1', true],
      ['pg-2', true],
    ]);
    const now = LocalCluster.attach(dir);
    expect([now.writerId(), now.primaryId()]).toEqual(['pg-0', 'pg-0']);
    expect((await query(cluster, 'pg-0', 'SELECT pg_is_in_recovery() AS r'))[0]!.r).toBe(false);
  });

  it('plan / switchover with an unknown candidate: exit 2 before anything runs', async () => {
    const plan = await runInProcess(['plan', '--local', dir, '--mode', 'switchover', '--candidate', 'pg-9']);
    expect(plan.code).toBe(2);
    expect(plan.stderr).toContain(`--candidate: 'pg-9' is not a node of local cluster ${cluster.clusterId} (nodes: pg-0, pg-1, pg-2)`);
    const switchover = await runInProcess(['switchover', '--local', dir, '--candidate', 'pg-0', '--yes']);
    expect(switchover.code).toBe(2);
    expect(switchover.stderr).toContain("--candidate: 'pg-0' is the writer already");
    expect(LocalCluster.attach(dir).writerId()).toBe('pg-0');
  });

  it('switchover --yes: promotes pg-2, repoints the writer, drains both buffers, rebuilds pg-1; no acknowledged row is missing', async () => {
    const run = await runInProcess(['switchover', '--local', dir, '--candidate', 'pg-2', '--buffer', ...buffers, '--agent-config', agentConfig, '--yes', '--json']);
    expect(run.stderr).not.toContain('error:');
    expect(run.code).toBe(0);
    const view = JSON.parse(run.stdout) as OutcomeView;
    expect(view).toMatchObject({ outcome: 'succeeded', ok: true, oldPrimary: 'pg-0', newPrimary: 'pg-2', error: null });
    expect(view.forkPoint).toMatch(/^timeline 1 at [0-9A-F]+\/[0-9A-F]+, epoch [0-9a-f]{8} kept up to [0-9A-F]+\/[0-9A-F]+$/);
    expect(view.steps.map((s) => s.step)).toEqual([
      'preflight',
      'plan',
      'fence old primary',
      'record fork point',
      'promote',
      'wait until writable',
      'record epoch',
      'isolate old primary',
      'repoint writer',
      'drain workers',
      'verify',
      'rebuild replicas',
      'notify',
    ]);
    expect(view.drains.map((d) => [d.workerId, d.status, d.summary?.inserted, d.summary?.remainingPending])).toEqual([
      ['w1', 'done', 0, 0],
      ['w2', 'done', 20, 0],
    ]);
    // Live progress went to stderr while it ran.
    expect(run.stderr).toMatch(/▶ fence old primary[\s\S]*✔ promote[\s\S]*✔ drain workers .*workers=2/);

    const after = LocalCluster.attach(dir);
    expect([after.writerId(), after.primaryId()]).toEqual(['pg-2', 'pg-2']);
    expect(readFileSync(after.writerFile, 'utf8').trim()).toBe(after.connectionString('pg-2'));
    const rows = await query(after, 'pg-2', 'SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM events');
    expect(rows[0]).toEqual({ n: 50, d: 50 });
  });

  it('status after the switchover: pg-2 is the writer, pg-1 replicates from it, pg-0 is fenced and does not count', async () => {
    const run = await runInProcess(['status', '--local', dir]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`cluster ${cluster.clusterId} (local): writer pg-2, primary pg-2, state OK`);
    expect(run.stdout).toMatch(/^pg-0\s+fenced\s+running.*UNREACHABLE\s+old primary, isolated/m);
    expect(run.stdout).toMatch(/^pg-1\s+replica\s+running\s+\S+\s+2\s/m);
    expect(run.stdout).toMatch(/^pg-2\s+primary\s+\*\s+running\s+\S+\s+2\s.*OK/m);
  });

  it('reconcile: shows, then writes the new topology into a CDK config', async () => {
    const file = path.join(work, 'local.json');
    writeFileSync(file, `${JSON.stringify({ clusterId: 'local', workers: { streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } }, database: { nodes: ['pg0', 'pg1', 'pg2'] } }, null, 2)}\n`);
    const preview = await runInProcess(['reconcile', '--local', dir, '--config', file]);
    expect(preview.code).toBe(0);
    expect(preview.stdout).toContain('primary: pg0 -> pg2');
    expect(JSON.parse(readFileSync(file, 'utf8')).database).toEqual({ nodes: ['pg0', 'pg1', 'pg2'] });
    const write = await runInProcess(['reconcile', '--local', dir, '--config', file, '--write']);
    expect(write.code).toBe(0);
    expect(write.stdout).toContain(`written to ${file}`);
    expect(write.stdout).toContain(`review the stack change: npx cdk diff -c config=${file}`);
    expect(JSON.parse(readFileSync(file, 'utf8')).database).toMatchObject({ nodes: ['pg1', 'pg2'], primary: 'pg2', originalPrimary: 'pg0', retired: ['pg0'] });
  });

  it('drain re-run: every row is in the new epoch\'s history already, nothing is sent again', async () => {
    const epoch = (JSON.parse((await runInProcess(['status', '--local', dir, '--json'])).stdout) as StatusReport).epoch!.id;
    const run = await runInProcess(['drain', '--local', dir, '--buffer', ...buffers, '--agent-config', agentConfig, '--epoch', epoch, '--json']);
    expect(run.stderr).not.toContain('error:');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { request: unknown; workers: { workerId: string; state: string; summary: { epochId: string; resent: number; inserted: number } }[] };
    expect(out.request).toEqual({ epochId: epoch });
    expect(out.workers.map((w) => [w.workerId, w.state, w.summary.epochId, w.summary.resent, w.summary.inserted])).toEqual([
      ['w1', 'done', epoch, 0, 0],
      ['w2', 'done', epoch, 0, 0],
    ]);
    const bad = await runInProcess(['drain', '--local', dir, '--buffer', ...buffers, '--agent-config', agentConfig, '--window', '1h']);
    expect(bad.code).toBe(2);
    const rows = await query(LocalCluster.attach(dir), 'pg-2', 'SELECT count(*)::int AS n FROM events');
    expect(rows[0]!.n).toBe(50);
  });
});
