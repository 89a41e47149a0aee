/**
 * failover / switchover / plan against AWS: the stack outputs, the candidate check, StartExecution and the
 * DescribeExecution / GetExecutionHistory polling, with exact parameters, and what the operator sees.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeExecutionCommand, GetExecutionHistoryCommand, SFNClient, StartExecutionCommand, type HistoryEvent } from '@aws-sdk/client-sfn';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { AwsTarget } from '../../../src/cli/aws/aws-target.js';
import type { RunbookState } from '../../../src/core/runbook/index.js';
import { runInProcess } from './cli-harness.js';

const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:orders-runbook';
const EXECUTION = 'arn:aws:states:eu-west-1:123456789012:execution:orders-runbook:orders-failover-2025-03-01T10-00-00-000Z';
const TOPOLOGY = '/rds-failover/orders/topology';
const WRITER = '/rds-failover/orders/writer-instance-id';
const AT = new Date('2025-03-01T10:00:00Z');

const sfn = mockClient(SFNClient);
const cfn = mockClient(CloudFormationClient);
const ssm = mockClient(SSMClient);

function stackOutputs(): void {
  cfn.on(DescribeStacksCommand, { StackName: 'RdsFailover-orders' }).resolves({
    Stacks: [
      {
        StackName: 'RdsFailover-orders',
        CreationTime: AT,
        StackStatus: 'UPDATE_COMPLETE',
        Outputs: [
          { OutputKey: 'ClusterId', OutputValue: 'orders' },
          { OutputKey: 'RunbookStateMachineArn', OutputValue: ARN },
          { OutputKey: 'TopologyParameterName', OutputValue: TOPOLOGY },
          { OutputKey: 'WriterParameterName', OutputValue: WRITER },
        ],
      },
    ],
  });
  ssm.on(GetParameterCommand, { Name: TOPOLOGY }).resolves({
    Parameter: {
      Value: JSON.stringify({
        version: 1,
        clusterId: 'orders',
        primary: 'a',
        nodes: [
          { name: 'a', instanceId: 'orders-a', role: 'primary' },
          { name: 'b', instanceId: 'orders-b', role: 'replica' },
          { name: 'c', instanceId: 'orders-c', role: 'replica' },
        ],
      }),
    },
  });
  ssm.on(GetParameterCommand, { Name: WRITER }).resolves({ Parameter: { Value: 'orders-a' } });
}

function state(name: string, id: number, type: 'Entered' | 'Exited', kind = 'Task'): HistoryEvent {
  const details = { name };
  return {
    id,
    timestamp: AT,
    type: `${kind}State${type}`,
    ...(type === 'Entered' ? { stateEnteredEventDetails: details } : { stateExitedEventDetails: details }),
  } as HistoryEvent;
}

/** A failover's history: tasks, a Choice, and a poll loop (PromotionStatus three times, one attempt throttled and retried). */
const HISTORY: HistoryEvent[] = [
  { id: 1, timestamp: AT, type: 'ExecutionStarted' },
  state('Preflight', 2, 'Entered'),
  state('Preflight', 3, 'Exited'),
  state('Plan', 4, 'Entered'),
  state('Plan', 5, 'Exited'),
  state('DryRun?', 6, 'Entered', 'Choice'),
  state('DryRun?', 7, 'Exited', 'Choice'),
  state('Promote', 8, 'Entered'),
  state('Promote', 9, 'Exited'),
  state('PromotionStatus', 10, 'Entered'),
  state('PromotionStatus', 11, 'Exited'),
  state('PromotionStatusDone?', 12, 'Entered', 'Choice'),
  state('PromotionStatusDone?', 13, 'Exited', 'Choice'),
  state('WaitBeforePromotionStatus', 14, 'Entered', 'Wait'),
  state('WaitBeforePromotionStatus', 15, 'Exited', 'Wait'),
  state('PromotionStatus', 16, 'Entered'),
  { id: 17, timestamp: AT, type: 'TaskFailed', taskFailedEventDetails: { resource: 'invoke', resourceType: 'lambda', error: 'ThrottlingException', cause: 'Rate exceeded' } },
  state('PromotionStatus', 18, 'Exited'),
  state('WaitBeforePromotionStatus', 19, 'Entered', 'Wait'),
  state('PromotionStatus', 20, 'Entered'),
  state('PromotionStatus', 21, 'Exited'),
  state('PromotionStatusDone?', 22, 'Entered', 'Choice'),
  state('PromotionStatusDone?', 23, 'Exited', 'Choice'),
  state('Finish', 24, 'Entered'),
  state('Finish', 25, 'Exited'),
  state('FailoverComplete', 26, 'Entered', 'Succeed'),
  { id: 27, timestamp: AT, type: 'ExecutionSucceeded' },
];

