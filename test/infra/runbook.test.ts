import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_FUNCTIONS, type RunbookFunctionName } from '../../src/core/runbook/lambda-environment.js';
import { buildRunbookStack } from './runbook-fixture.js';

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;
type AslState = Record<string, any>;

let template: Template;
let resources: Resources;
let states: Record<string, AslState>;
let functionIds: Record<RunbookFunctionName, string>;

/** Renders Fn::Join / Fn::GetAtt so the definition can be parsed: a function ARN becomes '<LogicalId>'. */
function render(value: any): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map(render).join(value['Fn::Join'][0]);
  if (value['Fn::GetAtt']) return `<${value['Fn::GetAtt'][0]}>`;
  if (value.Ref) return `<${value.Ref}>`;
  throw new Error(`cannot render ${JSON.stringify(value)}`);
}

beforeAll(() => {
  const { stack } = buildRunbookStack();
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources;
  const [, machine] = Object.entries(resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
  states = JSON.parse(render(machine.Properties.DefinitionString)).States;
  functionIds = Object.fromEntries(
    (Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]).map((name) => {
      const id = Object.keys(resources).find((k) => resources[k]!.Type === 'AWS::Lambda::Function' && k.startsWith(`Runbook${name[0]!.toUpperCase()}${name.slice(1)}Function`));
      if (!id) throw new Error(`no function for ${name}`);
      return [name, id];
    }),
  ) as Record<RunbookFunctionName, string>;
});

