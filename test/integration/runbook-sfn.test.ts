/**
 * The state machine the Runbook construct synthesizes, executed with aws-local-stepfunctions against a real
 * local cluster (primary + 3 streaming replicas) and real worker buffers under write load (the drill's load
 * workers: separate processes appending through WriteBuffer with the sync daemon, following the writer file).
 *
 * Round 1 (kill -9 of pg-0 after its replicas stopped receiving WAL): a dry run changes nothing; the failover
 * succeeds, a second concurrent execution is refused, every row acknowledged before the crash is on the new
 * primary, including rows only the old primary had (the drain recovered them).
 * Round 2 (kill -9 of the new primary): a failing promote takes the Catch path and notifies; a runner process
 * that resumes it is SIGKILLed right after promotion; the next execution completes without a second promotion.
 * Finally: every acknowledged row is in the final primary exactly once.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadWorkerMessage } from '../../src/cli/drill/load-worker-protocol.js';
import { writeLoadWorkerConfig } from '../../src/cli/drill/run-drill.js';
import type { RunbookState } from '../../src/core/runbook/state.js';
import { FileRunbookJournal } from '../../src/local/file-runbook-journal.js';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { LocalFailoverLock } from '../../src/local/local-failover-lock.js';
import type { LocalWorker } from '../../src/local/local-worker-control.js';
import { PgLineageStore } from '../../src/pg/lineage.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';
import type { Notification } from '../../src/ports/notifier.js';
import { localRunbookEnv, startExecution, synthesizeRunbook, type SynthesizedRunbook } from './runbook-sfn-harness.js';

const REPO_ROOT = path.join(__dirname, '..', '..');
const LOAD_WORKER = path.join(REPO_ROOT, 'src', 'cli', 'drill', 'load-worker.ts');
const CHILD = path.join(__dirname, 'runbook-sfn-child.ts');
const TABLE = 'runbook_events';
const WORKERS = 3;
const RATE = 100;

let cluster: LocalCluster;
let workDir: string;
let stateDir: string;
let runbook: SynthesizedRunbook;
let localWorkers: LocalWorker[];
const loadWorkers: ChildProcess[] = [];
const acked = new Map<string, string[]>();
const notifications: Notification[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const allAcked = () => [...acked.values()].flat();

async function query<T extends pg.QueryResultRow>(nodeId: string, sql: string, c: LocalCluster = cluster): Promise<T[]> {
  const client = new pg.Client(c.clientConfig(nodeId));
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

function probe(c: LocalCluster = cluster) {
  return new PgDatabaseProbe((id) => c.clientConfig(id), { connectTimeoutMs: 1_000 });
}

function startLoadWorker(id: string): Promise<void> {
  const spec = writeLoadWorkerConfig({ workDir, workerId: id, writerFile: cluster.writerFile, table: TABLE, stream: 'events', ratePerSecond: RATE, batchSize: 200 });
  localWorkers.push({ id, bufferPath: spec.bufferPath, configPath: spec.configPath });
  const child = fork(LOAD_WORKER, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, DRILL_WORKER_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  loadWorkers.push(child);
  const ids: string[] = [];
  acked.set(id, ids);
  return new Promise((resolve, reject) => {
    child.on('message', (m: LoadWorkerMessage) => {
      if (m.type === 'ready') resolve();
      if (m.type === 'acks') for (const [ackedId] of m.acks) ids.push(ackedId);
    });
    child.once('exit', (code) => reject(new Error(`load worker ${id} exited with ${code} before it was ready`)));
  });
}

function stopLoadWorker(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.on('message', (m: LoadWorkerMessage) => {
      if (m.type === 'stopped') resolve(m.pendingRows);
    });
    child.send({ type: 'stop', syncTimeoutMs: 30_000 });
  });
}

/** primary_conninfo = '' on a replica: it stops receiving WAL (what the old primary commits now stays there). */
async function setReplication(nodeId: string, on: boolean): Promise<void> {
  await query(nodeId, on ? 'ALTER SYSTEM RESET primary_conninfo' : `ALTER SYSTEM SET primary_conninfo = ''`);
  await query(nodeId, 'SELECT pg_reload_conf()');
}