/**
 * GetExecutionHistory as the service answers it: what exists so far (`visible()` events), newest first when asked
 * with reverseOrder, in pages of 4 (whatever maxResults says, to exercise paging).
 */
function serveHistory(visible: () => number): void {
  sfn.on(GetExecutionHistoryCommand).callsFake((input: { reverseOrder?: boolean; nextToken?: string }) => {
    const events = HISTORY.slice(0, visible());
    const ordered = input.reverseOrder ? [...events].reverse() : events;
    const offset = input.nextToken ? Number(input.nextToken) : 0;
    const page = ordered.slice(offset, offset + 4);
    return { events: page, ...(offset + 4 < ordered.length ? { nextToken: String(offset + 4) } : {}) };
  });
}

/** The final state the state machine returns after a successful failover. */
const SUCCEEDED_STATE: RunbookState = {
  executionId: 'orders-failover-2025-03-01T10-00-00-000Z',
  startedAt: '2025-03-01T10:00:00.000Z',
  input: { mode: 'failover', candidate: 'orders-b' },
  clusterId: 'orders',
  plan: {
    mode: 'failover',
    oldPrimaryId: 'orders-a',
    candidateId: 'orders-b',
    referenceLsn: '0/5000000',
    referenceSource: 'replicas',
    lagBytes: 0,
    maxLagBytes: 1048576,
    forced: false,
    plannedForkPoint: { timelineId: 1, lsn: '0/5000000' },
    rebuildReplicaIds: ['orders-c'],
    risks: [],
    candidates: [],
    steps: ['fence', 'promote'],
    plannedAt: '2025-03-01T10:00:01.000Z',
    epochId: '3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d',
  },
  forkPoint: { timelineId: 1, lsn: '0/5000000', epochId: '00000000-0000-4000-8000-000000000001', keptUpTo: '0/5000000' },
  promotion: { nodeId: 'orders-b', requestedAt: '2025-03-01T10:00:05.000Z', writableAt: '2025-03-01T10:03:05.000Z' },
  drains: [
    {
      workerId: 'i-0123456789abcdef0',
      handle: 'cmd-1',
      startedBy: 'orders-failover-2025-03-01T10-00-00-000Z',
      attempts: 1,
      status: 'done',
      summary: { epochId: '3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d', examined: 120, resent: 7, inserted: 3, alreadyPresent: 4, remainingPending: 0, rejected: 0 },
    },
  ],
  steps: {
    preflight: { startedAt: '2025-03-01T10:00:00.000Z', finishedAt: '2025-03-01T10:00:01.000Z' },
    promote: { startedAt: '2025-03-01T10:00:05.000Z', finishedAt: '2025-03-01T10:00:06.000Z' },
    notify: { startedAt: '2025-03-01T10:05:00.000Z', finishedAt: '2025-03-01T10:05:01.000Z' },
  },
  outcome: 'succeeded',
};

beforeEach(() => {
  sfn.reset();
  cfn.reset();
  ssm.reset();
});

