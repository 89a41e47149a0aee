import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import type { Clock } from '../../ports/clock.js';
import type { Progress } from '../progress.js';

export interface RunbookInput {
  readonly mode: 'failover' | 'switchover';
  readonly candidate?: string;
  readonly force?: boolean;
  readonly dryRun?: boolean;
}

export interface ExecutionOutcome {
  readonly executionArn: string;
  readonly status: string;
  readonly consoleUrl: string;
  readonly output: unknown;
  readonly error?: string;
  readonly cause?: string;
}

export interface FollowOptions {
  readonly sfn: SFNClient;
  readonly stateMachineArn: string;
  readonly clusterId: string;
  readonly input: RunbookInput;
  readonly progress: Progress;
  readonly clock: Clock;
  /** @default 2000 */
  readonly pollMs?: number;
}

export function executionConsoleUrl(executionArn: string): string {
  const region = executionArn.split(':')[3] ?? 'us-east-1';
  return `https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}`;
}

/** Starts the runbook's Step Functions execution and renders its states live until it ends. */
export async function startAndFollowExecution(options: FollowOptions): Promise<ExecutionOutcome> {
  const { sfn, progress, clock } = options;
  // Dry runs are named apart so the console's execution list tells plans from real failovers.
  const kind = options.input.dryRun ? `${options.input.mode}-plan` : options.input.mode;
  const name = `${options.clusterId}-${kind}-${new Date(clock.now()).toISOString().replace(/[:.]/g, '-')}`.slice(0, 80);
  const started = await sfn.send(
    new StartExecutionCommand({ stateMachineArn: options.stateMachineArn, name, input: JSON.stringify(options.input) }),
  );
  const executionArn = started.executionArn;
  if (!executionArn) throw new Error('StartExecution returned no executionArn');
  progress.event('info', 'execution started', executionConsoleUrl(executionArn));
  return followExecution(sfn, executionArn, progress, clock, options.pollMs ?? 2000);
}

export async function followExecution(
  sfn: SFNClient,
  executionArn: string,
  progress: Progress,
  clock: Clock,
  pollMs: number,
): Promise<ExecutionOutcome> {
  let lastEventId = 0;
  for (;;) {
    lastEventId = await renderNewEvents(sfn, executionArn, lastEventId, progress);
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status && execution.status !== 'RUNNING' && execution.status !== 'PENDING_REDRIVE') {
      await renderNewEvents(sfn, executionArn, lastEventId, progress);
      return {
        executionArn,
        status: execution.status,
        consoleUrl: executionConsoleUrl(executionArn),
        output: execution.output ? (JSON.parse(execution.output) as unknown) : null,
        error: execution.error,
        cause: execution.cause,
      };
    }
    await clock.sleep(pollMs);
  }
}

async function renderNewEvents(sfn: SFNClient, executionArn: string, after: number, progress: Progress): Promise<number> {
  let last = after;
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, nextToken, maxResults: 100 }));
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= last) continue;
      last = event.id ?? last;
      renderEvent(event, progress);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return last;
}

function renderEvent(event: HistoryEvent, progress: Progress): void {
  const type = event.type ?? '';
  if (type.endsWith('StateEntered') && event.stateEnteredEventDetails?.name) {
    progress.event('start', event.stateEnteredEventDetails.name);
  } else if (type.endsWith('StateExited') && event.stateExitedEventDetails?.name) {
    progress.event('done', event.stateExitedEventDetails.name);
  } else if (type === 'TaskFailed' || type === 'LambdaFunctionFailed') {
    const details = event.taskFailedEventDetails ?? event.lambdaFunctionFailedEventDetails;
    progress.event('failed', 'task', [details?.error, details?.cause].filter(Boolean).join(': '));
  } else if (type === 'ExecutionFailed' || type === 'ExecutionAborted' || type === 'ExecutionTimedOut') {
    const details = event.executionFailedEventDetails ?? event.executionAbortedEventDetails ?? event.executionTimedOutEventDetails;
    progress.event('failed', 'execution', [details?.error, details?.cause].filter(Boolean).join(': '));
  }
}
