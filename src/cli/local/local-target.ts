/**
 * The local side of a command: the cluster `npm run cluster -- up` left running (re-opened from its state
 * directory) and the local workers given as buffer files with their agent config.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, parseConfig, type AgentConfig } from '../../agent/config.js';
import { WriteBuffer } from '../../agent/write-buffer.js';
import type { BufferStatus } from '../../agent/status.js';
import { LocalCluster } from '../../local/local-cluster.js';
import type { LocalWorker } from '../../local/local-worker-control.js';
import { CliError, ExitCode } from '../options.js';

export const DEFAULT_LOCAL_DIR = '.local-cluster';

export interface OpenedLocalCluster {
  readonly dir: string;
  readonly cluster: LocalCluster;
  /** Where the local runbook keeps its lock and journal: next to the cluster, so every command shares them. */
  readonly controllerDir: string;
}

export function localClusterDir(flag: string | true, cwd: string): string {
  return path.resolve(cwd, flag === true ? DEFAULT_LOCAL_DIR : flag);
}

export function openLocalCluster(flag: string | true, cwd: string, options: { requireRunning?: boolean } = {}): OpenedLocalCluster {
  const dir = localClusterDir(flag, cwd);
  if (!existsSync(path.join(dir, 'state.json'))) {
    throw new CliError(`--local: no local cluster in ${dir} (no state.json): start one with \`npm run cluster -- up\` or pass its directory`, ExitCode.Usage);
  }
  const cluster = LocalCluster.attach(dir);
  if ((options.requireRunning ?? true) && cluster.nodes().every((n) => n.pid === null)) {
    throw new CliError(`--local: the cluster in ${dir} is not running (no node process alive): \`npm run cluster -- down\` then \`up\``, ExitCode.Failed);
  }
  return { dir, cluster, controllerDir: path.join(dir, 'controller') };
}

/** A local worker as given on the command line; the agent config is optional for read-only commands. */
export interface LocalWorkerSpec {
  readonly id: string;
  readonly bufferPath: string;
  readonly configPath?: string;
}

export function localWorkers(buffers: readonly string[] | undefined, agentConfigs: readonly string[] | undefined, cwd: string): LocalWorkerSpec[] {
  const files = (buffers ?? []).map((b) => path.resolve(cwd, b));
  const configs = (agentConfigs ?? []).map((c) => path.resolve(cwd, c));
  if (configs.length > 0 && files.length === 0) throw new CliError('--agent-config needs --buffer <files...>: the buffers the config belongs to');
  if (configs.length > 1 && configs.length !== files.length) {
    throw new CliError(`--agent-config: give one config for all buffers or one per buffer; got ${configs.length} configs for ${files.length} buffers`);
  }
  for (const file of [...files, ...configs]) {
    if (!existsSync(file)) throw new CliError(`${files.includes(file) ? '--buffer' : '--agent-config'}: ${file} does not exist`);
  }
  const workers = files.map((bufferPath, i) => ({
    id: workerIdOf(bufferPath),
    bufferPath,
    ...(configs.length > 0 ? { configPath: configs.length === 1 ? configs[0]! : configs[i]! } : {}),
  }));
  const ids = workers.map((w) => w.id);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup !== undefined) throw new CliError(`--buffer: two buffers give the worker id '${dup}' (file name without extension); rename one`);
  return workers;
}

/** Drains need the agent config (streams, writer): refuse before anything starts when it is missing. */
export function requireAgentConfig(workers: readonly LocalWorkerSpec[], command: string): LocalWorker[] {
  return workers.map((w) => {
    if (!w.configPath) throw new CliError(`${command} --local: --agent-config <file> is required with --buffer (the drain needs the agent's streams and writer)`);
    return { id: w.id, bufferPath: w.bufferPath, configPath: w.configPath };
  });
}

/** 'w1.outbox.sqlite' -> 'w1': the id the worker's files are named after. */
function workerIdOf(file: string): string {
  return path.basename(file).replace(/(\.outbox)?(\.sqlite3?|\.db)?$/, '');
}

/** The agent's own status of one buffer (reads the SQLite file only; never syncs). */
export async function readBufferStatus(worker: LocalWorkerSpec, cwd: string): Promise<BufferStatus> {
  const config: AgentConfig = worker.configPath ? loadConfig(worker.configPath) : parseConfig({}, cwd, { allowNoStreams: true });
  const buffer = WriteBuffer.open({ bufferPath: worker.bufferPath, config, mustExist: true });
  try {
    return buffer.status();
  } finally {
    await buffer.close();
  }
}