describe('failover against AWS', () => {
  it('starts the execution with exact parameters, renders each task live (a poll loop as one step), then the outcome and the link', async () => {
    stackOutputs();
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    sfn
      .on(DescribeExecutionCommand)
      .resolvesOnce({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'RUNNING', startDate: AT })
      .resolvesOnce({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'RUNNING', startDate: AT })
      .resolves({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'SUCCEEDED', startDate: AT, output: JSON.stringify(SUCCEEDED_STATE) });
    // Events 1-9 exist at the first poll, 1-15 at the second, all of them from the third on.
    serveHistory(() => [9, 15, 27][Math.min(2, sfn.commandCalls(DescribeExecutionCommand).length)]!);

    const run = await runInProcess(['failover', '--stack', 'RdsFailover-orders', '--candidate', 'orders-b', '--yes']);

    expect(run.code).toBe(0);
    expect(cfn.commandCalls(DescribeStacksCommand).map((c) => c.args[0].input)).toEqual([{ StackName: 'RdsFailover-orders' }]);
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: ARN, name: 'orders-failover-2025-03-01T10-00-00-000Z', input: JSON.stringify({ mode: 'failover', candidate: 'orders-b' }) },
    ]);
    // Newest first, stopping at the first event already shown: 3 pages, then 2, then 4, then 1 (nothing new).
    const historyCalls = sfn.commandCalls(GetExecutionHistoryCommand).map((c) => c.args[0].input);
    expect(historyCalls.map((i) => i.nextToken)).toEqual([undefined, '4', '8', undefined, '4', undefined, '4', '8', '12', undefined]);
    for (const input of historyCalls) expect(input).toEqual({ executionArn: EXECUTION, reverseOrder: true, maxResults: 100, includeExecutionData: false, nextToken: input.nextToken });
    expect(sfn.commandCalls(DescribeExecutionCommand).map((c) => c.args[0].input)).toEqual([{ executionArn: EXECUTION }, { executionArn: EXECUTION }, { executionArn: EXECUTION }]);

    // Progress on stderr: the link, then each task once, in order; the poll loop as one step with its count.
    const progress = run.stderr.split('\n').filter((l) => /^\+/.test(l));
    expect(progress.map((l) => l.replace(/^\+\s*[\d.]+s /, '').replace(/ \([\dm.]+s\)/, ''))).toEqual([
      `· execution started — https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${EXECUTION}`,
      '▶ Preflight',
      '✔ Preflight',
      '▶ Plan',
      '✔ Plan',
      '▶ Promote',
      '✔ Promote',
      '▶ PromotionStatus',
      '· PromotionStatus — attempt failed: ThrottlingException: Rate exceeded',
      '✔ PromotionStatus — 3 polls',
      '▶ Finish',
      '✔ Finish',
    ]);
    // The follower slept 2 s between polls on the injected clock: Promote finished after the first sleep.
    expect(progress[6]).toMatch(/^\+\s+2\.00s ✔ Promote/);

    expect(run.stdout).toContain('failover of orders: SUCCEEDED: orders-a -> orders-b in 5m1s');
    expect(run.stdout).toMatch(/fork point\s+timeline 1 at 0\/5000000/);
    expect(run.stdout).toMatch(/i-0123456789abcdef0\s+done\s+1\s+120\s+7\s+3\s+4\s+0/);
    expect(run.stdout).toContain(`execution    https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/${EXECUTION}`);
    expect(run.stdout).toContain('next: rds-failover reconcile --config config/<env>.json');
  });

  it('a refused execution exits 3 with the reason and the link; --json gives the same outcome to machines', async () => {
    stackOutputs();
    serveHistory(() => 3);
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: EXECUTION,
      stateMachineArn: ARN,
      status: 'FAILED',
      startDate: AT,
      error: 'RunbookRefused',
      cause: 'primary orders-a answers and accepts writes',
    });

    const run = await runInProcess(['failover', '--stack', 'RdsFailover-orders', '--yes', '--json']);

    expect(run.code).toBe(3);
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.input).toBe(JSON.stringify({ mode: 'failover' }));
    const outcome = JSON.parse(run.stdout) as { outcome: string; ok: boolean; error: { name: string; message: string }; execution: { executionArn: string } };
    expect(outcome).toMatchObject({ outcome: 'FAILED', ok: false, error: { name: 'RunbookRefused', message: 'primary orders-a answers and accepts writes' } });
    expect(outcome.execution.executionArn).toBe(EXECUTION);
    expect(run.stderr).toContain('error: failover FAILED: primary orders-a answers and accepts writes');
  });

  it('an unknown candidate stops before anything starts (exit 2)', async () => {
    stackOutputs();
    const run = await runInProcess(['switchover', '--stack', 'RdsFailover-orders', '--candidate', 'orders-z', '--yes']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--candidate: 'orders-z' is not a DB instance of the topology (instances: orders-a, orders-b, orders-c)");
    expect(sfn.calls()).toHaveLength(0);
  });

  it('the writer as candidate stops before anything starts (exit 2)', async () => {
    stackOutputs();
    const run = await runInProcess(['switchover', '--stack', 'RdsFailover-orders', '--candidate', 'orders-a', '--yes']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("'orders-a' is the writer already; choose one of the replicas (orders-b, orders-c)");
    expect(sfn.calls()).toHaveLength(0);
  });

  it('asks for the cluster id on a terminal: a wrong answer starts nothing (exit 3), the right one starts the execution', async () => {
    stackOutputs();
    const refused = await runInProcess(['switchover', '--stack', 'RdsFailover-orders'], { interactive: true, input: 'yes\n' });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('About to start a switchover of orders in AWS');
    expect(refused.stderr).toContain("not confirmed ('yes' is not orders): nothing was done");
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);

    serveHistory(() => HISTORY.length);
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    sfn.on(DescribeExecutionCommand).resolves({
      executionArn: EXECUTION,
      stateMachineArn: ARN,
      status: 'SUCCEEDED',
      startDate: AT,
      output: JSON.stringify({ ...SUCCEEDED_STATE, input: { mode: 'switchover' }, plan: { ...SUCCEEDED_STATE.plan!, mode: 'switchover' } }),
    });
    const confirmed = await runInProcess(['switchover', '--stack', 'RdsFailover-orders'], { interactive: true, input: 'orders\n' });
    expect(confirmed.code).toBe(0);
    expect(sfn.commandCalls(StartExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: ARN, name: 'orders-switchover-2025-03-01T10-00-00-000Z', input: JSON.stringify({ mode: 'switchover' }) },
    ]);
    expect(confirmed.stdout).toContain('switchover of orders: SUCCEEDED: orders-a -> orders-b');
  });

  it('--cluster-id and --state-machine-arn skip the stack lookup', async () => {
    ssm.on(GetParameterCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [] });
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'SUCCEEDED', startDate: AT, output: JSON.stringify(SUCCEEDED_STATE) });
    const run = await runInProcess(['failover', '--cluster-id', 'orders', '--state-machine-arn', ARN, '--candidate', 'orders-b', '--yes']);
    expect(run.code).toBe(0);
    expect(cfn.calls()).toHaveLength(0);
    // The candidate check reads the conventional parameter names and only warns when it may not.
    expect(ssm.commandCalls(GetParameterCommand).map((c) => c.args[0].input.Name)).toEqual([TOPOLOGY]);
    expect(run.stderr).toContain('warning: could not read the topology to check --candidate (not authorized); the runbook checks it');
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input.stateMachineArn).toBe(ARN);
  });
});

