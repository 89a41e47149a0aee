import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  InvocationDoesNotExist,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { SsmWorkerControl } from '../../../src/aws/ssm-worker-control.js';
import { classifyError, RunbookErrorName } from '../../../src/core/runbook/errors.js';
import { parseDrainSummary } from '../../../src/core/drain-summary.js';
import { drainParameters } from '../../../src/core/drain-parameters.js';

const ssm = mockClient(SSMClient);
const control = (now?: () => number) =>
  new SsmWorkerControl({
    ssm: new SSMClient({}),
    tagKey: 'rds-failover:role',
    tagValue: 'worker',
    documentName: 'rds-failover-orders-drain',
    outputLogGroupName: '/rds-failover/orders/drains',
    ...(now ? { now } : {}),
  });

const EPOCH = '3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';
const SUMMARY = { epochId: EPOCH, examined: 120, resent: 7, inserted: 3, alreadyPresent: 4, remainingPending: 0, rejected: 0 };

beforeEach(() => ssm.reset());

describe('SsmWorkerControl', () => {
  it('selects the instances carrying the cluster tag AND the worker role tag (every resource of the stack has the cluster tag)', async () => {
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-0aaa' }] });
    const cluster = new SsmWorkerControl({ ssm: new SSMClient({}), tagKey: 'rds-failover:cluster', tagValue: 'orders', documentName: 'rds-failover-orders-drain' });
    expect(await cluster.listWorkers()).toEqual([{ id: 'i-0aaa' }]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)[0]!.args[0].input.Filters).toEqual([
      { Key: 'tag:rds-failover:cluster', Values: ['orders'] },
      { Key: 'tag:rds-failover:role', Values: ['worker'] },
    ]);
  });

  it('lists the SSM-managed instances carrying the worker tag, across pages', async () => {
    ssm
      .on(DescribeInstanceInformationCommand)
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-0bbb' }], NextToken: 'p2' })
      .resolves({ InstanceInformationList: [{ InstanceId: 'i-0aaa' }] });
    expect(await control().listWorkers()).toEqual([{ id: 'i-0aaa' }, { id: 'i-0bbb' }]);
    expect(ssm.commandCalls(DescribeInstanceInformationCommand).map((c) => c.args[0].input)).toEqual([
      { Filters: [{ Key: 'tag:rds-failover:role', Values: ['worker'] }], MaxResults: 50, NextToken: undefined },
      { Filters: [{ Key: 'tag:rds-failover:role', Values: ['worker'] }], MaxResults: 50, NextToken: 'p2' },
    ]);
  });

  it("sends the stack's drain document with the promotion's epoch as its only parameter (to an instance SSM reports Online)", async () => {
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-0aaa', PingStatus: 'Online' }] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const handle = await control().startDrain('i-0aaa', { epochId: EPOCH });
    expect(handle).toBe('cmd-1');
    // not listed before: its PingStatus is asked for first
    expect(ssm.commandCalls(DescribeInstanceInformationCommand).map((c) => c.args[0].input)).toEqual([{ Filters: [{ Key: 'InstanceIds', Values: ['i-0aaa'] }] }]);
    expect(ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input)).toEqual([
      {
        InstanceIds: ['i-0aaa'],
        DocumentName: 'rds-failover-orders-drain',
        DocumentVersion: '$LATEST',
        Comment: 'rds-failover: drain the write buffer after failover',
        TimeoutSeconds: 60,
        Parameters: { epoch: [EPOCH] },
        CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/rds-failover/orders/drains' },
      },
    ]);
  });

  it("without an epoch the agent converges on the writer's lineage", () => {
    expect(drainParameters({})).toEqual({ epoch: [''] });
  });

  it('validates the parameter before anything is sent', async () => {
    expect(() => drainParameters({ epochId: `${EPOCH}; rm -rf /` })).toThrow("drain: epoch must be the epoch's UUID (lowercase), got");
    expect(() => new SsmWorkerControl({ ssm: new SSMClient({}), tagKey: 'k', tagValue: 'v', documentName: '' })).toThrow('SsmWorkerControl: documentName is required');
    await expect(control().startDrain('worker-1', {})).rejects.toThrow("startDrain: 'worker-1' is not an instance id (i-...)");
    await expect(control().startDrain('i-0aaa', { epochId: 'nope' })).rejects.toThrow("drain: epoch must be the epoch's UUID (lowercase), got 'nope'");
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('does not send a drain to an instance listed as not Online: it fails at once, naming the instance and its PingStatus, and is not retried as transient', async () => {
    const lastPing = new Date('2025-03-01T10:00:00.000Z');
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [
        { InstanceId: 'i-0aaa', PingStatus: 'Online' },
        { InstanceId: 'i-0bbb', PingStatus: 'ConnectionLost', LastPingDateTime: lastPing },
      ],
    });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const c = control();
    expect(await c.listWorkers()).toEqual([{ id: 'i-0aaa' }, { id: 'i-0bbb' }]);
    const refused = await c.startDrain('i-0bbb', { epochId: EPOCH }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(refused?.message).toBe(
      'SSM reports i-0bbb PingStatus ConnectionLost (last ping 2025-03-01T10:00:00.000Z): a drain command would wait out its delivery timeout undelivered, so none was sent',
    );
    expect(classifyError(refused).name).toBe(RunbookErrorName.StepFailed);
    expect(await c.startDrain('i-0aaa', { epochId: EPOCH })).toBe('cmd-1');
    // the listing's PingStatus was fresh: no second DescribeInstanceInformation; one SendCommand, to the Online instance
    expect(ssm.commandCalls(DescribeInstanceInformationCommand)).toHaveLength(1);
    expect(ssm.commandCalls(SendCommandCommand).map((x) => x.args[0].input.InstanceIds)).toEqual([['i-0aaa']]);
  });

  it('asks SSM again when the listing is old or the last drain failed: a restarted drain is not sent to an instance that went offline meanwhile', async () => {
    let now = 1_000_000;
    ssm
      .on(DescribeInstanceInformationCommand)
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-0aaa', PingStatus: 'Online' }] })
      .resolvesOnce({ InstanceInformationList: [{ InstanceId: 'i-0aaa', PingStatus: 'ConnectionLost' }] })
      .resolves({ InstanceInformationList: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'TimedOut', StatusDetails: 'DeliveryTimedOut', ResponseCode: -1 });
    const c = control(() => now);
    await c.listWorkers();
    expect(await c.startDrain('i-0aaa', { epochId: EPOCH })).toBe('cmd-1');
    now += 660_000; // TimeoutSeconds 60 + the document's 600 s execution timeout
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({
      state: 'failed',
      error: "drain on i-0aaa was never delivered (TimedOut, DeliveryTimedOut): the instance's SSM Agent did not take the command before its timeout (the instance is offline or cannot reach SSM); it did not run",
    });
    await expect(c.startDrain('i-0aaa', { epochId: EPOCH })).rejects.toThrow('SSM reports i-0aaa PingStatus ConnectionLost: a drain command would wait out');
    now += 60_000;
    await expect(c.startDrain('i-0aaa', { epochId: EPOCH })).rejects.toThrow('SSM no longer lists i-0aaa (stopped, terminated or deregistered): a drain command cannot reach it, so none was sent');
    expect(ssm.commandCalls(DescribeInstanceInformationCommand).slice(1).map((x) => x.args[0].input)).toEqual([
      { Filters: [{ Key: 'InstanceIds', Values: ['i-0aaa'] }] },
      { Filters: [{ Key: 'InstanceIds', Values: ['i-0aaa'] }] },
    ]);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('an instance SSM says nothing about (no PingStatus, or the question failed) is sent the drain: SSM\'s statuses tell the rest', async () => {
    ssm.on(DescribeInstanceInformationCommand).rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' })).resolves({ InstanceInformationList: [{ InstanceId: 'i-0aaa' }] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    expect(await control().startDrain('i-0aaa', { epochId: EPOCH })).toBe('cmd-1');
    const listed = control();
    await listed.listWorkers();
    expect(await listed.startDrain('i-0aaa', { epochId: EPOCH })).toBe('cmd-1');
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(2);
  });

  it('an instance SSM answers InvalidInstanceId for is not sent the drain: it fails at once, as not managed by SSM', async () => {
    ssm.on(DescribeInstanceInformationCommand).rejects(Object.assign(new Error(''), { name: 'InvalidInstanceId', $metadata: { httpStatusCode: 400 } }));
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const refused = await control().startDrain('i-0aaa', { epochId: EPOCH }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(refused?.message).toBe(
      'SSM does not manage i-0aaa (DescribeInstanceInformation: InvalidInstanceId, no message; stopped, terminated, deregistered or not in this account): a drain command cannot reach it, so none was sent',
    );
    expect(classifyError(refused).name).toBe(RunbookErrorName.StepFailed);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('any other error of the PingStatus question (AccessDenied) fails that drain with AWS\'s message, and nothing is sent', async () => {
    const denied = 'User: arn:aws:sts::123456789012:assumed-role/drain/fn is not authorized to perform: ssm:DescribeInstanceInformation';
    ssm.on(DescribeInstanceInformationCommand).rejects(Object.assign(new Error(denied), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }));
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    await expect(control().startDrain('i-0aaa', { epochId: EPOCH })).rejects.toThrow(
      `could not ask SSM whether i-0aaa is Online (DescribeInstanceInformation AccessDeniedException: ${denied}), so no drain was sent`,
    );
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('says which timeout ended a drain and whether it ran', async () => {
    ssm
      .on(GetCommandInvocationCommand)
      .resolvesOnce({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut', ResponseCode: -1, StandardErrorContent: 'draining 120000 rows\n' })
      .resolvesOnce({ Status: 'Failed', StatusDetails: 'Undeliverable', ResponseCode: -1 })
      .resolves({ Status: 'Cancelled', StatusDetails: 'Cancelled', ResponseCode: -1 });
    const c = control();
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'failed', error: "drain on i-0aaa ran past the document's execution timeout and was stopped (TimedOut, ExecutionTimedOut, exit -1): draining 120000 rows" });
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'failed', error: 'drain on i-0aaa could not be delivered (Failed, Undeliverable): SSM says the instance may not exist or is not responding; it did not run' });
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'failed', error: 'drain on i-0aaa Cancelled (Cancelled, exit -1): ' });
  });

  it('polls GetCommandInvocation per instance: not yet visible, in progress, then the parsed JSON summary', async () => {
    ssm
      .on(GetCommandInvocationCommand, { CommandId: 'cmd-1', InstanceId: 'i-0aaa' })
      .rejectsOnce(new InvocationDoesNotExist({ message: 'no invocation', $metadata: {} }))
      .resolvesOnce({ Status: 'InProgress' })
      .resolves({ Status: 'Success', StandardOutputContent: `{"level":"info","message":"draining"}\n${JSON.stringify(SUMMARY)}\n` });
    const c = control();
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'pending' });
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'pending' });
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'done', summary: SUMMARY });
    expect(ssm.commandCalls(GetCommandInvocationCommand).map((x) => x.args[0].input)).toEqual(Array(3).fill({ CommandId: 'cmd-1', InstanceId: 'i-0aaa' }));
  });

  it('a throttled or failed GetCommandInvocation says nothing about the command: still pending (found by the AWS twin), anything else is thrown', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    const unavailable = Object.assign(new Error('Service unavailable'), { name: 'InternalServerError', $metadata: { httpStatusCode: 500 } });
    const denied = Object.assign(new Error('not authorized to perform: ssm:GetCommandInvocation'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } });
    ssm.on(GetCommandInvocationCommand).rejectsOnce(throttled).rejectsOnce(unavailable).rejects(denied);
    const c = control();
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'pending' });
    expect(await c.drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'pending' });
    await expect(c.drainStatus('i-0aaa', 'cmd-1')).rejects.toBe(denied);
  });

  it('reports a failed command with its status, exit code and stderr', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 2, StandardErrorContent: 'writer unreachable: ECONNREFUSED\n' });
    expect(await control().drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'failed', error: 'drain on i-0aaa Failed (Failed, exit 2): writer unreachable: ECONNREFUSED' });
  });

  it('a success without a summary is a failure, not a silent zero', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', StandardOutputContent: 'done\n' });
    expect(await control().drainStatus('i-0aaa', 'cmd-1')).toEqual({ state: 'failed', error: 'drain on i-0aaa succeeded but printed no JSON summary: done' });
  });

  it('parseDrainSummary ignores log lines and partial objects', () => {
    expect(parseDrainSummary('{"examined":1}\nnot json\n')).toBeUndefined();
    expect(parseDrainSummary(JSON.stringify({ ...SUMMARY, extra: true }))).toEqual(SUMMARY);
  });
});
