/**
 * The drill's workers: one appender process each (load-worker.ts) with its own buffer and agent config, and,
 * when the agent runs apart (`agents: 'daemon'`), one `rds-failover-agent run` process each, as the systemd unit
 * runs it on a worker instance. The fleet keeps every acknowledged and every refused id, and lets faults stop
 * and start a worker's agent, or fill and free its buffer's volume, while the appends go on.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MIN_MAX_BUFFER_BYTES } from '../../agent/config.js';
import { Outbox } from '../../agent/outbox.js';
import { bufferStatus, type BufferStatus } from '../../agent/status.js';
import type { LocalWorker } from '../../local/local-worker-control.js';
import { registerForCleanup, unregisterForCleanup } from '../../local/cleanup-registry.js';
import { waitForExit } from '../../local/processes.js';
import type { LoadWorkerCommand, LoadWorkerMessage, LoadWorkerSpec } from './load-worker-protocol.js';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');
const LOAD_WORKER = path.join(__dirname, 'load-worker.ts');
const AGENT = [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'bin', 'rds-failover-agent.ts')];

/**
 * How the agents follow the writer. 'file-watch': the local writer file, noticed as soon as it is replaced (the
 * agent's writerFileFollow 'watch'). 'session': as on AWS, where the writer is a DNS name: a session is kept until
 * it breaks, the writer is read again only on reconnect (writerFileFollow 'reconnect').
 */
export type WriterFollow = 'file-watch' | 'session';

export interface FleetOptions {
  readonly workDir: string;
  readonly count: number;
  /** Rows per second per worker. */
  readonly rate: number;
  /** The writer file the agents read (the cluster's, or the network's routed copy). */
  readonly writerFile: string;
  readonly table: string;
  readonly stream: string;
  /** 'in-process': the appender runs the sync daemon too; 'daemon': the agent runs as its own process. */
  readonly agents: 'in-process' | 'daemon';
  readonly writerFollow: WriterFollow;
}

export interface WorkerRecord {
  readonly ids: string[];
  readonly times: number[];
  readonly latenciesUs: number[];
  readonly refused: [string, number][];
  firstRefusal: string | null;
}

interface Worker {
  readonly spec: LoadWorkerSpec;
  readonly appender: ChildProcess;
  /** Its agent process (agents 'daemon'); null: the appender syncs. */
  readonly agent: AgentDaemon | null;
  readonly record: WorkerRecord;
}

export class WorkerFleet {
  private readonly workers: Worker[] = [];

  private constructor(private readonly options: FleetOptions) {}

  static async start(options: FleetOptions): Promise<WorkerFleet> {
    const fleet = new WorkerFleet(options);
    // If the drill dies without stopping us, the agents (no IPC channel to notice it) die with it.
    registerForCleanup(fleet);
    const specs = Array.from({ length: options.count }, (_, i) =>
      writeLoadWorkerConfig({
        workDir: options.workDir,
        workerId: `w${i + 1}`,
        writerFile: options.writerFile,
        table: options.table,
        stream: options.stream,
        ratePerSecond: options.rate,
        batchSize: 500,
        syncInProcess: options.agents === 'in-process',
        writerFollow: options.writerFollow,
      }),
    );
    try {
      await Promise.all(specs.map((spec) => fleet.startWorker(spec)));
    } catch (error) {
      fleet.killAll();
      throw error;
    }
    return fleet;
  }

  ids(): string[] {
    return this.workers.map((w) => w.spec.workerId);
  }

  /** What the runbook's worker control drains; a worker whose agent is down is not drained (isUp), as SSM does not reach an instance that is down. */
  localWorkers(): LocalWorker[] {
    return this.workers.map((w) => ({ id: w.spec.workerId, bufferPath: w.spec.bufferPath, configPath: w.spec.configPath, isUp: () => this.agentRunning(w.spec.workerId) }));
  }

  records(): ReadonlyMap<string, WorkerRecord> {
    return new Map(this.workers.map((w) => [w.spec.workerId, w.record]));
  }

  /** Stops a worker's agent process (SIGTERM finishes its batch; SIGKILL is a crash). Its appends go on. */
  async stopAgent(workerId: string, signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    await this.daemonWorker(workerId).agent!.stop(signal);
  }

  startAgent(workerId: string): void {
    this.daemonWorker(workerId).agent!.start();
  }

