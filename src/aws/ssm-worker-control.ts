/**
 * WorkerControl over SSM Run Command: the workers are the SSM-managed instances carrying the cluster's tag and the
 * worker role tag (rds-failover:role=worker); a
 * drain is the stack's drain document (lib/drain-document.ts: the agent's `drain --json` with fixed paths)
 * run on one instance with the fork point or window as its only parameters; its result is the JSON summary
 * the agent prints, read back with GetCommandInvocation.
 */
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { drainParameters } from '../core/drain-parameters.js';
import { ResourceTag, WORKER_ROLE } from '../core/resource-tags.js';
import { classifyError, RunbookTransientError } from '../core/runbook/errors.js';
import { parseDrainSummary } from '../core/drain-summary.js';
import type { DrainRequest, DrainStatus, WorkerControl, WorkerRef } from '../ports/worker-control.js';

export interface SsmWorkerControlOptions {
  readonly ssm: SSMClient;
  readonly tagKey: string;
  readonly tagValue: string;
  /** The drain document's name (drainDocumentName(clusterId), also the stack output DrainDocumentName). */
  readonly documentName: string;
  /** Where command output goes besides the 24 kB inline copy (CloudWatch Logs group). @default none */
  readonly outputLogGroupName?: string;
}

export class SsmWorkerControl implements WorkerControl {
  constructor(private readonly o: SsmWorkerControlOptions) {
    if (!o.tagKey || !o.tagValue) throw new Error('SsmWorkerControl: tagKey and tagValue are required (the tag that marks worker instances)');
    if (!o.documentName) throw new Error('SsmWorkerControl: documentName is required (the stack\'s drain document, output DrainDocumentName)');
  }

  async listWorkers(): Promise<readonly WorkerRef[]> {
    const workers: WorkerRef[] = [];
    let NextToken: string | undefined;
    do {
      const out = await this.o.ssm.send(
        new DescribeInstanceInformationCommand({ Filters: workerFilters(this.o.tagKey, this.o.tagValue), MaxResults: 50, NextToken }),
      );
      for (const info of out.InstanceInformationList ?? []) if (info.InstanceId) workers.push({ id: info.InstanceId });
      NextToken = out.NextToken;
    } while (NextToken);
    return workers.sort((a, b) => a.id.localeCompare(b.id));
  }

  async startDrain(workerId: string, request: DrainRequest): Promise<string> {
    if (!/^(i|mi)-[0-9a-f]+$/.test(workerId)) throw new Error(`startDrain: '${workerId}' is not an instance id (i-...)`);
    const out = await this.o.ssm.send(
      new SendCommandCommand({
        InstanceIds: [workerId],
        DocumentName: this.o.documentName,
        DocumentVersion: '$LATEST', // what the last deploy wrote, whichever version is the default
        Comment: 'rds-failover: drain the write buffer after failover',
        TimeoutSeconds: 60,
        Parameters: drainParameters(request),
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
      // Right after SendCommand the invocation may not be visible yet; a throttled or failed status call says nothing
      // about the command (the runbook would count it as a failed drain and send the command again).
      if ((error as Error).name === 'InvocationDoesNotExist' || classifyError(error) instanceof RunbookTransientError) return { state: 'pending' };
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

/**
 * Instances carrying the cluster's tag AND the worker role tag (every taggable resource of the stack carries the
 * cluster tag; the drain role's SendCommand requires both). Filters of different keys are ANDed by SSM.
 */
function workerFilters(tagKey: string, tagValue: string): { Key: string; Values: string[] }[] {
  const tags = new Map([[tagKey, tagValue], [ResourceTag.Role, WORKER_ROLE]]);
  return [...tags].map(([key, value]) => ({ Key: `tag:${key}`, Values: [value] }));
}

function tail(text: string | undefined): string {
  const t = (text ?? '').trim();
  return t.length > 500 ? `...${t.slice(-500)}` : t;
}