describe('Runbook: state machine', () => {
  it('logs ALL with execution data to a KMS-encrypted log group and traces with X-Ray', () => {
    const [, machine] = Object.entries(resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
    expect(machine.Properties.StateMachineName).toBe('rds-failover-prod-runbook');
    expect(machine.Properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(machine.Properties.LoggingConfiguration.Level).toBe('ALL');
    expect(machine.Properties.LoggingConfiguration.IncludeExecutionData).toBe(true);
    const logGroupId = machine.Properties.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn['Fn::GetAtt'][0];
    expect(resources[logGroupId]!.Type).toBe('AWS::Logs::LogGroup');
    expect(resources[logGroupId]!.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^LogKey/), 'Arn'] });
  });

  it('runs the steps in the runbook order, with Wait/Choice loops for the long waits', () => {
    const path: string[] = [];
    let at: string | undefined = 'Preflight';
    while (at && path.length < 40) {
      path.push(at);
      const s: AslState = states[at]!;
      // Choice: follow "done" (the first rule), except DryRun? whose first rule ends a dry run.
      if (s.Type === 'Choice') at = at === 'DryRun?' ? s.Default : s.Choices[0].Next;
      else at = s.Next;
    }
    expect(path).toEqual([
      'Preflight', 'Plan', 'DryRun?', 'FenceOldPrimary', 'RecordForkPoint', 'RecordForkPointDone?', 'Promote', 'PromotionStatus', 'PromotionStatusDone?',
      'RecordEpoch', 'IsolateOldPrimary', 'RepointWriter', 'StartDrains', 'DrainStatus', 'DrainStatusDone?', 'Verify', 'VerifyDone?', 'StartRebuilds',
      'RebuildStatus', 'RebuildStatusDone?', 'Finish', 'FailoverComplete',
    ]);
    // the epoch is recorded by the promote function (it may write to the promoted node), before the writer is repointed
    expect(states.RecordEpoch!.Resource).toBe(`<${functionIds.promote}>`);
    for (const poll of ['RecordForkPoint', 'PromotionStatus', 'DrainStatus', 'Verify', 'RebuildStatus']) {
      expect(states[`${poll}Done?`]!.Default).toBe(`WaitBefore${poll}`);
    }
    expect(states['DryRun?']!.Choices[0]).toEqual({
      And: [{ Variable: '$.outcome', IsPresent: true }, { Variable: '$.outcome', StringEquals: 'dry-run' }],
      Next: 'DryRunComplete',
    });
    for (const poll of ['RecordForkPoint', 'PromotionStatus', 'DrainStatus', 'Verify', 'RebuildStatus', 'ConfirmPrimaryDown']) {
      const wait = states[`WaitBefore${poll}`]!;
      expect(wait).toEqual({ Type: 'Wait', SecondsPath: '$.poll.waitSeconds', Next: poll });
    }
  });

  it('every task retries transient errors with backoff and jitter, and catches everything into the failure path', () => {
    const tasks = Object.entries(states).filter(([, s]) => s.Type === 'Task');
    expect(tasks.map(([n]) => n).sort()).toEqual(
      ['ConfirmPrimaryDown', 'Preflight', 'Plan', 'FenceOldPrimary', 'RecordForkPoint', 'Promote', 'PromotionStatus', 'RecordEpoch', 'IsolateOldPrimary', 'RepointWriter', 'StartDrains', 'DrainStatus', 'Verify', 'StartRebuilds', 'RebuildStatus', 'Finish', 'NotifyFailure'].sort(),
    );
    for (const [name, s] of tasks) {
      expect(s.Retry, name).toEqual([
        {
          ErrorEquals: ['RunbookTransient', 'Lambda.TooManyRequestsException', 'Lambda.ServiceException', 'Lambda.AWSLambdaException', 'Lambda.SdkClientException', 'Lambda.Unknown', 'States.Timeout'],
          IntervalSeconds: 2,
          MaxAttempts: 5,
          BackoffRate: 2,
          MaxDelaySeconds: 60,
          JitterStrategy: 'FULL',
        },
      ]);
      if (name === 'NotifyFailure') expect(s.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.failurePathError', Next: 'RunbookFailed' }]);
      else expect(s.Catch, name).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'NotifyFailure' }]);
    }
    expect(states.NotifyFailure!.Next).toBe('RunbookFailed');
    expect(states.RunbookFailed).toEqual({ Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
  });

  it('each task calls the function whose IAM policy was written for its action', () => {
    for (const [name, s] of Object.entries(states).filter(([, s]) => s.Type === 'Task')) {
      const action = s.Parameters.action as string;
      expect(s.Parameters['state.$'], name).toBe('$');
      const fn = (Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]).find((f) => s.Resource === `<${functionIds[f]}>`);
      expect(fn, `${name} resource ${s.Resource}`).toBeDefined();
      expect(RUNBOOK_FUNCTIONS[fn!] as readonly string[], `${name} -> ${fn}`).toContain(action);
    }
  });

  it('starts from a Pass state that adds the execution name (the lock owner) and routes triggered runs to the confirmation loop', () => {
    expect(states.Start!.Parameters).toEqual({ 'input.$': '$', 'executionId.$': '$$.Execution.Name', 'startedAt.$': '$$.Execution.StartTime' });
    expect(states['Triggered?']!.Choices).toEqual([{ Variable: '$.input.trigger', IsPresent: true, Next: 'ConfirmPrimaryDown' }]);
    expect(states['PrimaryDown?']!.Choices.map((c: any) => c.Next)).toEqual(['Preflight', 'NotConfirmed']);
  });
});

describe('Runbook: EventBridge rule on RDS failure events', () => {
  const rule = (t: Template) => Object.values(t.toJSON().Resources as Resources).find((r) => r.Type === 'AWS::Events::Rule')!.Properties;

  it('is DISABLED by default, matches failure events of the cluster instances and starts the state machine with a trigger', () => {
    const r = rule(template);
    expect(r.State).toBe('DISABLED');
    expect(r.EventPattern).toEqual({
      source: ['aws.rds'],
      'detail-type': ['RDS DB Instance Event'],
      detail: { SourceIdentifier: [{ prefix: 'prod-' }], EventCategories: ['failure', 'availability', 'low storage'] },
    });
    const target = r.Targets[0];
    expect(target.Arn).toEqual({ Ref: expect.stringMatching(/^RunbookStateMachine/) });
    expect(target.InputTransformer.InputPathsMap).toEqual({ 'detail-SourceIdentifier': '$.detail.SourceIdentifier', 'detail-EventID': '$.detail.EventID', 'detail-Message': '$.detail.Message' });
    expect(target.InputTransformer.InputTemplate).toBe(
      '{"mode":"failover","trigger":{"source":"rds-event","sourceId":<detail-SourceIdentifier>,"eventId":<detail-EventID>,"message":<detail-Message>}}',
    );
  });

  it('is ENABLED by config, and the confirmation time and interval reach the functions', () => {
    const { stack } = buildRunbookStack({ autoFailover: { enabled: true, confirmSeconds: 45, probeIntervalSeconds: 3 } });
    const t = Template.fromStack(stack);
    expect(rule(t).State).toBe('ENABLED');
    const probe = Object.entries(t.toJSON().Resources as Resources).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('RunbookProbeFunction'))![1];
    const config = JSON.parse(probe.Properties.Environment.Variables.RUNBOOK_CONFIG);
    expect(config.confirmUnreachableMs).toBe(45_000);
    expect(config.pollIntervalMs.confirm).toBe(3_000);
  });
});

