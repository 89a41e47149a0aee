/**
 * The local failover drill: a real primary with streaming replicas, K worker processes appending through
 * real buffers, a fault at a random moment, the runbook's own steps with local adapters, and an exact count
 * of what was acknowledged against what the new primary holds.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { percentile, seededRandom } from '../../core/stats.js';
import { runRunbook, type RunbookEvent, type RunbookInput, STEP_LABELS, LOCAL_RUNBOOK_CONFIG } from '../../core/runbook/index.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { createLocalRunbookPorts } from '../../local/local-runbook-ports.js';
import { PgLineageStore } from '../../pg/lineage.js';
import { PgDatabaseProbe } from '../../pg/probe.js';
import type { Notification } from '../../ports/notifier.js';
import type { Progress } from '../progress.js';
import type { LoadWorkerMessage, LoadWorkerSpec } from './load-worker-protocol.js';
import { drillOk, type DrillEvent, type DrillFault, type DrillResult } from './report.js';

export interface DrillOptions {
  readonly seed: number;
  readonly fault: DrillFault;
  readonly replicas: number;
  readonly workers: number;
  /** Rows per second per worker. */
  readonly rate: number;
  /** Load before the fault: the fault lands at a seeded random moment in [warmup, warmup + jitter]. */
  readonly warmupMs: number;
  readonly jitterMs: number;
  /** Load kept running after the runbook finished, before the final count. */
  readonly afterMs: number;
  /** The primary must stay unreachable this long before the runbook acts (the confirm step). */
  readonly confirmMs: number;
  /** How often the drill's monitor probes the primary. */
  readonly probeIntervalMs: number;
  readonly progress: Progress;
}

const STREAM = 'events';
const TABLE = 'drill_events';
const LOAD_WORKER = path.join(__dirname, 'load-worker.ts');

