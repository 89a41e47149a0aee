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
  const renderer = new HistoryRenderer(progress);
  let lastEventId = 0;
  for (;;) {
    lastEventId = renderer.render(await newEvents(sfn, executionArn, lastEventId), lastEventId);
    const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    if (execution.status && execution.status !== 'RUNNING' && execution.status !== 'PENDING_REDRIVE') {
      renderer.render(await newEvents(sfn, executionArn, lastEventId), lastEventId);
      renderer.flush();
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

/**
 * The events after `after`, oldest first. Read newest first and stop at the first one already seen: a runbook
 * polling RDS for an hour has thousands of events, and re-reading them all every poll would hit the
 * GetExecutionHistory quota. Execution data (the state) is left out: the outcome comes from DescribeExecution.
 */
async function newEvents(sfn: SFNClient, executionArn: string, after: number): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 100, includeExecutionData: false, nextToken }));
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= after) return fresh.reverse();
      fresh.push(event);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return fresh.reverse();
}

/**
 * Task states as progress steps. A poll loop (Task -> Choice -> Wait -> the same Task) shows as one step with its
 * poll count: a state's exit is held back until a different task starts or the execution ends.
 */
class HistoryRenderer {
  private current: { name: string; polls: number; exited: boolean } | null = null;

  constructor(private readonly progress: Progress) {}

  /** Renders events in order; returns the highest event id seen. */
  render(events: readonly HistoryEvent[], after: number): number {
    let last = after;
    for (const event of events) {
      last = Math.max(last, event.id ?? last);
      this.renderEvent(event);
    }
    return last;
  }

  /** The execution ended: the last task's exit is final. */
  flush(): void {
    if (this.current?.exited) this.progress.event('done', this.current.name, this.polls());
    this.current = null;
  }

  private renderEvent(event: HistoryEvent): void {
    const type = event.type ?? '';
    if (type === 'TaskStateEntered' && event.stateEnteredEventDetails?.name) {
      const name = event.stateEnteredEventDetails.name;
      if (this.current?.name === name) {
        this.current = { name, polls: this.current.polls + 1, exited: false };
        return;
      }
      this.flush();
      this.current = { name, polls: 1, exited: false };
      this.progress.event('start', name);
    } else if (type === 'TaskStateExited' && event.stateExitedEventDetails?.name === this.current?.name) {
      this.current!.exited = true;
    } else if (type === 'TaskFailed' || type === 'LambdaFunctionFailed' || type === 'TaskTimedOut') {
      // Retry may run it again, or Catch may take the failure path: say it happened, the next events tell which.
      const details = event.taskFailedEventDetails ?? event.lambdaFunctionFailedEventDetails ?? event.taskTimedOutEventDetails;
      this.progress.event('info', this.current?.name ?? 'task', `attempt failed: ${[details?.error, details?.cause].filter(Boolean).join(': ')}`);
    } else if (type === 'ExecutionFailed' || type === 'ExecutionAborted' || type === 'ExecutionTimedOut') {
      this.flush();
      const details = event.executionFailedEventDetails ?? event.executionAbortedEventDetails ?? event.executionTimedOutEventDetails;
      this.progress.event('failed', 'execution', [details?.error, details?.cause].filter(Boolean).join(': '));
    }
  }

  private polls(): string | undefined {
    return this.current && this.current.polls > 1 ? `${this.current.polls} polls` : undefined;
  }
}