describe('Runbook: functions and least privilege', () => {
  const fn = (name: RunbookFunctionName) => resources[functionIds[name]]!.Properties;
  const actionsOf = (name: RunbookFunctionName) => {
    const roleId = fn(name).Role['Fn::GetAtt'][0];
    const policy = Object.values(resources).find((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === roleId))!;
    return policy.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: any; Condition?: any }[];
  };
  const set = (name: RunbookFunctionName) => new Set(actionsOf(name).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])));
  const base = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem', 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey', 'sns:Publish'];
  const secret = ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'];
  const paramRead = ['ssm:DescribeParameters', 'ssm:GetParameters', 'ssm:GetParameter', 'ssm:GetParameterHistory'];

  it('each function is allowed exactly the actions of its steps', () => {
    const expected: Record<RunbookFunctionName, string[]> = {
      probe: [...base, 'rds:DescribeDBInstances', ...secret, ...paramRead],
      fence: [...base, 'rds:DescribeDBInstances', ...secret, 'rds:ModifyDBInstance', 'rds:RebootDBInstance', 'rds:DescribeEvents', 'rds:AddTagsToResource', 'rds:RemoveTagsFromResource'],
      promote: [...base, 'rds:DescribeDBInstances', ...secret, 'rds:PromoteReadReplica'],
      repoint: [...base, 'rds:DescribeDBInstances', 'route53:ChangeResourceRecordSets', ...paramRead, 'ssm:PutParameter'],
      drain: [...base, 'ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:SendCommand'],
      rebuild: [...base, 'rds:DescribeDBInstances', ...paramRead, 'ssm:PutParameter', 'rds:CreateDBInstanceReadReplica', 'rds:AddTagsToResource', 'iam:PassRole', 'kms:CreateGrant', 'kms:DescribeKey'],
      finish: [...base, 'rds:DescribeDBInstances', ...secret],
    };
    for (const name of Object.keys(expected) as RunbookFunctionName[]) expect([...set(name)].sort(), name).toEqual([...new Set(expected[name])].sort());
  });

  it('scopes resources: cluster instances, the writer record, tagged workers; "*" only where AWS has no resource-level permission', () => {
    const star = new Set(['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'rds:DescribeEvents']);
    for (const name of Object.keys(functionIds) as RunbookFunctionName[]) {
      for (const s of actionsOf(name)) {
        const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
        expect(actions).not.toContain('*');
        if (s.Resource === '*') for (const a of actions) expect(star.has(a), `${name}: ${a} on *`).toBe(true);
      }
    }
    const repoint = actionsOf('repoint').find((s) => s.Action === 'route53:ChangeResourceRecordSets')!;
    expect(repoint.Condition).toEqual({
      'ForAllValues:StringEquals': {
        'route53:ChangeResourceRecordSetsNormalizedRecordNames': ['writer.prod.rds-failover.internal'],
        'route53:ChangeResourceRecordSetsRecordTypes': ['CNAME'],
        'route53:ChangeResourceRecordSetsActions': ['UPSERT'],
      },
    });
    const sendToInstances = actionsOf('drain').find((s) => s.Action === 'ssm:SendCommand' && JSON.stringify(s.Resource).includes('instance/*'))!;
    expect(sendToInstances.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/rds-failover:role': 'worker' } });
    // the only document it may send is the stack's drain document (never AWS-RunShellScript: any shell line)
    const sendDocuments = actionsOf('drain').filter((s) => s.Action === 'ssm:SendCommand' && JSON.stringify(s.Resource).includes(':document/'));
    const documentId = Object.keys(resources).find((id) => resources[id]!.Type === 'AWS::SSM::Document')!;
    expect(sendDocuments.map((s) => s.Resource)).toEqual([
      { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':ssm:eu-west-1:123456789012:document/', { Ref: documentId }]] },
    ]);
    const modify = actionsOf('fence').find((s) => s.Action === 'rds:ModifyDBInstance')!;
    expect(modify.Resource).toEqual({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:eu-west-1:123456789012:db:prod-*']] });
    const tagging = actionsOf('fence').find((s) => Array.isArray(s.Action) && s.Action.includes('rds:AddTagsToResource'))!;
    expect(tagging.Action).toEqual(['rds:AddTagsToResource', 'rds:RemoveTagsFromResource']);
    expect(tagging.Resource).toEqual(modify.Resource);
    expect(tagging.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/rds-failover:cluster': 'prod' },
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['rds-failover:fenced-at'] },
      Null: { 'aws:TagKeys': 'false' },
    });
  });

  it('actions that change an instance also require its cluster tag: db:prod-* alone would match a cluster named prod-eu', () => {
    const inCluster = { StringEquals: { 'aws:ResourceTag/rds-failover:cluster': 'prod' } };
    const clusterDbs = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':rds:eu-west-1:123456789012:db:prod-*']] };
    const changing = ['rds:ModifyDBInstance', 'rds:RebootDBInstance', 'rds:PromoteReadReplica', 'rds:AddTagsToResource', 'rds:RemoveTagsFromResource'];
    const found: string[] = [];
    for (const name of ['fence', 'promote'] as const) {
      for (const s of actionsOf(name)) {
        const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
        if (!actions.some((a) => changing.includes(a))) continue;
        found.push(...actions.map((a) => `${name}:${a}`));
        expect(s.Resource, `${name} ${actions}`).toEqual(clusterDbs);
        expect(s.Condition, `${name} ${actions}`).toMatchObject(inCluster);
      }
    }
    expect(found.sort()).toEqual(
      ['fence:rds:ModifyDBInstance', 'fence:rds:RebootDBInstance', 'fence:rds:AddTagsToResource', 'fence:rds:RemoveTagsFromResource', 'promote:rds:PromoteReadReplica'].sort(),
    );
    // RebootDBInstance only for the function that fences.
    for (const name of Object.keys(functionIds) as RunbookFunctionName[]) expect(set(name).has('rds:RebootDBInstance'), name).toBe(name === 'fence');
  });

  it('functions: ARM64, Node 22, X-Ray, in the VPC only when they talk to PostgreSQL, no secret in the environment', () => {
    for (const name of Object.keys(functionIds) as RunbookFunctionName[]) {
      const p = fn(name);
      expect(p.Architectures).toEqual(['arm64']);
      expect(p.Runtime).toBe('nodejs22.x');
      expect(p.TracingConfig).toEqual({ Mode: 'Active' });
      const inVpc = ['probe', 'fence', 'promote', 'finish'].includes(name);
      expect(p.VpcConfig !== undefined, name).toBe(inVpc);
      const vars = p.Environment.Variables as Record<string, unknown>;
      expect(vars.DB_SECRET_ARN !== undefined, name).toBe(inVpc);
      if (inVpc) expect(vars.NODE_EXTRA_CA_CERTS).toBe('/var/runtime/ca-cert.pem');
      expect(JSON.stringify(vars)).not.toMatch(/password/i);
      expect(vars.CLUSTER_ID).toBe('prod');
    }
    const documentId = Object.keys(resources).find((id) => resources[id]!.Type === 'AWS::SSM::Document')!;
    expect(fn('drain').Environment.Variables).toEqual({
      ...fn('drain').Environment.Variables,
      WORKER_TAG_KEY: 'rds-failover:role',
      WORKER_TAG_VALUE: 'worker',
      DRAIN_DOCUMENT: { Ref: documentId },
    });
    expect(fn('probe').Environment.Variables.DB_FENCE_DATABASES).toBe('app');
  });

  it('the lock/journal table is KMS-encrypted with point-in-time recovery', () => {
    const tables = Object.values(resources).filter((r) => r.Type === 'AWS::DynamoDB::Table');
    expect(tables).toHaveLength(1);
    expect(tables[0]!.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [expect.stringMatching(/^Key/), 'Arn'] } },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
  });
});

