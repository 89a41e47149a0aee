/**
 * Executes the state machine definition the Runbook construct synthesizes (taken from the template, not a
 * copy) with aws-local-stepfunctions. Every Lambda task is overridden to call the real Lambda handler of the
 * function its Resource names (src/aws/runbook-lambda.ts runbookHandler, which refuses actions outside that
 * function's IAM scope) with local adapters instead of AWS ones.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import type { RunbookEnv } from '../../src/core/runbook/env.js';
import { RUNBOOK_FUNCTIONS, type RunbookFunctionName } from '../../src/core/runbook/lambda-environment.js';
import type { RunbookAction } from '../../src/core/runbook/actions.js';
import { LOCAL_RUNBOOK_CONFIG, type RunbookConfig, type RunbookState } from '../../src/core/runbook/state.js';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { createLocalRunbookPorts } from '../../src/local/local-runbook-ports.js';
import type { LocalWorker } from '../../src/local/local-worker-control.js';
import type { Notification } from '../../src/ports/notifier.js';
import { buildRunbookStack } from '../infra/runbook-fixture.js';

export interface SynthesizedRunbook {
  readonly definition: StateMachineDefinition;
  /** Task state name -> the function its Resource ARN names. */
  readonly functionOfState: Readonly<Record<string, RunbookFunctionName>>;
  readonly taskStates: readonly string[];
  readonly waitStates: readonly string[];
}

/** Synthesizes the Runbook construct and turns its DefinitionString into a runnable definition. */
export function synthesizeRunbook(): SynthesizedRunbook {
  const { stack } = buildRunbookStack();
  const resources = Template.fromStack(stack).toJSON().Resources as Record<string, { Type: string; Properties: Record<string, any> }>;
  const functionIds = new Map<string, RunbookFunctionName>();
  for (const name of Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]) {
    const id = Object.keys(resources).find((k) => resources[k]!.Type === 'AWS::Lambda::Function' && k.startsWith(`Runbook${name[0]!.toUpperCase()}${name.slice(1)}Function`));
    if (!id) throw new Error(`template has no function for ${name}`);
    functionIds.set(id, name);
  }
  const machine = Object.values(resources).find((r) => r.Type === 'AWS::StepFunctions::StateMachine');
  if (!machine) throw new Error('template has no state machine');
  // Fn::GetAtt [<Function>, Arn] -> a Lambda ARN whose name is the logical id.
  const render = (value: any): string => {
    if (typeof value === 'string') return value;
    if (value['Fn::Join']) return value['Fn::Join'][1].map(render).join(value['Fn::Join'][0]);
    if (value['Fn::GetAtt']?.[1] === 'Arn') return `arn:aws:lambda:eu-west-1:123456789012:function:${value['Fn::GetAtt'][0]}`;
    throw new Error(`cannot resolve ${JSON.stringify(value)} in the definition`);
  };
  const definition = JSON.parse(render(machine.Properties.DefinitionString)) as StateMachineDefinition;
  const functionOfState: Record<string, RunbookFunctionName> = {};
  const taskStates: string[] = [];
  const waitStates: string[] = [];
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Wait') waitStates.push(name);
    if (state.Type !== 'Task') continue;
    taskStates.push(name);
    const logicalId = (state as { Resource: string }).Resource.split(':function:')[1]!;
    const fn = functionIds.get(logicalId);
    if (!fn) throw new Error(`task ${name} calls ${logicalId}, not a runbook function`);
    functionOfState[name] = fn;
  }
  return { definition, functionOfState, taskStates, waitStates };
}

export interface LocalRunbookHarnessOptions {
  readonly cluster: LocalCluster;
  readonly workers: readonly LocalWorker[];
  /** Lock and journal live here (shared by every runner of this cluster, including other processes). */
  readonly stateDir: string;
  readonly notifications?: Notification[];
  readonly config?: RunbookConfig;
}

export function localRunbookEnv(o: LocalRunbookHarnessOptions): RunbookEnv {
  const ports = createLocalRunbookPorts({
    cluster: o.cluster,
    workers: o.workers,
    stateDir: o.stateDir,
    notifier: { notify: async (n) => void o.notifications?.push(n) },
    connectTimeoutMs: 1_000,
  });
  return { ports, config: o.config ?? LOCAL_RUNBOOK_CONFIG, clusterId: o.cluster.clusterId };
}

/** Wraps a task: `real` runs the Lambda handler; a hook may run code around it or replace it. */
export type TaskHook = (input: { action: RunbookAction; state: RunbookState }, real: () => Promise<RunbookState>) => Promise<RunbookState>;

export interface Execution {
  readonly result: Promise<RunbookState>;
  /** Names of the states entered, in order (filled as the execution runs). */
  readonly entered: string[];
  abort(): void;
}

/** Starts an execution of the synthesized definition against local adapters. */
export function startExecution(
  runbook: SynthesizedRunbook,
  env: RunbookEnv,
  input: unknown,
  executionName: string,
  hooks: Readonly<Record<string, TaskHook>> = {},
): Execution {
  const handlers = Object.fromEntries(
    (Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]).map((fn) => [fn, runbookHandler(RUNBOOK_FUNCTIONS[fn], () => env)]),
  ) as Record<RunbookFunctionName, ReturnType<typeof runbookHandler>>;
  const taskResourceLocalHandlers = Object.fromEntries(
    runbook.taskStates.map((stateName) => [
      stateName,
      async (input: unknown) => {
        const event = input as { action: RunbookAction; state: RunbookState };
        const real = () => handlers[runbook.functionOfState[stateName]!](event);
        const hook = hooks[stateName];
        return (hook ? await hook(event, real) : await real()) as never;
      },
    ]),
  );
  const machine = new StateMachine(runbook.definition, { validationOptions: { checkArn: false } });
  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers,
      waitTimeOverrides: Object.fromEntries(runbook.waitStates.map((w) => [w, 10])),
      retryIntervalOverrides: Object.fromEntries(runbook.taskStates.map((t) => [t, 20])),
    },
    context: { Execution: { Name: executionName, StartTime: new Date().toISOString() } },
  });
  const entered: string[] = [];
  void (async () => {
    try {
      for await (const event of execution.eventLogs) if (event.type === 'StateEntered') entered.push(event.state.name);
    } catch {
      // the result promise reports the failure
    }
  })();
  return { result: execution.result as unknown as Promise<RunbookState>, entered, abort: () => execution.abort() };
}