async function idsOn(nodeId: string, c: LocalCluster = cluster): Promise<{ ids: Set<string>; rows: number }> {
  const rows = await query<{ id: string }>(nodeId, `SELECT id FROM ${TABLE}`, c);
  return { ids: new Set(rows.map((r) => r.id)), rows: rows.length };
}

function writerNode(c: LocalCluster): string {
  const url = readFileSync(c.writerFile, 'utf8').trim();
  const port = Number(new URL(url).port);
  return c.nodes().find((n) => n.port === port)!.id;
}

function journal() {
  return new FileRunbookJournal(path.join(stateDir, 'journal'));
}

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'runbook-sfn-'));
  stateDir = path.join(workDir, 'controller');
  localWorkers = [];
  runbook = synthesizeRunbook();
  cluster = await LocalCluster.start({ replicas: 3 });
  await query('pg-0', `CREATE TABLE ${TABLE} (id text PRIMARY KEY, worker text NOT NULL, seq bigint NOT NULL, payload jsonb NOT NULL)`);
  const lsn = (await query<{ lsn: string }>('pg-0', 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
  for (const r of ['pg-1', 'pg-2', 'pg-3']) await cluster.waitForReplay(r, lsn);
  await cluster.setWriter('pg-0');
  await Promise.all(Array.from({ length: WORKERS }, (_, i) => startLoadWorker(`w${i + 1}`)));
});