describe('Runbook: props validation', () => {
  it.each([
    [{ clusterId: 'Prod' }, "clusterId 'Prod' must be 2-32 lowercase letters, digits or '-'"],
    [{ writerRecordName: 'writer' }, "writerRecordName 'writer' must be a fully-qualified DNS name like writer.orders.internal"],
    [{ writerRecordTtlSeconds: 0 }, 'writerRecordTtlSeconds must be an integer from 1 to 300, got 0'],
    [{ backupRetentionDays: 0 }, 'backupRetentionDays must be an integer from 1 to 35 (replicas need backups on their source), got 0'],
    [{ workers: { tagKey: 'k', tagValue: 'v', bufferPath: 'data/b.db' } }, "workers.bufferPath 'data/b.db' must be an absolute path of letters, digits, '.', '_', '-', '/'"],
    [{ autoFailover: { confirmSeconds: 0.5 } }, 'autoFailover.confirmSeconds must be a whole number of seconds >= 1, got 0.5'],
    [{ timing: { pollSeconds: { promotion: 0 } } }, 'timing.pollSeconds.promotion must be a whole number of seconds >= 1, got 0'],
    [{ timing: { maxLagOnFailoverBytes: -1 } }, 'timing.maxLagOnFailoverBytes must be a whole number of bytes >= 0, got -1'],
    [{ fenceDatabases: ['app; drop'] }, 'fenceDatabases must be PostgreSQL database names, got ["app; drop"]'],
    [{ autoFailover: { eventCategories: [] } }, 'autoFailover.eventCategories must not be empty'],
    [{ timing: { timeoutSeconds: { drain: 665 } } }, 'timing.timeoutSeconds.drain (665 s) must exceed 665 s: a drain sent to a worker cut off just before'],
  ])('%j is refused: %s', (overrides, message) => {
    expect(() => buildRunbookStack(overrides as never)).toThrow(`Runbook Runbook: ${message}`);
  });
});

describe('Runbook: cdk-nag', () => {
  it('has no unacknowledged AwsSolutions finding', () => {
    const { app } = buildRunbookStack({}, { nag: true });
    expect(() => app.synth()).not.toThrow();
  });

  it('would report a finding (the check is live)', () => {
    const { app, stack } = buildRunbookStack({}, { nag: true });
    new secretsmanager.Secret(stack, 'Unrotated');
    expect(() => app.synth()).toThrow(/AwsSolutions-SMG4/);
  });
});

describe('Runbook: bundling', () => {
  it('bundles every runbook function with the local esbuild', () => {
    const { app, stack } = buildRunbookStack({}, { bundle: true });
    const assembly = app.synth();
    const t = Template.fromStack(stack);
    const code = (name: RunbookFunctionName) => {
      const key = (t.toJSON().Resources as Resources)[functionIds[name]]!.Properties.Code.S3Key as string;
      return readFileSync(join(assembly.directory, `asset.${key.replace(/\.zip$/, '')}`, 'index.js'), 'utf8');
    };
    expect(code('fence')).toContain('default_transaction_read_only');
    expect(code('drain')).toContain('DRAIN_DOCUMENT');
    expect(code('promote')).toContain('PromoteReadReplica');
  }, 240_000);
});
