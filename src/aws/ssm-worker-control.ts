/**
 * WorkerControl over SSM Run Command: the workers are the SSM-managed instances carrying the worker tag;
 * a drain is `AWS-RunShellScript` running the agent's `drain --json` on one instance; its result is the JSON
 * summary the agent prints, read back with GetCommandInvocation.
 */
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { isLsn } from '../core/lsn.js';
import type { DrainRequest, DrainStatus, DrainSummary, WorkerControl, WorkerRef } from '../ports/worker-control.js';

export interface SsmWorkerControlOptions {
  readonly ssm: SSMClient;
  readonly tagKey: string;
  readonly tagValue: string;
  /** Path of the agent's CLI on the workers. @default /usr/local/bin/rds-failover-agent */
  readonly agentCommand?: string;
  /** The buffer file on the worker's data volume. */
  readonly bufferPath: string;
  /** The agent's config file (streams, writer endpoint). @default none */
  readonly configPath?: string;
  /** Run Command execution timeout for one drain. @default 600 */
  readonly executionTimeoutSeconds?: number;
  /** Where command output goes besides the 24 kB inline copy (CloudWatch Logs group). @default none */
  readonly outputLogGroupName?: string;
  /**
   * The agent daemon's systemd unit: sent SIGHUP before the drain, so its sync loop drops its connection and
   * resolves the (repointed) writer again instead of waiting for an error. @default rds-failover-agent.service
   */
  readonly daemonUnit?: string;
}

const DEFAULT_DAEMON_UNIT = 'rds-failover-agent.service';

const SAFE_PATH = /^\/[A-Za-z0-9._\/-]+$/;

export class SsmWorkerControl implements WorkerControl {
  constructor(private readonly o: SsmWorkerControlOptions) {
    for (const [field, value] of [['agentCommand', o.agentCommand], ['bufferPath', o.bufferPath], ['configPath', o.configPath]] as const) {
      if (value !== undefined && !SAFE_PATH.test(value)) {
        throw new Error(`SsmWorkerControl: ${field} '${value}' must be an absolute path of letters, digits, '.', '_', '-', '/'`);
      }
    }
    if (!o.tagKey || !o.tagValue) throw new Error('SsmWorkerControl: tagKey and tagValue are required (the tag that marks worker instances)');
  }

  async listWorkers(): Promise<readonly WorkerRef[]> {
    const workers: WorkerRef[] = [];
    let NextToken: string | undefined;
    do {
      const out = await this.o.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: `tag:${this.o.tagKey}`, Values: [this.o.tagValue] }], MaxResults: 50, NextToken }),
      );
      for (const info of out.InstanceInformationList ?? []) if (info.InstanceId) workers.push({ id: info.InstanceId });
      NextToken = out.NextToken;
    } while (NextToken);
    return workers.sort((a, b) => a.id.localeCompare(b.id));
  }

  async startDrain(workerId: string, request: DrainRequest): Promise<string> {
    if (!/^(i|mi)-[0-9a-f]+$/.test(workerId)) throw new Error(`startDrain: '${workerId}' is not an instance id (i-...)`);
    const timeout = this.o.executionTimeoutSeconds ?? 600;
    const out = await this.o.ssm.send(
      new SendCommandCommand({
        InstanceIds: [workerId],
        DocumentName: 'AWS-RunShellScript',
        Comment: 'rds-failover: drain the write buffer after failover',
        TimeoutSeconds: 60,
        Parameters: { commands: [reconnectCommand(this.o.daemonUnit ?? DEFAULT_DAEMON_UNIT), drainCommand(this.o, request)], executionTimeout: [String(timeout)] },
        ...(this.o.outputLogGroupName ? { CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: this.o.outputLogGroupName } } : {}),
      }),
    );
    const id = out.Command?.CommandId;
    if (!id) throw new Error(`SendCommand to ${workerId} returned no command id`);
    return id;
  }

  async drainStatus(workerId: string, handle: string): Promise<DrainStatus> {
    let out;
    try {
      out = await this.o.ssm.send(new GetCommandInvocationCommand({ CommandId: handle, InstanceId: workerId }));
    } catch (error) {
      // Right after SendCommand the invocation may not be visible yet.
      if ((error as Error).name === 'InvocationDoesNotExist') return { state: 'pending' };
      throw error;
    }
    switch (out.Status) {
      case 'Pending':
      case 'InProgress':
      case 'Delayed':
        return { state: 'pending' };
      case 'Success': {
        const summary = parseDrainSummary(out.StandardOutputContent ?? '');
        return summary ? { state: 'done', summary } : { state: 'failed', error: `drain on ${workerId} succeeded but printed no JSON summary: ${tail(out.StandardOutputContent)}` };
      }
      default:
        return {
          state: 'failed',
          error: `drain on ${workerId} ${out.Status ?? 'unknown'} (${out.StatusDetails ?? 'no detail'}, exit ${out.ResponseCode ?? '?'}): ${tail(out.StandardErrorContent) || tail(out.StandardOutputContent)}`,
        };
    }
  }
}

/** The shell line Run Command executes; every interpolated value is validated first (no injection). */
/** Tells the daemon to reconnect now; a worker without the daemon running still drains. */
export function reconnectCommand(unit: string): string {
  if (!/^[A-Za-z0-9@._-]+\.service$/.test(unit)) throw new Error(`daemonUnit '${unit}' must be a systemd service name like rds-failover-agent.service`);
  return `systemctl kill --signal=HUP ${unit} 2>/dev/null || true`;
}

export function drainCommand(o: Pick<SsmWorkerControlOptions, 'agentCommand' | 'bufferPath' | 'configPath'>, request: DrainRequest): string {
  const parts = [o.agentCommand ?? '/usr/local/bin/rds-failover-agent', 'drain', '--json', '--buffer', o.bufferPath];
  if (o.configPath) parts.push('--config', o.configPath);
  if (request.forkPoint) {
    const { timelineId, lsn } = request.forkPoint;
    if (!Number.isInteger(timelineId) || timelineId < 1) throw new Error(`drain: fork timeline must be an integer >= 1, got ${timelineId}`);
    if (!isLsn(lsn)) throw new Error(`drain: fork LSN must look like 0/3000060, got '${lsn}'`);
    parts.push('--fork-timeline', String(timelineId), '--fork-lsn', lsn);
  } else {
    const seconds = request.windowSeconds;
    if (!Number.isInteger(seconds) || seconds <= 0) throw new Error(`drain: window must be a positive whole number of seconds, got ${seconds}`);
    parts.push('--window', `${seconds}s`);
  }
  return parts.join(' ');
}

/** The last line of stdout that is a JSON drain summary (the agent may log before it). */
export function parseDrainSummary(stdout: string): DrainSummary | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const v = value as Record<string, unknown>;
    const fields = ['examined', 'resent', 'inserted', 'alreadyPresent', 'remainingPending'] as const;
    if (v && typeof v === 'object' && fields.every((f) => typeof v[f] === 'number')) {
      return Object.fromEntries(fields.map((f) => [f, v[f] as number])) as unknown as DrainSummary;
    }
  }
  return undefined;
}

function tail(text: string | undefined): string {
  const t = (text ?? '').trim();
  return t.length > 500 ? `...${t.slice(-500)}` : t;
}