export async function runDrill(options: DrillOptions): Promise<DrillResult> {
  const { progress } = options;
  const random = seededRandom(options.seed);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'rds-failover-drill-'));
  let origin = Date.now();
  const timeline: DrillEvent[] = [];
  const mark = (name: string, detail?: string, at = Date.now()) => {
    timeline.push({ atMs: at - origin, name, detail });
  };
  let cluster: LocalCluster | undefined;
  const workers: ChildProcess[] = [];
  try {
    progress.event('start', 'cluster', `primary + ${options.replicas} streaming replicas`);
    cluster = await LocalCluster.start({ replicas: options.replicas });
    const oldPrimary = cluster.primaryId();
    await createTargetTable(cluster, oldPrimary);
    await cluster.setWriter(oldPrimary);
    progress.event('done', 'cluster', cluster.nodes().map((n) => `${n.id}:${n.port}`).join(' '));

    // Workers: one process each, own buffer file and agent config, the writer file as the writer endpoint.
    const specs = Array.from({ length: options.workers }, (_, i) => workerSpec(workDir, `w${i + 1}`, cluster!.writerFile, options.rate));
    const acks = new Map<string, { ids: string[]; times: number[]; latenciesUs: number[] }>();
    progress.event('start', 'workers', `${options.workers} × ${options.rate} rows/s`);
    await Promise.all(specs.map((spec) => startWorker(spec, workers, acks)));
    origin = Date.now(); // the report's clock starts with the load
    mark('load started');
    progress.event('done', 'workers');

    const faultAfter = options.warmupMs + Math.round(random() * options.jitterMs);
    await sleep(faultAfter);
    const lag = options.fault === 'replica-lag' ? await cutReplication(cluster, progress) : undefined;
    const lagNode = lag?.nodeId;
    if (lag) {
      mark('replica lag', `${lag.nodeId} stopped receiving WAL`);
      await sleep(Math.max(500, options.warmupMs / 2));
    }

    const events: RunbookEvent[] = [];
    const notifications: Notification[] = [];
    const ports = createLocalRunbookPorts({
      cluster,
      workers: specs.map((s) => ({ id: s.workerId, bufferPath: s.bufferPath, configPath: s.configPath })),
      stateDir: path.join(workDir, 'controller'),
      noFailover: lagNode ? cluster.nodes().filter((n) => n.id !== oldPrimary && n.id !== lagNode).map((n) => n.id) : [],
      // Every notification is kept and counted in the report; the live progress already shows each step.
      notifier: { notify: async (n) => void notifications.push(n) },
    });
    const onEvent = (event: RunbookEvent) => {
      events.push(event);
      const figures = Object.entries(event.figures).map(([k, v]) => `${k}=${v}`).join(' ');
      if (event.phase !== 'start' || event.step === 'preflight') mark(`${STEP_LABELS[event.step]} ${event.phase}`, figures || event.message, Date.parse(event.at));
      progress.event(event.phase === 'warning' ? 'info' : event.phase, STEP_LABELS[event.step], figures || event.message);
    };
    const config = { ...LOCAL_RUNBOOK_CONFIG, confirmUnreachableMs: options.confirmMs };

    let faultAt: number;
    let input: RunbookInput;
    if (options.fault === 'switchover') {
      faultAt = Date.now();
      mark('switchover requested');
      input = { mode: 'switchover' };
    } else {
      faultAt = Date.now();
      await cluster.stopNode(oldPrimary, 'kill');
      mark('primary killed', `kill -9 ${oldPrimary}`, faultAt);
      await lag?.restore();
      progress.event('info', 'fault', `kill -9 of ${oldPrimary}'s postmaster`);
      await waitUntilUnreachable(new PgDatabaseProbe((id) => cluster!.clientConfig(id), { connectTimeoutMs: 500 }), oldPrimary, options.probeIntervalMs);
      mark('monitor saw primary down');
      input = { mode: 'failover', force: options.fault === 'replica-lag', trigger: { source: 'rds-event', sourceId: oldPrimary, message: 'drill: primary killed' } };
    }
    const result = await runRunbook(input, ports, { clusterId: cluster.clusterId, config, onEvent });
    if (result.outcome !== 'succeeded') {
      throw new Error(`runbook ${result.outcome}: ${result.error?.message ?? result.state.error?.Cause ?? 'see the timeline'}`);
    }
    const state = result.state;
    const newPrimary = state.plan!.candidateId;
    mark('runbook finished');
    const runbookDoneAt = Date.now();

    await sleep(options.afterMs);
    progress.event('start', 'stop load', 'workers finish syncing what is pending');
    const stopped = await Promise.all(workers.map((w) => stopWorker(w)));
    mark('load stopped');
    progress.event('done', 'stop load', stopped.map((s) => `pending=${s.pendingRows}`).join(' '));

    progress.event('start', 'verify', `count acknowledged ids on ${newPrimary}`);
    const stored = await readStoredRows(cluster, newPrimary);
    const acknowledged = [...acks.values()].flatMap((a) => a.ids);
    const present = new Set(stored.ids);
    const lost = acknowledged.filter((id) => !present.has(id)).length;
    const drains = state.drains ?? [];
    const eventTime = (step: RunbookEvent['step'], phase: RunbookEvent['phase']) => {
      const e = events.find((x) => x.step === step && x.phase === phase);
      return e ? Date.parse(e.at) : Number.NaN;
    };
    const newPort = cluster.nodes().find((n) => n.id === newPrimary)!.port;
    const firstOnNew = Math.min(...stored.rows.filter((r) => r.port === newPort).map((r) => r.committedAtMs));
    const confirmedAt = options.fault === 'switchover' ? faultAt : eventTime('confirm', 'done');
    const rows = {
      acknowledged: acknowledged.length,
      inNewPrimary: stored.ids.length,
      lost,
      duplicates: stored.duplicates,
      recoveredByDrain: drains.reduce((sum, d) => sum + (d.summary?.inserted ?? 0), 0),
      resentByWorkers: (await new PgLineageStore((id) => cluster!.clientConfig(id)).confirmations(newPrimary))
        .filter((c) => c.epochId === state.epoch?.id)
        .reduce((sum, c) => sum + c.rowsResent, 0),
    };
    const latencies = [...acks.values()].flatMap((a) => a.latenciesUs).map((us) => us / 1000);
    const drillResult: DrillResult = {
      seed: options.seed,
      fault: options.fault,
      workers: options.workers,
      ratePerWorker: options.rate,
      oldPrimary,
      newPrimary,
      forkPoint: state.forkPoint ?? null,
      timings: {
        detectionMs: confirmedAt - faultAt,
        promotionMs: eventTime('waitWritable', 'done') - confirmedAt,
        firstWriteMs: firstOnNew - faultAt,
        drainMs: eventTime('drain', 'done') - eventTime('drain', 'start'),
        rtoMs: runbookDoneAt - faultAt,
      },
      rows,
      appendLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies) },
      maxAckGapMs: Math.max(...[...acks.values()].map((a) => maxGap(a.times))),
      notifications: notifications.length,
      timeline: [...timeline].sort((a, b) => a.atMs - b.atMs),
      series: buildSeries(origin, [...acks.values()].flatMap((a) => a.times), stored.rows, cluster),
      ok: drillOk(rows),
    };
    progress.event(drillResult.ok ? 'done' : 'failed', 'verify', `acknowledged ${rows.acknowledged}, in ${newPrimary} ${rows.inNewPrimary}, lost ${rows.lost}, duplicates ${rows.duplicates}`);
    return drillResult;
  } finally {
    for (const w of workers) if (w.exitCode === null) w.kill('SIGKILL');
    await cluster?.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}

