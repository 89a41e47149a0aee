/**
 * Step Functions in the twin: the template's state machine definition (DefinitionString, resolved as deployed)
 * executed with aws-local-stepfunctions, each Lambda task invoking the template's function in the twin (its real
 * handler, environment and role). Waits and retry intervals are shortened (the twin's times are not AWS's); every
 * state, Retry, Catch and Choice of the definition runs as written.
 */
import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { polyfillPromiseWithResolvers } from '../promise-with-resolvers.js';
import type { AwsTwin } from './aws-twin.js';

export interface TwinExecutionOptions {
  /** Every Wait state lasts this long. @default 100 */
  readonly waitMs?: number;
  /** Every Retry waits this long between attempts. @default 50 */
  readonly retryMs?: number;
  /** Called with each task's output (e.g. to act on the system between steps, as the world would). */
  readonly afterTask?: (stateName: string, output: unknown) => Promise<void> | void;
  /** Every state entered and exited, with its type (Task, Choice, Wait...), as they happen. */
  readonly onEvent?: (event: { readonly kind: 'entered' | 'exited'; readonly name: string; readonly stateType: string }) => void;
}

export interface TwinExecution {
  readonly result: Promise<unknown>;
  /** Names of the states entered, in order. */
  readonly entered: string[];
  /** Task invocations per state name. */
  readonly tasks: Map<string, number>;
  abort(): void;
}

export function stateMachineDefinition(twin: AwsTwin, logicalId?: string): StateMachineDefinition {
  const id = logicalId ?? twin.deployed.ofType('AWS::StepFunctions::StateMachine')[0];
  if (!id) throw new Error('the template has no state machine');
  const definition = twin.deployed.property<string>(id, 'DefinitionString');
  if (typeof definition !== 'string') throw new Error(`state machine ${id} has no DefinitionString`);
  return JSON.parse(definition) as StateMachineDefinition;
}

export function startTwinExecution(twin: AwsTwin, input: unknown, executionName: string, options: TwinExecutionOptions = {}): TwinExecution {
  polyfillPromiseWithResolvers();
  const definition = stateMachineDefinition(twin);
  const taskStates = Object.entries(definition.States).filter(([, s]) => s.Type === 'Task');
  const waitStates = Object.entries(definition.States).filter(([, s]) => s.Type === 'Wait').map(([n]) => n);
  const tasks = new Map<string, number>();
  const handlers = Object.fromEntries(
    taskStates.map(([name, state]) => {
      const functionId = twin.functionByName((state as { Resource: string }).Resource);
      return [
        name,
        async (input: unknown) => {
          tasks.set(name, (tasks.get(name) ?? 0) + 1);
          const output = await twin.invoke(functionId, input);
          await options.afterTask?.(name, output);
          return output as never;
        },
      ];
    }),
  );
  const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
  const execution = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: handlers,
      waitTimeOverrides: Object.fromEntries(waitStates.map((w) => [w, options.waitMs ?? 100])),
      retryIntervalOverrides: Object.fromEntries(taskStates.map(([t]) => [t, options.retryMs ?? 50])),
    },
    context: { Execution: { Name: executionName, StartTime: new Date().toISOString() } },
  });
  const entered: string[] = [];
  void (async () => {
    try {
      for await (const event of execution.eventLogs) {
        if (event.type !== 'StateEntered' && event.type !== 'StateExited') continue;
        if (event.type === 'StateEntered') entered.push(event.state.name);
        options.onEvent?.({ kind: event.type === 'StateEntered' ? 'entered' : 'exited', name: event.state.name, stateType: event.state.type });
      }
    } catch {
      // the result promise reports the failure
    }
  })();
  return { result: execution.result as Promise<unknown>, entered, tasks, abort: () => execution.abort() };
}
