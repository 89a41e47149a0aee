/**
 * WorkerControl over SSM Run Command: the workers are the SSM-managed instances carrying the cluster's tag and the
 * worker role tag (rds-failover:role=worker); a
 * drain is the stack's drain document (lib/drain-document.ts: the agent's `drain --json` with fixed paths)
 * run on one instance with the promotion's epoch as its only parameter; its result is the JSON summary
 * the agent prints, read back with GetCommandInvocation.
 *
 * An instance SSM does not report Online (PingStatus ConnectionLost: its SSM Agent stopped answering) is not sent
 * the command: SSM would accept it and hold it Pending until its total timeout (TimeoutSeconds + the document's
 * execution timeout) and then report it TimedOut / DeliveryTimedOut, never run — minutes per attempt for nothing.
 * startDrain fails at once instead, naming the instance and its PingStatus; the runbook reports that drain failed
 * and verify waits for the worker's own confirmation (its agent re-sends by itself when it reconnects).
 *
 * This fail-fast covers only instances SSM already reports not Online. SSM notices a lost instance minutes late (its
 * agent checks in about every 5 minutes; amazon-ssm-agent#210): a drain sent to an instance cut off just before is
 * accepted, waits Pending its whole total timeout (DRAIN_DELIVERY_TIMEOUT_SECONDS + the document's execution timeout)
 * and ends DeliveryTimedOut; only the restarted drain, which asks SSM again, fails at once (lib/runbook.ts requires
 * the drain stage's limit to outlast that first attempt).
 */
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { DRAIN_DELIVERY_TIMEOUT_SECONDS, drainParameters } from '../core/drain-parameters.js';
import { ResourceTag, WORKER_ROLE } from '../core/resource-tags.js';
import { classifyError, RunbookStepError, RunbookTransientError } from '../core/runbook/errors.js';
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
  /**
   * startDrain trusts the PingStatus listWorkers saw for this long; older (a restarted drain), it asks SSM again for
   * that instance. @default 30000
   */
  readonly pingStatusMaxAgeMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
}

/** What DescribeInstanceInformation last said of an instance, and when we asked. */
interface Sighting {
  /** Online, ConnectionLost, ...; NotListed: asked about this instance, SSM did not list it; undefined: not said. */
  readonly pingStatus?: string;
  readonly lastPing?: Date;
  /** NotListed because SSM answered InvalidInstanceId (its message). */
  readonly invalid?: string;
  readonly at: number;
}

export class SsmWorkerControl implements WorkerControl {
  private readonly seen = new Map<string, Sighting>();
  private readonly now: () => number;