function workerSpec(workDir: string, workerId: string, writerFile: string, rate: number): LoadWorkerSpec {
  return writeLoadWorkerConfig({ workDir, workerId, writerFile, table: TABLE, stream: STREAM, ratePerSecond: rate, batchSize: 500 });
}

/**
 * Writes the agent config of one load worker and returns its spec: the drill's rows (id, worker, seq,
 * payload) into `table`, syncing and backing off fast (the drill measures in tens of milliseconds).
 */
export function writeLoadWorkerConfig(o: { workDir: string; workerId: string; writerFile: string; table: string; stream: string; ratePerSecond: number; batchSize: number }): LoadWorkerSpec {
  const configPath = path.join(o.workDir, `${o.workerId}.agent.json`);
  const config = {
    writerFile: o.writerFile,
    workerId: o.workerId,
    streams: { [o.stream]: { table: o.table, key: ['id'], columns: ['id', 'worker', 'seq', 'payload'] } },
    batchSize: o.batchSize,
    pollIntervalMs: 20,
    connectTimeoutMs: 1000,
    queryTimeoutMs: 5000,
    backoff: { initialMs: 20, maxMs: 250 },
    retention: { minReplicas: 1 },
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return { workerId: o.workerId, bufferPath: path.join(o.workDir, `${o.workerId}.outbox.sqlite`), configPath, stream: o.stream, ratePerSecond: o.ratePerSecond };
}

async function createTargetTable(cluster: LocalCluster, primary: string): Promise<void> {
  const client = new pg.Client(cluster.clientConfig(primary));
  await client.connect();
  try {
    // node_port and committed_at record where and when each row was first committed (the chart, first write).
    await client.query(`CREATE TABLE ${TABLE} (
      id text PRIMARY KEY,
      worker text NOT NULL,
      seq bigint NOT NULL,
      payload jsonb NOT NULL,
      node_port integer NOT NULL DEFAULT inet_server_port(),
      committed_at timestamptz NOT NULL DEFAULT clock_timestamp())`);
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
    for (const node of cluster.nodes()) if (node.id !== primary) await cluster.waitForReplay(node.id, rows[0]!.lsn, 30_000);
  } finally {
    await client.end();
  }
}

function startWorker(spec: LoadWorkerSpec, workers: ChildProcess[], acks: Map<string, { ids: string[]; times: number[]; latenciesUs: number[] }>): Promise<void> {
  const child = fork(LOAD_WORKER, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, DRILL_WORKER_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  workers.push(child);
  const record = { ids: [] as string[], times: [] as number[], latenciesUs: [] as number[] };
  acks.set(spec.workerId, record);
  return new Promise((resolve, reject) => {
    child.on('message', (message: LoadWorkerMessage) => {
      if (message.type === 'ready') resolve();
      if (message.type === 'acks') {
        for (const [id, at, us] of message.acks) {
          record.ids.push(id);
          record.times.push(at);
          record.latenciesUs.push(us);
        }
      }
    });
    child.once('exit', (code) => reject(new Error(`worker ${spec.workerId} exited with code ${code} before it was ready`)));
  });
}

function stopWorker(child: ChildProcess): Promise<{ pendingRows: number; lastSyncError: string | null }> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: LoadWorkerMessage) => {
      if (message.type === 'stopped') resolve({ pendingRows: message.pendingRows, lastSyncError: message.lastSyncError });
    };
    child.on('message', onMessage);
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`a worker exited with code ${code} while stopping`))));
    child.send({ type: 'stop', syncTimeoutMs: 30_000 });
  });
}