afterAll(async () => {
  for (const w of loadWorkers) if (w.exitCode === null) w.kill('SIGKILL');
  await fresh?.stop().catch(() => undefined);
  await cluster?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

/** After the runner child process changed the cluster, this process re-reads the cluster's state file. */
let fresh: LocalCluster | undefined;

describe('round 1: kill -9 of the primary under write load', () => {
  let ackedBeforeKill: string[] = [];

  it('a dry run while the primary is healthy is refused as a plan, and changes nothing', async () => {
    const env = localRunbookEnv({ cluster, workers: localWorkers, stateDir, notifications });
    const out = await startExecution(runbook, env, { mode: 'failover', dryRun: true }, 'dry-1').result;
    expect(out.outcome).toBe('dry-run');
    expect(out.refusal?.code).toBe('primary-healthy');
    expect(writerNode(cluster)).toBe('pg-0');
  });

  it('after the crash, a dry run returns the plan and still changes nothing', async () => {
    await sleep(1_000);
    // Cut every replica off the WAL stream: rows synced from now on exist only on pg-0 until the drain.
    for (const r of ['pg-1', 'pg-2', 'pg-3']) await setReplication(r, false);
    await sleep(600);
    await cluster.stopNode('pg-0', 'kill');
    ackedBeforeKill = allAcked();
    for (const r of ['pg-1', 'pg-2', 'pg-3']) await setReplication(r, true);

    const env = localRunbookEnv({ cluster, workers: localWorkers, stateDir, notifications });
    const sent = notifications.length;
    const out = await startExecution(runbook, env, { mode: 'failover', dryRun: true }, 'dry-2').result;
    expect(out.outcome).toBe('dry-run');
    expect(['pg-1', 'pg-2', 'pg-3']).toContain(out.plan?.candidateId);
    expect(out.plan?.oldPrimaryId).toBe('pg-0');
    expect(writerNode(cluster)).toBe('pg-0');
    for (const r of ['pg-1', 'pg-2', 'pg-3']) expect(await probe().probe(r)).toMatchObject({ reachable: true, inRecovery: true });
    expect(await journal().load(cluster.clusterId)).toBeNull();
    expect(await new LocalFailoverLock(path.join(stateDir, 'locks')).holder(cluster.clusterId)).toBeNull();
    expect(notifications.length).toBe(sent);
  });

  it('the failover succeeds (a second concurrent execution is refused meanwhile): promoted, writer repointed, every worker drained', async () => {
    const env = localRunbookEnv({ cluster, workers: localWorkers, stateDir, notifications });
    let second: Promise<RunbookState> | undefined;
    const execution = startExecution(runbook, env, { mode: 'failover' }, 'exec-1', {
      Promote: async (_input, real) => {
        second = startExecution(runbook, env, { mode: 'failover' }, 'exec-2').result;
        await second.catch(() => undefined);
        return real();
      },
    });
    const out = await execution.result;

    // The concurrent execution failed with a clear message and changed nothing of exec-1's.
    const refused = await second!.then(
      () => undefined,
      (e: Error) => e.cause as Error,
    );
    expect(refused?.name).toBe('RunbookRefused');
    expect(refused?.message).toMatch(new RegExp(`^another failover is running: execution exec-1 holds the lock of ${cluster.clusterId} since `));

    expect(out.outcome).toBe('succeeded');
    const candidate = out.plan!.candidateId;
    expect(execution.entered).toContain('Finish');
    expect(execution.entered).not.toContain('NotifyFailure');
    expect(writerNode(cluster)).toBe(candidate);
    const p = await probe().probe(candidate);
    expect(p).toMatchObject({ reachable: true, inRecovery: false, acceptsWrites: true, timelineId: 2 });
    expect(out.forkPoint?.timelineId).toBe(1);
    expect(out.drains?.map((d) => [d.workerId, d.status])).toEqual(localWorkers.map((w) => [w.id, 'done']));
    // Rows that only the crashed primary had were really re-sent: by the drains, or by the workers' own sync loops,
    // which met the new epoch first (their confirmations say how many they re-sent).
    const confirmations = await new PgLineageStore((id) => cluster.clientConfig(id)).confirmations(candidate);
    expect(confirmations.filter((c) => c.epochId === out.epoch!.id).map((c) => c.workerId).sort()).toEqual(localWorkers.map((w) => w.id).sort());
    const resent = out.drains!.reduce((n, d) => n + (d.summary?.resent ?? 0), 0) + confirmations.reduce((n, c) => n + c.rowsResent, 0);
    expect(resent).toBeGreaterThan(0);
    expect(out.verification).toMatchObject({ unconfirmed: [] });
    expect(out.rebuilds?.every((r) => r.status === 'done')).toBe(true);
    expect((await journal().load(cluster.clusterId))?.status).toBe('succeeded');
    expect(notifications.some((n) => n.title === `Failover of ${cluster.clusterId} completed` && n.severity === 'resolved')).toBe(true);
    expect(notifications.some((n) => n.severity === 'critical' && n.fields.execution === 'exec-2')).toBe(true);

    // Every row acknowledged before the crash is on the new primary.
    const { ids } = await idsOn(candidate);
    expect(ackedBeforeKill.filter((id) => !ids.has(id))).toEqual([]);
  });
});

describe('round 2: kill -9 of the new primary; failing promote; runner killed mid-way', () => {
  let oldPrimary: string;
  let candidate: string;
  let timelineBefore: number;

  it('a failing promote goes to the Catch path: NotifyFailure notifies with the recoverable state, nothing is promoted', async () => {
    oldPrimary = writerNode(cluster);
    await sleep(800);
    await cluster.stopNode(oldPrimary, 'kill');
    const env = localRunbookEnv({ cluster, workers: localWorkers, stateDir, notifications });
    const execution = startExecution(runbook, env, { mode: 'failover' }, 'exec-3', {
      Promote: async () => {
        throw Object.assign(new Error('PromoteReadReplica: the instance is not in the available state (simulated)'), { name: 'InvalidDBInstanceStateFault' });
      },
    });
    const failure = await execution.result.then(
      () => undefined,
      (e: Error) => e.cause as Error,
    );
    expect(failure?.name).toBe('InvalidDBInstanceStateFault');
    expect(failure?.message).toBe('PromoteReadReplica: the instance is not in the available state (simulated)');
    expect(execution.entered.slice(-3)).toEqual(['Promote', 'NotifyFailure', 'RunbookFailed']);

    const alert = notifications.find((n) => n.fields.execution === 'exec-3' && n.severity === 'critical')!;
    expect(alert.title).toBe(`Failover of ${cluster.clusterId}: promote FAILED`);
    const entry = await journal().load(cluster.clusterId);
    expect(entry?.status).toBe('failed');
    const state = entry!.state as RunbookState;
    candidate = state.plan!.candidateId;
    expect(alert.text).toContain(`${oldPrimary} is fenced and nothing was promoted`);
    expect(alert.text).toContain(`Re-run the failover to resume with ${candidate}`);
    expect(state.forkPoint).toEqual({ timelineId: 2, lsn: expect.any(String), epochId: expect.any(String), keptUpTo: state.forkPoint!.lsn });
    expect(state.epoch).toBeUndefined(); // not promoted: no epoch recorded
    const p = await probe().probe(candidate);
    expect(p).toMatchObject({ reachable: true, inRecovery: true });
    timelineBefore = 2;
    expect(await new LocalFailoverLock(path.join(stateDir, 'locks')).holder(cluster.clusterId)).toBeNull();
  });

  it('a runner killed right after promoting, then a new execution: completes with the same candidate and no second promotion', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        RUNBOOK_CHILD_SPEC: JSON.stringify({ baseDir: cluster.baseDir, stateDir, workers: localWorkers, executionName: 'exec-4', input: { mode: 'failover' } }),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const promoted = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const m = /PROMOTED (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`runner child exited (${code}) before promoting: ${out}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(promoted).toBe(candidate);
    const half = await journal().load(cluster.clusterId);
    expect(half).toMatchObject({ executionId: 'exec-4', status: 'in-progress' });
    expect((half!.state as RunbookState).resumedFrom).toEqual(['exec-3']);

    // The child changed the cluster's state file (promotion): work from a fresh view of it.
    fresh = LocalCluster.attach(cluster.baseDir);
    const env = localRunbookEnv({ cluster: fresh, workers: localWorkers, stateDir, notifications });
    const execution = startExecution(runbook, env, { mode: 'failover' }, 'exec-5');
    const out = await execution.result;
    expect(out.outcome).toBe('succeeded');
    expect(out.resumedFrom).toEqual(['exec-3', 'exec-4']);
    expect(out.plan!.candidateId).toBe(candidate);
    expect(writerNode(fresh)).toBe(candidate);
    // One promotion: the candidate is on the next timeline, not two further; no other node left recovery.
    expect(await probe(fresh).probe(candidate)).toMatchObject({ reachable: true, inRecovery: false, acceptsWrites: true, timelineId: timelineBefore + 1 });
    for (const n of fresh.nodes().filter((x) => x.id !== candidate && x.pid !== null)) {
      expect(await probe(fresh).probe(n.id), n.id).toMatchObject({ inRecovery: true });
    }
    expect(out.drains?.map((d) => d.status)).toEqual(localWorkers.map(() => 'done'));
  });

  it('zero acknowledged rows lost and zero duplicates across both failovers', async () => {
    await sleep(1_000);
    const pending = await Promise.all(loadWorkers.map(stopLoadWorker));
    expect(pending).toEqual(loadWorkers.map(() => 0));
    const primary = writerNode(fresh!);
    const { ids, rows } = await idsOn(primary, fresh!);
    const acknowledged = allAcked();
    expect(acknowledged.length).toBeGreaterThan(1_000);
    expect(acknowledged.filter((id) => !ids.has(id))).toEqual([]);
    expect(rows).toBe(new Set(acknowledged).size);
    expect(rows).toBe(ids.size);
  });
});