  agentRunning(workerId: string): boolean {
    const agent = this.worker(workerId).agent;
    return this.options.agents === 'in-process' || agent!.running();
  }

  /** Each worker's buffer as `rds-failover-agent status` shows it (read from the file; the agents may be stopped). */
  bufferStatuses(): BufferStatus[] {
    return this.workers.map((w) => {
      const outbox = Outbox.open(w.spec.bufferPath, { mustExist: true });
      try {
        return bufferStatus(outbox, undefined);
      } finally {
        outbox.close();
      }
    });
  }

  /**
   * 'full': the worker's buffer volume gets no room beyond what the buffer holds now; null: room again. Full for
   * every process of the worker, as a volume is: the application's own connection (it appends directly while no
   * daemon answers) and the agent daemon, which commits the application's appends over its socket (the same cap as
   * its maxBufferBytes, set in its config and re-read on SIGHUP, so an agent restarted meanwhile is full too).
   */
  setDiskSpace(workerId: string, space: 'full' | null): void {
    const worker = this.worker(workerId);
    const command: LoadWorkerCommand = { type: 'disk', space };
    worker.appender.send(command);
    if (worker.agent === null) return;
    const config = JSON.parse(readFileSync(worker.spec.configPath, 'utf8')) as Record<string, unknown>;
    if (space === 'full') config.maxBufferBytes = Math.max(statSync(worker.spec.bufferPath).size, MIN_MAX_BUFFER_BYTES);
    else delete config.maxBufferBytes;
    writeFileSync(`${worker.spec.configPath}.tmp`, JSON.stringify(config, null, 2));
    renameSync(`${worker.spec.configPath}.tmp`, worker.spec.configPath);
    worker.agent.reload();
  }

  /** Stops appending everywhere, lets every buffer sync what is pending, stops the agents. */
  async stop(syncTimeoutMs = 30_000): Promise<{ workerId: string; pendingRows: number; lastSyncError: string | null }[]> {
    for (const w of this.workers) if (this.options.agents === 'daemon') this.startAgent(w.spec.workerId);
    const stopped = await Promise.all(this.workers.map((w) => stopAppender(w.appender, syncTimeoutMs).then((s) => ({ workerId: w.spec.workerId, ...s }))));
    await Promise.all(this.workers.map((w) => this.stopAgent(w.spec.workerId, 'SIGTERM').catch(() => undefined)));
    unregisterForCleanup(this);
    return stopped;
  }

  killAll(): void {
    unregisterForCleanup(this);
    for (const w of this.workers) {
      if (w.appender.exitCode === null && w.appender.signalCode === null) w.appender.kill('SIGKILL');
      w.agent?.kill();
    }
  }

  /** Last resort when the drill's process ends without stopping the fleet (see cleanup-registry). */
  cleanupSync(): void {
    this.killAll();
  }

  private worker(workerId: string): Worker {
    const worker = this.workers.find((w) => w.spec.workerId === workerId);
    if (!worker) throw new Error(`unknown worker '${workerId}': the drill's workers are ${this.ids().join(', ')}`);
    return worker;
  }

  private daemonWorker(workerId: string): Worker {
    const worker = this.worker(workerId);
    if (this.options.agents !== 'daemon') throw new Error(`worker ${workerId} runs its agent inside the appender: start the fleet with agents 'daemon' to stop or start the agent alone`);
    return worker;
  }

  private startWorker(spec: LoadWorkerSpec): Promise<void> {
    const { appender, record, ready } = startAppender(spec);
    const agent = this.options.agents === 'daemon' ? new AgentDaemon(spec) : null;
    this.workers.push({ spec, appender, agent, record });
    agent?.start();
    return ready;
  }
}

/**
 * Forks a worker's appender (load-worker.ts: its application appending into its buffer, and syncing it when the
 * spec says so) and records every id it acknowledges or refuses; `ready` resolves once it appends.
 */