describe('plan against AWS: a dry-run execution', () => {
  it('renders the returned plan', async () => {
    stackOutputs();
    serveHistory(() => 5);
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    const dryRunState: RunbookState = {
      executionId: 'x',
      startedAt: '2025-03-01T10:00:00.000Z',
      input: { mode: 'switchover', dryRun: true },
      plan: {
        ...SUCCEEDED_STATE.plan!,
        mode: 'switchover',
        referenceSource: 'primary',
        candidates: [
          { nodeId: 'orders-b', priority: 1, reachable: true, timelineId: 1, replayLsn: '0/5000000', receiveLsn: '0/5000000', lagBytes: 0, epochId: null, eligible: true, withinLagGuard: true, reasons: [] },
          { nodeId: 'orders-c', priority: 2, reachable: false, timelineId: null, replayLsn: null, receiveLsn: null, lagBytes: null, epochId: null, eligible: false, withinLagGuard: true, reasons: ['unreachable: timeout'] },
        ],
      },
      outcome: 'dry-run',
    };
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'SUCCEEDED', startDate: AT, output: JSON.stringify(dryRunState) });

    const run = await runInProcess(['plan', '--stack', 'RdsFailover-orders', '--mode', 'switchover']);

    expect(run.code).toBe(0);
    expect(sfn.commandCalls(StartExecutionCommand)[0]!.args[0].input).toEqual({
      stateMachineArn: ARN,
      name: 'orders-switchover-plan-2025-03-01T10-00-00-000Z',
      input: JSON.stringify({ mode: 'switchover', dryRun: true }),
    });
    expect(run.stdout).toContain('switchover of orders: promote orders-b, fence orders-a');
    expect(run.stdout).toMatch(/orders-b \*\s+yes\s+within\s+1\s+0\/5000000/);
    expect(run.stdout).toMatch(/orders-c\s+no\s+within.*unreachable: timeout/);
    expect(run.stdout).toContain('dry-run execution: https://eu-west-1.console.aws.amazon.com/');
  });

  it('a refusal exits 3 with the reason', async () => {
    stackOutputs();
    sfn.on(GetExecutionHistoryCommand).resolves({ events: [] });
    sfn.on(StartExecutionCommand).resolves({ executionArn: EXECUTION, startDate: AT });
    const refused: RunbookState = {
      executionId: 'x',
      startedAt: '2025-03-01T10:00:00.000Z',
      input: { mode: 'failover', dryRun: true },
      refusal: { code: 'primary-healthy', reason: 'primary orders-a answers and accepts writes' },
      candidates: [],
      outcome: 'dry-run',
    };
    sfn.on(DescribeExecutionCommand).resolves({ executionArn: EXECUTION, stateMachineArn: ARN, status: 'SUCCEEDED', startDate: AT, output: JSON.stringify(refused) });
    const run = await runInProcess(['plan', '--stack', 'RdsFailover-orders', '--json']);
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ clusterId: 'orders', mode: 'failover', outcome: 'refused', refusal: { code: 'primary-healthy' } });
    expect(run.stderr).toContain('error: the runbook would refuse: primary orders-a answers and accepts writes');
  });
});

describe('AwsTarget', () => {
  it('configures clients with --region and --profile like the AWS CLI', async () => {
    const target = new AwsTarget({ region: 'eu-west-1', profile: 'ops' }, {});
    const client = target.sfn();
    expect(await client.config.region()).toBe('eu-west-1');
    expect((client.config as { profile?: string }).profile).toBe('ops');
    expect(target.sfn()).toBe(client);
  });

  it('finds the stack from $RDS_FAILOVER_STACK or the cluster id, and names a missing output', async () => {
    expect(new AwsTarget({}, { RDS_FAILOVER_STACK: 'MyStack' }).stackName()).toBe('MyStack');
    expect(new AwsTarget({ clusterId: 'orders' }, {}).stackName()).toBe('RdsFailover-orders');
    cfn.on(DescribeStacksCommand).resolves({ Stacks: [{ StackName: 'S', CreationTime: AT, StackStatus: 'CREATE_COMPLETE', Outputs: [{ OutputKey: 'ClusterId', OutputValue: 'orders' }] }] });
    await expect(new AwsTarget({ stack: 'S' }, {}).stateMachineArn()).rejects.toThrow('stack S has no output RunbookStateMachineArn (outputs: ClusterId); pass --state-machine-arn instead');
  });
});