/**
 * replica-lag: the candidate's WAL receiver is cut (primary_conninfo emptied with ALTER SYSTEM), so it falls
 * behind while the primary keeps committing. `restore` undoes the setting once the primary is dead, so the node
 * keeps no trace of the fault (replicas cloned from it later would inherit it) and still cannot catch up.
 */
async function cutReplication(cluster: LocalCluster, progress: Progress): Promise<{ nodeId: string; restore: () => Promise<void> }> {
  const nodeId = cluster.nodes().find((n) => n.role === 'replica')!.id;
  const setConninfo = async (sql: string) => {
    const client = new pg.Client(cluster.clientConfig(nodeId));
    await client.connect();
    try {
      await client.query(sql);
      await client.query('SELECT pg_reload_conf()');
    } finally {
      await client.end();
    }
  };
  await setConninfo(`ALTER SYSTEM SET primary_conninfo = ''`);
  progress.event('info', 'fault', `${nodeId} cut off from the primary's WAL stream (it will be promoted behind)`);
  return { nodeId, restore: () => setConninfo('ALTER SYSTEM RESET primary_conninfo') };
}

async function waitUntilUnreachable(probe: PgDatabaseProbe, nodeId: string, intervalMs: number): Promise<void> {
  for (;;) {
    const p = await probe.probe(nodeId);
    if (!p.reachable) return;
    await sleep(intervalMs);
  }
}

async function readStoredRows(cluster: LocalCluster, nodeId: string) {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; port: number; at: string }>(
      `SELECT id, node_port AS port, (extract(epoch FROM committed_at) * 1000)::float8::text AS at FROM ${TABLE}`,
    );
    const { rows: dup } = await client.query<{ n: string }>(`SELECT (count(*) - count(DISTINCT id))::text AS n FROM ${TABLE}`);
    return {
      ids: rows.map((r) => r.id),
      rows: rows.map((r) => ({ port: r.port, committedAtMs: Number(r.at) })),
      duplicates: Number(dup[0]!.n),
    };
  } finally {
    await client.end();
  }
}

function buildSeries(origin: number, ackTimes: number[], stored: { port: number; committedAtMs: number }[], cluster: LocalCluster) {
  const bucketMs = 250;
  const bucket = (t: number) => Math.max(0, Math.floor((t - origin) / bucketMs));
  const last = Math.max(...ackTimes.map(bucket), ...stored.map((r) => bucket(r.committedAtMs)), 0);
  const acknowledged = new Array<number>(last + 1).fill(0);
  for (const t of ackTimes) acknowledged[bucket(t)]! += 1;
  const committed: Record<string, number[]> = {};
  const nodeByPort = new Map(cluster.nodes().map((n) => [n.port, n.id]));
  for (const r of stored) {
    const node = nodeByPort.get(r.port) ?? `port ${r.port}`;
    (committed[node] ??= new Array<number>(last + 1).fill(0))[bucket(r.committedAtMs)]! += 1;
  }
  return { bucketMs, acknowledged, committed };
}

function maxGap(times: number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}
