/**
 * Running the runbook in AWS from the CLI: check the candidate against the live topology before anything starts,
 * then start the Step Functions execution and follow it (src/cli/aws/follow-execution.ts).
 */
import { GetParameterCommand } from '@aws-sdk/client-ssm';
import type { RunbookInput } from '../../core/runbook/state.js';
import type { Clock } from '../../ports/clock.js';
import { CliError, ExitCode } from '../options.js';
import type { Progress } from '../progress.js';
import type { AwsTarget } from './aws-target.js';
import { readTopologyDocument } from './aws-topology.js';
import { startAndFollowExecution, type ExecutionOutcome } from './follow-execution.js';

/**
 * An instance id that is not in the topology, or is the writer, is a usage error. When the topology cannot be
 * read (no ssm:GetParameter for this operator) the check is skipped with a warning: the runbook checks again.
 */
export async function checkAwsCandidate(target: AwsTarget, candidate: string | undefined, warn: (line: string) => void): Promise<void> {
  if (candidate === undefined) return;
  let ids: string[];
  let writerId: string;
  try {
    const [topologyName, writerName] = await Promise.all([target.topologyParameterName(), target.writerParameterName()]);
    const doc = await readTopologyDocument(target.ssm(), topologyName);
    const writer = await target.ssm().send(new GetParameterCommand({ Name: writerName }));
    ids = doc.nodes.map((n) => n.instanceId);
    writerId = writer.Parameter?.Value ?? '';
  } catch (error) {
    if (error instanceof CliError) throw error;
    warn(`could not read the topology to check --candidate (${(error as Error).message}); the runbook checks it`);
    return;
  }
  if (!ids.includes(candidate)) throw new CliError(`--candidate: '${candidate}' is not a DB instance of the topology (instances: ${ids.join(', ')})`, ExitCode.Usage);
  if (candidate === writerId) throw new CliError(`--candidate: '${candidate}' is the writer already; choose one of the replicas (${ids.filter((i) => i !== writerId).join(', ')})`);
}

export interface AwsRunbookOptions {
  readonly target: AwsTarget;
  readonly input: RunbookInput;
  readonly progress: Progress;
  readonly clock: Clock;
  readonly pollMs: number;
}

export async function runAwsRunbook(options: AwsRunbookOptions): Promise<ExecutionOutcome & { readonly clusterId: string }> {
  const [clusterId, stateMachineArn] = await Promise.all([options.target.clusterId(), options.target.stateMachineArn()]);
  const outcome = await startAndFollowExecution({
    sfn: options.target.sfn(),
    stateMachineArn,
    clusterId,
    input: options.input,
    progress: options.progress,
    clock: options.clock,
    pollMs: options.pollMs,
  });
  return { ...outcome, clusterId };
}