export function startAppender(spec: LoadWorkerSpec): { readonly appender: ChildProcess; readonly record: WorkerRecord; readonly ready: Promise<void> } {
  const appender = fork(LOAD_WORKER, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, DRILL_WORKER_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const record: WorkerRecord = { ids: [], times: [], latenciesUs: [], refused: [], firstRefusal: null };
  const ready = new Promise<void>((resolve, reject) => {
    appender.on('message', (message: LoadWorkerMessage) => {
      if (message.type === 'ready') resolve();
      if (message.type === 'acks') {
        for (const [id, at, us] of message.acks) {
          record.ids.push(id);
          record.times.push(at);
          record.latenciesUs.push(us);
        }
      }
      if (message.type === 'refused') {
        record.refused.push(...message.refused);
        record.firstRefusal ??= message.error;
      }
    });
    appender.once('exit', (code) => reject(new Error(`worker ${spec.workerId} exited with code ${code} before it was ready`)));
  });
  return { appender, record, ready };
}

/**
 * A worker's `rds-failover-agent run` process, as the systemd unit runs it on an instance (its JSON log lines appended
 * to agentLogPath): started, stopped (SIGTERM finishes its batch; SIGKILL is a crash; one that has not exited 30 s
 * after SIGTERM is killed), started again.
 */
export class AgentDaemon {
  private child: ChildProcess | null = null;

  constructor(private readonly spec: LoadWorkerSpec) {}

  running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running()) return;
    const log = openSync(agentLogPath(this.spec), 'a');
    try {
      const [command, ...args] = AGENT;
      this.child = spawn(command!, [...args, 'run', '--buffer', this.spec.bufferPath, '--config', this.spec.configPath], { cwd: REPO_ROOT, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
  }

  async stop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (child === null || !this.running()) return;
    child.kill(signal);
    if (!(await waitForExit([child.pid!], 30_000))) {
      child.kill('SIGKILL');
      await waitForExit([child.pid!], 30_000);
    }
    this.child = null;
  }

  /** SIGHUP: the agent re-reads its config and its writer. */
  reload(): void {
    if (this.running()) this.child!.kill('SIGHUP');
  }

  /** SIGKILL now, without waiting (cleanup). */
  kill(): void {
    if (this.running()) this.child!.kill('SIGKILL');
  }
}

/** Where an AgentDaemon writes its agent's log. */
export function agentLogPath(spec: Pick<LoadWorkerSpec, 'bufferPath' | 'workerId'>): string {
  return path.join(path.dirname(spec.bufferPath), `${spec.workerId}.agent.log`);
}

function stopAppender(child: ChildProcess, syncTimeoutMs: number): Promise<{ pendingRows: number; lastSyncError: string | null }> {
  return new Promise((resolve, reject) => {
    child.on('message', (message: LoadWorkerMessage) => {
      if (message.type === 'stopped') resolve({ pendingRows: message.pendingRows, lastSyncError: message.lastSyncError });
    });
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`a worker exited with code ${code} while stopping`))));
    const command: LoadWorkerCommand = { type: 'stop', syncTimeoutMs };
    child.send(command);
  });
}

/**
 * Writes the agent config of one load worker and returns its spec: the drill's rows (id, worker, seq,
 * payload) into `table`, syncing and backing off fast (the drill measures in tens of milliseconds).
 */
export function writeLoadWorkerConfig(o: {
  workDir: string;
  workerId: string;
  writerFile: string;
  table: string;
  stream: string;
  ratePerSecond: number;
  batchSize: number;
  syncInProcess?: boolean;
  writerFollow?: WriterFollow;
}): LoadWorkerSpec {
  const configPath = path.join(o.workDir, `${o.workerId}.agent.json`);
  const config = {
    writerFile: o.writerFile,
    writerFileFollow: o.writerFollow === 'session' ? 'reconnect' : 'watch',
    workerId: o.workerId,
    streams: { [o.stream]: { table: o.table, key: ['id'], columns: ['id', 'worker', 'seq', 'payload'] } },
    batchSize: o.batchSize,
    pollIntervalMs: 20,
    connectTimeoutMs: 1000,
    // Following the writer as on AWS, a statement waits as long as the agent's default lets it (a stalled host holds it).
    queryTimeoutMs: o.writerFollow === 'session' ? 60_000 : 5000,
    backoff: { initialMs: 20, maxMs: 250 },
    retention: { minReplicas: 1 },
    // A drain against a writer that died gives up within the drill's runbook drain timeout (DRILL_DRAIN_TIMEOUT_MS).
    drain: { timeoutSeconds: 20 },
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return {
    workerId: o.workerId,
    bufferPath: path.join(o.workDir, `${o.workerId}.outbox.sqlite`),
    configPath,
    stream: o.stream,
    ratePerSecond: o.ratePerSecond,
    ...(o.syncInProcess === false ? { syncInProcess: false } : {}),
  };
}