  constructor(private readonly o: SsmWorkerControlOptions) {
    this.now = o.now ?? Date.now;
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
      for (const info of out.InstanceInformationList ?? []) {
        if (!info.InstanceId) continue;
        workers.push({ id: info.InstanceId });
        this.seen.set(info.InstanceId, { pingStatus: info.PingStatus, lastPing: info.LastPingDateTime, at: this.now() });
      }
      NextToken = out.NextToken;
    } while (NextToken);
    return workers.sort((a, b) => a.id.localeCompare(b.id));
  }

  async startDrain(workerId: string, request: DrainRequest): Promise<string> {
    if (!/^(i|mi)-[0-9a-f]+$/.test(workerId)) throw new Error(`startDrain: '${workerId}' is not an instance id (i-...)`);
    const parameters = drainParameters(request);
    const sighting = await this.sighting(workerId);
    if (sighting?.pingStatus !== undefined && sighting.pingStatus !== 'Online') {
      // The drain step (steps/drain.ts start()) counts any error here as one failed attempt on this worker, whatever
      // its class: restarted up to drainAttempts, then reported, and verify waits for its confirmation. The class is for
      // other callers (the CLI's drain): a step failure, not worth retrying at once as RunbookTransient would say.
      throw new RunbookStepError(
        sighting.invalid !== undefined
          ? `SSM does not manage ${workerId} (DescribeInstanceInformation: InvalidInstanceId, ${sighting.invalid}; stopped, terminated, deregistered or not in this account): a drain command cannot reach it, so none was sent`
          : sighting.pingStatus === 'NotListed'
          ? `SSM no longer lists ${workerId} (stopped, terminated or deregistered): a drain command cannot reach it, so none was sent`
          : `SSM reports ${workerId} PingStatus ${sighting.pingStatus}${sighting.lastPing ? ` (last ping ${sighting.lastPing.toISOString()})` : ''}: ` +
              'a drain command would wait out its delivery timeout undelivered, so none was sent',
      );
    }
    const out = await this.o.ssm.send(
      new SendCommandCommand({
        InstanceIds: [workerId],
        DocumentName: this.o.documentName,
        DocumentVersion: '$LATEST', // what the last deploy wrote, whichever version is the default
        Comment: 'rds-failover: drain the write buffer after failover',
        TimeoutSeconds: DRAIN_DELIVERY_TIMEOUT_SECONDS,
        Parameters: parameters,
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
        // A restart asks SSM again whether the instance is Online before sending anything.
        this.seen.delete(workerId);
        return { state: 'failed', error: failureMessage(workerId, out) };
    }
  }

  /** The instance's PingStatus: the listing's if fresh, else asked again (NotListed: SSM no longer lists it). */
  private async sighting(workerId: string): Promise<Sighting | undefined> {
    const last = this.seen.get(workerId);
    if (last && this.now() - last.at <= (this.o.pingStatusMaxAgeMs ?? 30_000)) return last;
    let out;
    try {
      out = await this.o.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [workerId] }] }));
    } catch (error) {
      const e = error as Error;
      // SSM does not manage this instance (any more): as not listed.
      if (e.name === 'InvalidInstanceId') return this.remember(workerId, { pingStatus: 'NotListed', invalid: e.message || 'no message', at: this.now() });
      // Throttled or unanswered: nothing said about the instance; send, and let SSM's own statuses tell.
      if (classifyError(error) instanceof RunbookTransientError) return undefined;
      // Anything else (AccessDenied...) fails this worker's drain with AWS's words.
      throw new RunbookStepError(`could not ask SSM whether ${workerId} is Online (DescribeInstanceInformation ${e.name}: ${e.message}), so no drain was sent`);
    }
    const info = (out?.InstanceInformationList ?? []).find((i) => i.InstanceId === workerId);
    return this.remember(workerId, info ? { pingStatus: info.PingStatus, lastPing: info.LastPingDateTime, at: this.now() } : { pingStatus: 'NotListed', at: this.now() });
  }

  private remember(workerId: string, sighting: Sighting): Sighting {
    this.seen.set(workerId, sighting);
    return sighting;
  }
}

/** A terminal status other than Success, said plainly (which timeout, whether the command ever ran). */
function failureMessage(workerId: string, out: { Status?: string; StatusDetails?: string; ResponseCode?: number; StandardErrorContent?: string; StandardOutputContent?: string }): string {
  const status = `${out.Status ?? 'unknown'}, ${out.StatusDetails ?? 'no detail'}`;
  const output = tail(out.StandardErrorContent) || tail(out.StandardOutputContent);
  switch (out.StatusDetails) {
    case 'DeliveryTimedOut':
      return `drain on ${workerId} was never delivered (${status}): the instance's SSM Agent did not take the command before its timeout (the instance is offline or cannot reach SSM); it did not run`;
    case 'Undeliverable':
      return `drain on ${workerId} could not be delivered (${status}): SSM says the instance may not exist or is not responding; it did not run`;
    case 'ExecutionTimedOut':
      return `drain on ${workerId} ran past the document's execution timeout and was stopped (${status}, exit ${out.ResponseCode ?? '?'})${output ? `: ${output}` : ''}`;
    default:
      return `drain on ${workerId} ${out.Status ?? 'unknown'} (${out.StatusDetails ?? 'no detail'}, exit ${out.ResponseCode ?? '?'}): ${output}`;
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
