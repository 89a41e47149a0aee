/**
 * What the operator CLI talks to besides the data plane: CloudFormation (DescribeStacks: the template's outputs,
 * resolved as deployed) and Step Functions (StartExecution runs the template's state machine in the twin,
 * DescribeExecution and GetExecutionHistory report it as Step Functions does: status, output, error and cause, the
 * history events newest first when asked).
 */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import type { AwsTwin } from './aws-twin.js';
import type { DeployedTemplate } from './cfn-template.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { startTwinExecution, type TwinExecutionOptions } from './twin-state-machine.js';
import { awsError } from './twin-errors.js';

export class CloudFormationTwin implements ServiceTwin {
  readonly service = 'cloudformation';

  constructor(
    private readonly deployed: DeployedTemplate,
    private readonly stackName: string,
  ) {}

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      DescribeStacks: async (input: { StackName?: string }) => {
        if (input.StackName !== undefined && input.StackName !== this.stackName) throw awsError('ValidationError', `Stack with id ${input.StackName} does not exist`);
        const outputs = Object.entries(this.deployed.template.Outputs ?? {}).map(([key, o]) => ({ OutputKey: key, OutputValue: String(this.deployed.resolve(o.Value)) }));
        return { Stacks: [{ StackName: this.stackName, StackStatus: 'CREATE_COMPLETE', Outputs: outputs }] };
      },
    };
  }

  authorizations(operation: string): TwinAuthorization[] {
    return [{ action: `cloudformation:${operation}`, resource: '*' }];
  }
}

interface Run {
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';
  output?: string;
  error?: string;
  cause?: string;
  readonly events: HistoryEvent[];
  readonly done: Promise<void>;
}

export class StepFunctionsTwin implements ServiceTwin {
  readonly service = 'states';
  private readonly runs = new Map<string, Run>();

  constructor(
    private readonly twin: AwsTwin,
    private readonly options: TwinExecutionOptions = {},
  ) {}

  /** The most recent execution: its status and output (the final state; none when it failed). */
  lastExecution(): { status: string; output?: unknown } | undefined {
    const run = [...this.runs.values()].at(-1);
    return run ? { status: run.status, ...(run.output ? { output: JSON.parse(run.output) as unknown } : {}) } : undefined;
  }

  /** Waits for every execution to end. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.runs.values()].map((r) => r.done));
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      StartExecution: async (input: { stateMachineArn: string; name?: string; input?: string }) => {
        const machineId = this.twin.deployed.ofType('AWS::StepFunctions::StateMachine').find((id) => this.twin.deployed.ref(id) === input.stateMachineArn);
        if (!machineId) throw awsError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${input.stateMachineArn}'`);
        const name = input.name ?? `twin-${this.runs.size + 1}`;
        const executionArn = `${input.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
        if (this.runs.has(executionArn)) throw awsError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
        const events: HistoryEvent[] = [];
        const add = (e: Omit<HistoryEvent, 'id' | 'timestamp'>) => events.push({ ...e, id: events.length + 1, timestamp: new Date() } as HistoryEvent);
        add({ type: 'ExecutionStarted' });
        const execution = startTwinExecution(this.twin, JSON.parse(input.input ?? '{}'), name, {
          ...this.options,
          onEvent: (e) => {
            if (e.kind === 'entered') add({ type: `${e.stateType}StateEntered`, stateEnteredEventDetails: { name: e.name } } as never);
            else add({ type: `${e.stateType}StateExited`, stateExitedEventDetails: { name: e.name } } as never);
          },
        });
        const run: Run = {
          status: 'RUNNING',
          events,
          done: execution.result.then(
            (output) => {
              run.status = 'SUCCEEDED';
              run.output = JSON.stringify(output);
              add({ type: 'ExecutionSucceeded' });
            },
            (error: Error) => {
              const failure = failureOf(error);
              run.status = 'FAILED';
              run.error = failure.error;
              run.cause = failure.cause;
              add({ type: 'ExecutionFailed', executionFailedEventDetails: { error: failure.error, cause: failure.cause } } as never);
            },
          ),
        };
        this.runs.set(executionArn, run);
        return { executionArn, startDate: new Date() };
      },
      DescribeExecution: async (input: { executionArn: string }) => {
        const run = this.run(input.executionArn);
        return { executionArn: input.executionArn, status: run.status, ...(run.output ? { output: run.output } : {}), ...(run.error ? { error: run.error, cause: run.cause } : {}) };
      },
      GetExecutionHistory: async (input: { executionArn: string; reverseOrder?: boolean; maxResults?: number; nextToken?: string }) => {
        const run = this.run(input.executionArn);
        const ordered = input.reverseOrder ? [...run.events].reverse() : [...run.events];
        const start = input.nextToken ? Number(input.nextToken) : 0;
        const size = input.maxResults ?? 100;
        const page = ordered.slice(start, start + size);
        return { events: page, ...(start + size < ordered.length ? { nextToken: String(start + size) } : {}) };
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    return [{ action: `states:${operation}`, resource: input.stateMachineArn ?? input.executionArn ?? '*' }];
  }

  private run(executionArn: string): Run {
    const run = this.runs.get(executionArn);
    if (!run) throw awsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return run;
  }
}

/** Step Functions' error and cause of a failed execution (the Fail state's error and cause, or the uncaught error's). */
function failureOf(error: Error): { error: string; cause: string } {
  const inner = error.cause instanceof Error ? error.cause : error;
  return { error: inner.name && inner.name !== 'Error' ? inner.name : 'States.TaskFailed', cause: inner.message };
}
