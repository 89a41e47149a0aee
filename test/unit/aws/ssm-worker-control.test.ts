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
import { parseDrainSummary } from '../../../src/core/drain-summary.js';
import { drainParameters } from '../../../src/core/drain-parameters.js';

const ssm = mockClient(SSMClient);
const control = () =>
  new SsmWorkerControl({
    ssm: new SSMClient({}),
    tagKey: 'rds-failover:role',
    tagValue: 'worker',
    documentName: 'rds-failover-orders-drain',
    outputLogGroupName: '/rds-failover/orders/drains',
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

  it("sends the stack's drain document with the promotion's epoch as its only parameter", async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const handle = await control().startDrain('i-0aaa', { epochId: EPOCH });
    expect(handle).toBe('cmd-1');
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
