import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { parseDrainSummary } from '../core/drain-summary.js';
import type { DrainRequest, DrainStatus, WorkerControl, WorkerRef } from '../ports/worker-control.js';

export interface LocalWorker {
  readonly id: string;
  readonly bufferPath: string;
  readonly configPath: string;
  /**
   * Whether the worker (its agent) is up. When it says no, a drain is not delivered, as SSM does not run a command
   * on an instance that is not online: the worker's rows must then come back through its own agent. @default always up
   */
  readonly isUp?: () => boolean;
}

export interface LocalWorkerControlOptions {
  /** The command that runs the agent CLI. @default node --import tsx bin/rds-failover-agent.ts (from the repo root) */
  readonly agentCommand?: readonly string[];
  /** Working directory of the agent processes. @default the repository root */
  readonly cwd?: string;
  /** Kill a drain that runs longer than this and report it failed. @default 10 minutes */
  readonly timeoutMs?: number;
}

interface DrainJob {
  readonly workerId: string;
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  status: DrainStatus;
}

const REPO_ROOT = path.join(__dirname, '..', '..');
const DEFAULT_AGENT = [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'bin', 'rds-failover-agent.ts')];

/**
 * WorkerControl for workers on this machine: each drain runs the agent CLI (`drain --json`), the same
 * command SSM runs on an EC2 worker, so the local path proves the CLI contract. The handle is a job id.
 */
export class LocalWorkerControl implements WorkerControl {
  private readonly jobs = new Map<string, DrainJob>();
  private nextJob = 1;

  constructor(
    private readonly workers: readonly LocalWorker[],
    private readonly options: LocalWorkerControlOptions = {},
  ) {
    const ids = workers.map((w) => w.id);
    const dup = ids.find((id, i) => ids.indexOf(id) !== i);
    if (dup !== undefined) throw new Error(`workers: id '${dup}' is listed twice`);
  }

  async listWorkers(): Promise<readonly WorkerRef[]> {
    return this.workers.map((w) => ({ id: w.id }));
  }

  async startDrain(workerId: string, request: DrainRequest): Promise<string> {
    const worker = this.workers.find((w) => w.id === workerId);
    if (worker === undefined) throw new Error(`unknown worker '${workerId}': known workers are ${this.workers.map((w) => w.id).join(', ')}`);
    if (worker.isUp?.() === false) throw new Error(`worker ${workerId} is down: the drain cannot be delivered (its agent re-sends by itself when it is back)`);
    const [command, ...baseArgs] = this.options.agentCommand ?? DEFAULT_AGENT;
    // The worker's id here is the one its confirmation must carry (one agent config may serve several local buffers).
    const args = [...baseArgs, 'drain', '--json', '--buffer', worker.bufferPath, '--config', worker.configPath, '--worker-id', worker.id, ...drainArgs(request)];
    const child = spawn(command!, args, { cwd: this.options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const handle = `drain-${this.nextJob++}-${workerId}`;
    const job: DrainJob = { workerId, child, stdout: '', stderr: '', status: { state: 'pending' } };
    this.jobs.set(handle, job);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (job.stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (job.stderr += s));
    const timer = setTimeout(() => {
      job.status = { state: 'failed', error: `drain on ${workerId} still running after ${this.options.timeoutMs ?? 600_000} ms: killed` };
      child.kill('SIGKILL');
    }, this.options.timeoutMs ?? 600_000);
    timer.unref();
    child.on('error', (error) => {
      clearTimeout(timer);
      job.status = { state: 'failed', error: `could not run the agent: ${error.message}` };
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (job.status.state !== 'pending') return;
      job.status = code === 0 ? parseSummary(job.stdout) : { state: 'failed', error: failureText(job.stderr, code, signal) };
    });
    return handle;
  }

  async drainStatus(workerId: string, handle: string): Promise<DrainStatus> {
    const job = this.jobs.get(handle);
    if (job === undefined || job.workerId !== workerId) throw new Error(`no drain '${handle}' was started on worker '${workerId}'`);
    return job.status;
  }

  /** Kills drains still running (test and drill clean-up). */
  stopAll(): void {
    for (const job of this.jobs.values()) if (job.status.state === 'pending') job.child.kill('SIGKILL');
  }
}

function drainArgs(request: DrainRequest): string[] {
  return request.epochId === undefined ? [] : ['--epoch', request.epochId];
}

function parseSummary(stdout: string): DrainStatus {
  const summary = parseDrainSummary(stdout);
  if (summary !== undefined) return { state: 'done', summary };
  return { state: 'failed', error: `the agent exited 0 but printed no drain summary JSON: '${stdout.trim().split('\n').pop()?.slice(0, 200) ?? ''}'` };
}

function failureText(stderr: string, code: number | null, signal: NodeJS.Signals | null): string {
  const errorLine = stderr.split('\n').reverse().find((l) => l.startsWith('error:'));
  const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
  return errorLine !== undefined ? `${errorLine.slice('error: '.length)} (${how})` : `the agent failed (${how}): ${stderr.trim().slice(-500)}`;
}
