import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Monitoring, resolveMonitoringSettings, type MonitoringProps } from '../../lib/monitoring.js';
import { DEFAULT_MONITOR_CONFIG } from '../../src/core/monitor-config.js';

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;

// Every synthesized app writes under one temp dir, removed at the end.
const outRoot = mkdtempSync(join(tmpdir(), 'monitoring-infra-'));
let apps = 0;
afterAll(() => rmSync(outRoot, { recursive: true, force: true }));

/** A small stack holding what the failover stack would hand to Monitoring. */
function build(overrides: Partial<MonitoringProps> = {}, options: { bundle?: boolean; nag?: boolean } = {}) {
  const app = new App({ outdir: join(outRoot, `app-${(apps += 1)}`), context: options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'MonitoringTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: 2,
    natGateways: 0,
    subnetConfiguration: [{ name: 'workers', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    restrictDefaultSecurityGroup: false,
  });
  Validations.of(vpc).acknowledge({ id: 'AwsSolutions-VPC7', reason: 'Test scaffolding: the real stack has flow logs.' });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  const dbSecret = new secretsmanager.Secret(stack, 'DbSecret', { encryptionKey: key });
  Validations.of(dbSecret).acknowledge({ id: 'AwsSolutions-SMG4', reason: 'Test scaffolding: the real stack rotates the credentials.' });
  const controller = new ec2.SecurityGroup(stack, 'Controller', { vpc, allowAllOutbound: true });
  const monitoring = new Monitoring(stack, 'Monitoring', {
    clusterId: 'prod',
    vpc,
    dbInstanceIds: ['prod-a', 'prod-b', 'prod-c'],
    dbCredentialsSecret: dbSecret,
    dbClientSecurityGroup: controller,
    key,
    ...overrides,
  });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, monitoring, key, dbSecret, controller };
}

let fixture: ReturnType<typeof build>;
let template: Template;
let resources: Resources;
const idOf = (type: string, pathPart: string) => {
  const found = Object.entries(resources).filter(([id, r]) => r.Type === type && id.includes(pathPart));
  if (found.length !== 1) throw new Error(`expected one ${type} with '${pathPart}' in its id, found ${found.map(([id]) => id).join(', ') || 'none'}`);
  return found[0]![0];
};

beforeAll(() => {
  fixture = build();
  template = Template.fromStack(fixture.stack);
  resources = template.toJSON().Resources;
});

describe('Monitoring: alarms', () => {
  const alarms = () => Object.values(resources).filter((r) => r.Type === 'AWS::CloudWatch::Alarm');
  const byName = (name: string) => {
    const alarm = alarms().find((a) => a.Properties.AlarmName === name);
    if (!alarm) throw new Error(`no alarm named ${name}; have ${alarms().map((a) => a.Properties.AlarmName).join(', ')}`);
    return alarm.Properties;
  };

  it('alarms on every AWS/RDS metric the issue names, per instance, routed to the topic both ways', () => {
    const topic = { Ref: idOf('AWS::SNS::Topic', 'MonitoringTopic') };
    const expected: [string, string, string, number, string][] = [
      ['replica-lag', 'ReplicaLag', 'Maximum', 120, 'GreaterThanOrEqualToThreshold'],
      ['slot-lag', 'OldestReplicationSlotLag', 'Maximum', DEFAULT_MONITOR_CONFIG.lag.critBytes, 'GreaterThanOrEqualToThreshold'],
      ['wal-disk', 'TransactionLogsDiskUsage', 'Maximum', 10 * 1024 ** 3, 'GreaterThanOrEqualToThreshold'],
      ['free-storage', 'FreeStorageSpace', 'Minimum', 10 * 1024 ** 3, 'LessThanOrEqualToThreshold'],
      ['cpu', 'CPUUtilization', 'Average', 90, 'GreaterThanOrEqualToThreshold'],
    ];
    for (const instance of ['prod-a', 'prod-b', 'prod-c']) {
      for (const [slug, metric, statistic, threshold, operator] of expected) {
        expect(byName(`rds-failover-prod-${slug}-${instance}`)).toMatchObject({
          Namespace: 'AWS/RDS',
          MetricName: metric,
          Dimensions: [{ Name: 'DBInstanceIdentifier', Value: instance }],
          Statistic: statistic,
          Period: 60,
          Threshold: threshold,
          ComparisonOperator: operator,
          EvaluationPeriods: 5,
          DatapointsToAlarm: 5,
          TreatMissingData: 'notBreaching',
          AlarmActions: [topic],
          OKActions: [topic],
        });
      }
    }
  });

  it('alarms on the custom lag metrics per replica with the CRIT thresholds', () => {
    expect(byName('rds-failover-prod-lag-seconds-prod-b')).toMatchObject({
      Namespace: 'RdsFailover',
      MetricName: 'ReplicationLagSeconds',
      Dimensions: [
        { Name: 'ClusterId', Value: 'prod' },
        { Name: 'ReplicaId', Value: 'prod-b' },
      ],
      Statistic: 'Maximum',
      Threshold: 120,
      AlarmDescription: 'critical: ReplicationLagSeconds of prod-b at or above 120 s for 5 min',
    });
    expect(byName('rds-failover-prod-lag-bytes-prod-c')).toMatchObject({ MetricName: 'ReplicationLagBytes', Threshold: DEFAULT_MONITOR_CONFIG.lag.critBytes });
  });

  it('alarms on the worker buffer backlog of every worker with Metrics Insights queries', () => {
    expect(byName('rds-failover-prod-buffer-backlog-age')).toMatchObject({
      Metrics: [
        {
          Expression: `SELECT MAX(BufferOldestPendingAgeSeconds) FROM SCHEMA("RdsFailover", ClusterId, WorkerId) WHERE ClusterId = 'prod'`,
          Period: 60,
          ReturnData: true,
        },
      ],
      Threshold: 300,
      EvaluationPeriods: 3,
    });
    expect(byName('rds-failover-prod-buffer-backlog-rows').Metrics[0].Expression).toBe(`SELECT MAX(BufferPendingRows) FROM SCHEMA("RdsFailover", ClusterId, WorkerId) WHERE ClusterId = 'prod'`);
  });

  it('watches the alerting path itself: monitor not running, monitor errors, undeliverable Slack messages', () => {
    expect(byName('rds-failover-prod-lag-monitor-not-running')).toMatchObject({
      MetricName: 'Invocations',
      Namespace: 'AWS/Lambda',
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      TreatMissingData: 'breaching',
    });
    expect(byName('rds-failover-prod-slack-dead-letters')).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [idOf('AWS::SQS::Queue', 'DeadLetterQueue'), 'QueueName'] } }],
      Threshold: 1,
      EvaluationPeriods: 1,
    });
    expect(alarms()).toHaveLength(3 * 7 + 2 + 3);
    for (const alarm of alarms()) expect(alarm.Properties.AlarmDescription).toMatch(/^(critical|warning): /);
  });
});

describe('Monitoring: schedule and functions', () => {
  it('runs the lag monitor every minute from EventBridge without retries (the next minute comes anyway)', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      State: 'ENABLED',
      Targets: [{ Arn: { 'Fn::GetAtt': [idOf('AWS::Lambda::Function', 'LagMonitorFunction'), 'Arn'] }, RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 } }],
    });
  });

  it('runs the lag monitor in the VPC with the database client security group and its configuration in the environment', () => {
    const fn = resources[idOf('AWS::Lambda::Function', 'LagMonitorFunction')]!.Properties;
    expect(fn.VpcConfig.SecurityGroupIds).toEqual([{ 'Fn::GetAtt': [idOf('AWS::EC2::SecurityGroup', 'Controller'), 'GroupId'] }]);
    expect(fn.Timeout).toBe(60);
    expect(fn.Architectures).toEqual(['arm64']);
    expect(fn.Runtime).toBe('nodejs22.x');
    expect(fn.TracingConfig).toEqual({ Mode: 'Active' });
    const env = fn.Environment.Variables;
    expect(env).toMatchObject({
      CLUSTER_ID: 'prod',
      DB_INSTANCE_IDS: '["prod-a","prod-b","prod-c"]',
      REPLICATION_NAMES: '{}',
      DB_SECRET_ARN: { Ref: idOf('AWS::SecretsManager::Secret', 'DbSecret') },
      DB_NAME: 'postgres',
      ALERT_TOPIC_ARN: { Ref: idOf('AWS::SNS::Topic', 'MonitoringTopic') },
      STATE_TABLE_NAME: { Ref: idOf('AWS::DynamoDB::Table', 'StateTable') },
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
    });
    // Ten-second samples across the minute: 0, 10, ... 50 s.
    expect(JSON.parse(env.MONITOR_CONFIG)).toEqual({ ...DEFAULT_MONITOR_CONFIG, sampleIntervalMs: 10_000, runDurationMs: 50_000 });
  });

  it('keeps the webhook URL in Secrets Manager only: the notifier gets the secret ARN, nothing in the template holds a URL', () => {
    const fn = resources[idOf('AWS::Lambda::Function', 'SlackNotifierFunction')]!.Properties;
    const secretId = idOf('AWS::SecretsManager::Secret', 'SlackWebhook');
    expect(fn.Environment.Variables.WEBHOOK_SECRET_ARN).toEqual({ Ref: secretId });
    expect(fn.VpcConfig).toBeUndefined();
    expect(JSON.stringify(template.toJSON())).not.toMatch(/hooks\.slack\.com/);
    const secret = resources[secretId]!.Properties;
    expect(secret.SecretString).toBeUndefined();
    expect(secret.KmsKeyId).toEqual({ 'Fn::GetAtt': [idOf('AWS::KMS::Key', 'Key'), 'Arn'] });
  });

  it('imports an existing webhook secret by ARN instead of creating one', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-slack-webhook-AbCdEf';
    const { stack } = build({ settings: { slack: { webhookSecretArn: arn, channel: '#db-alerts' } } });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::SecretsManager::Secret', 1); // the DB secret only
    const fns = Object.values(t.findResources('AWS::Lambda::Function')).map((r) => r.Properties.Environment?.Variables?.WEBHOOK_SECRET_ARN);
    expect(fns).toContain(arn);
    t.hasResourceProperties('AWS::SNS::Topic', { DisplayName: 'rds-failover prod alerts (#db-alerts)' });
  });

  it('subscribes the notifier to the topic with a DLQ, retries failed deliveries twice, then sends them to the DLQ', () => {
    const dlqArn = { 'Fn::GetAtt': [idOf('AWS::SQS::Queue', 'DeadLetterQueue'), 'Arn'] };
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'lambda',
      TopicArn: { Ref: idOf('AWS::SNS::Topic', 'MonitoringTopic') },
      Endpoint: { 'Fn::GetAtt': [idOf('AWS::Lambda::Function', 'SlackNotifierFunction'), 'Arn'] },
      RedrivePolicy: { deadLetterTargetArn: dlqArn },
    });
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: idOf('AWS::Lambda::Function', 'SlackNotifierFunction') },
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21600,
      DestinationConfig: { OnFailure: { Destination: dlqArn } },
    });
  });
});

describe('Monitoring: encryption', () => {
  const keyArn = () => ({ 'Fn::GetAtt': [idOf('AWS::KMS::Key', 'Key'), 'Arn'] });

  it('encrypts the topic, the DLQ, the state table and the log groups with the KMS key, and enforces TLS', () => {
    const topic = resources[idOf('AWS::SNS::Topic', 'MonitoringTopic')]!.Properties;
    expect(topic.KmsMasterKeyId).toEqual(keyArn());
    expect(resources[idOf('AWS::SQS::Queue', 'DeadLetterQueue')]!.Properties).toMatchObject({ KmsMasterKeyId: keyArn(), MessageRetentionPeriod: 1209600 });
    expect(resources[idOf('AWS::DynamoDB::Table', 'StateTable')]!.Properties).toMatchObject({
      KeySchema: [{ AttributeName: 'ClusterId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: keyArn() },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    const logGroups = Object.values(resources).filter((r) => r.Type === 'AWS::Logs::LogGroup');
    expect(logGroups).toHaveLength(2);
    for (const group of logGroups) expect(group.Properties.KmsKeyId).toEqual(keyArn());
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          Match.objectLike({ Sid: 'CloudWatchAlarmsPublish', Effect: 'Allow', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish' }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
  });

  it('lets CloudWatch and SNS use the key for the encrypted topic and DLQ, only from this account', () => {
    const policy = resources[idOf('AWS::KMS::Key', 'Key')]!.Properties.KeyPolicy.Statement as any[];
    expect(policy.find((s) => s.Sid === 'AlarmAndTopicEncryption')).toEqual({
      Sid: 'AlarmAndTopicEncryption',
      Effect: 'Allow',
      Principal: { Service: ['cloudwatch.amazonaws.com', 'sns.amazonaws.com'] },
      Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      Resource: '*',
      Condition: { StringEquals: { 'aws:SourceAccount': '123456789012' } },
    });
  });
});

describe('Monitoring: least-privilege IAM', () => {
  const statementsOf = (functionPart: string) => {
    const roleId = idOf('AWS::IAM::Role', `${functionPart}FunctionServiceRole`);
    const policies = Object.values(resources).filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((ref: any) => ref.Ref === roleId));
    return policies.flatMap((p) => p.Properties.PolicyDocument.Statement as any[]);
  };
  const actions = (s: any): string[] => [s.Action].flat();

  it('gives the lag monitor exactly what it calls, on its resources', () => {
    const statements = statementsOf('LagMonitor');
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid);
    expect(bySid('DescribeClusterInstances')).toMatchObject({
      Action: 'rds:DescribeDBInstances',
      Resource: ['prod-a', 'prod-b', 'prod-c'].map((id) => ({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:rds:eu-west-1:123456789012:db:${id}`]] })),
    });
    expect(bySid('AlertState')).toMatchObject({ Action: ['dynamodb:GetItem', 'dynamodb:PutItem'], Resource: { 'Fn::GetAtt': [idOf('AWS::DynamoDB::Table', 'StateTable'), 'Arn'] } });
    expect(bySid('PublishAlerts')).toMatchObject({ Action: 'sns:Publish', Resource: { Ref: idOf('AWS::SNS::Topic', 'MonitoringTopic') } });
    expect(bySid('ReadBufferBacklog')).toMatchObject({ Action: 'cloudwatch:GetMetricData', Resource: '*' });
    const secretRead = statements.find((s) => actions(s).includes('secretsmanager:GetSecretValue'));
    expect(secretRead.Resource).toEqual({ Ref: idOf('AWS::SecretsManager::Secret', 'DbSecret') });
    const all = statements.flatMap(actions);
    expect(all.filter((a) => a.endsWith('*') && !a.startsWith('xray:'))).toEqual(['kms:GenerateDataKey*']);
    expect(bySid('UseMonitoringKey')).toMatchObject({ Resource: { 'Fn::GetAtt': [idOf('AWS::KMS::Key', 'Key'), 'Arn'] } });
    expect(all).not.toContain('dynamodb:Scan');
    expect(all.some((a) => a.startsWith('sqs:'))).toBe(false);
    // Wildcard resources only where AWS offers no resource-level permission.
    for (const s of statements.filter((st) => st.Resource === '*')) expect(actions(s).every((a) => a.startsWith('xray:') || a === 'cloudwatch:GetMetricData')).toBe(true);
  });

  it('gives the Slack notifier the webhook secret and the DLQ, and nothing of the database or the topic', () => {
    const statements = statementsOf('SlackNotifier');
    const all = statements.flatMap(actions);
    const secretRead = statements.find((s) => actions(s).includes('secretsmanager:GetSecretValue'));
    expect(secretRead.Resource).toEqual({ Ref: idOf('AWS::SecretsManager::Secret', 'SlackWebhook') });
    expect(statements.find((s) => actions(s).includes('sqs:SendMessage')).Resource).toEqual({ 'Fn::GetAtt': [idOf('AWS::SQS::Queue', 'DeadLetterQueue'), 'Arn'] });
    for (const forbidden of ['rds:DescribeDBInstances', 'sns:Publish', 'dynamodb:PutItem', 'cloudwatch:GetMetricData']) expect(all).not.toContain(forbidden);
  });
});

describe('Monitoring: dashboard', () => {
  const body = () => {
    const dashboard = resources[idOf('AWS::CloudWatch::Dashboard', 'Dashboard')]!.Properties;
    expect(dashboard.DashboardName).toBe('rds-failover-prod');
    const parts = dashboard.DashboardBody['Fn::Join'][1] as unknown[];
    return parts.map((p) => (typeof p === 'string' ? p : JSON.stringify(p))).join('');
  };

  it('shows lag per replica in seconds and bytes, backlog per worker, and the alarm states', () => {
    const text = body();
    for (const id of ['prod-a', 'prod-b', 'prod-c']) {
      expect(text).toContain(`["RdsFailover","ReplicationLagSeconds","ClusterId","prod","ReplicaId","${id}",{"label":"${id}","period":60,"stat":"Maximum"}]`);
      expect(text).toContain(`["RdsFailover","ReplicationLagBytes","ClusterId","prod","ReplicaId","${id}"`);
    }
    expect(text).toContain(`SELECT MAX(BufferPendingRows) FROM SCHEMA(\\"RdsFailover\\", ClusterId, WorkerId) WHERE ClusterId = 'prod' GROUP BY WorkerId`);
    expect(text).toContain(`SELECT MAX(BufferOldestPendingAgeSeconds) FROM SCHEMA(\\"RdsFailover\\", ClusterId, WorkerId) WHERE ClusterId = 'prod' GROUP BY WorkerId`);
    expect(text).toContain('"type":"alarm"');
    expect(text).toContain('"title":"Alarm states"');
  });

  it('adds failover executions and a failed-execution alarm for the state machine', () => {
    const { stack, monitoring } = build();
    const sm = sfn.StateMachine.fromStateMachineArn(stack, 'Runbook', 'arn:aws:states:eu-west-1:123456789012:stateMachine:prod-failover');
    monitoring.addFailoverStateMachine(sm);
    expect(() => monitoring.addFailoverStateMachine(sm)).toThrow('addFailoverStateMachine was already called');
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'rds-failover-prod-failover-execution-failed',
      Namespace: 'AWS/States',
      MetricName: 'ExecutionsFailed',
      Dimensions: [{ Name: 'StateMachineArn', Value: 'arn:aws:states:eu-west-1:123456789012:stateMachine:prod-failover' }],
      Threshold: 1,
    });
    const dashboard = Object.values(t.findResources('AWS::CloudWatch::Dashboard'))[0]!.Properties.DashboardBody;
    const text = JSON.stringify(dashboard);
    for (const metric of ['ExecutionsStarted', 'ExecutionsSucceeded', 'ExecutionsFailed', 'ExecutionsAborted', 'ExecutionsTimedOut']) expect(text).toContain(metric);
  });
});

describe('Monitoring: configuration', () => {
  it('applies settings to the schedule, the sampling, the thresholds and the alarms', () => {
    const { stack } = build({ settings: { scheduleMinutes: 2, sampleIntervalSeconds: 15, lag: { warnSeconds: 10, critSeconds: 45 }, alarms: { evaluationMinutes: 3 }, alarmEmails: ['oncall@example.com'] } });
    const t = Template.fromStack(stack);
    t.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(2 minutes)' });
    t.hasResourceProperties('AWS::Lambda::Function', { Timeout: 120, Environment: { Variables: Match.objectLike({ MONITOR_CONFIG: Match.stringLikeRegexp('"sampleIntervalMs":15000,"runDurationMs":105000') }) } });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { AlarmName: 'rds-failover-prod-replica-lag-prod-a', Threshold: 45, EvaluationPeriods: 3 });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'oncall@example.com' });
  });

  it('rejects bad settings naming every field and the expected form', () => {
    let message = '';
    try {
      resolveMonitoringSettings(
        { lag: { warnSeconds: 200, critSeconds: 100 }, scheduleMinutes: 0, sampleIntervalSeconds: 90, slack: { webhookSecretArn: 'https://hooks.slack.com/services/x' }, alarms: { cpuUtilizationPercent: 150 }, colour: 'red' },
        'prod',
      );
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('monitoring.colour: unknown field');
    expect(message).toContain('monitoring.scheduleMinutes: expected an integer from 1 to 15, got 0');
    expect(message).toContain('monitoring.sampleIntervalSeconds: expected an integer from 1 to 60, got 90');
    expect(message).toContain('monitoring.lag: warnSeconds (200) must be below critSeconds (100)');
    expect(message).toContain('monitoring.slack.webhookSecretArn: expected a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), never the webhook URL itself');
    expect(message).toContain('monitoring.alarms.cpuUtilizationPercent: expected an integer from 1 to 100, got 150');
  });

  it('rejects bad props in the constructor', () => {
    expect(() => build({ dbInstanceIds: [] })).toThrow('Monitoring Monitoring: dbInstanceIds must name at least one DB instance');
    expect(() => build({ clusterId: 'Prod_1' })).toThrow("clusterId 'Prod_1' must be a lowercase letter");
    expect(() => build({ replicationNames: { 'prod-z': 'x' } })).toThrow("replicationNames: 'prod-z' is not one of dbInstanceIds");
  });
});

describe('Monitoring: cdk-nag', () => {
  it('has no unacknowledged AwsSolutions finding', () => {
    const { app } = build({}, { nag: true });
    // Synthesis fails with the report when a finding is not acknowledged.
    expect(() => app.synth()).not.toThrow();
  });

  it('would report a finding (the check is live)', () => {
    const { app, stack } = build({}, { nag: true });
    new secretsmanager.Secret(stack, 'Unrotated');
    expect(() => app.synth()).toThrow(/AwsSolutions-SMG4/);
  });
});

describe('Monitoring: bundling', () => {
  it('bundles both handlers with the local esbuild', () => {
    const { app, stack } = build({}, { bundle: true });
    const assembly = app.synth();
    const t = Template.fromStack(stack);
    const codeOf = (part: string) => {
      const fn = Object.entries(t.findResources('AWS::Lambda::Function')).find(([id]) => id.includes(part))![1];
      const key = fn.Properties.Code.S3Key as string;
      return readFileSync(join(assembly.directory, `asset.${key.replace(/\.zip$/, '')}`, 'index.js'), 'utf8');
    };
    const lagMonitor = codeOf('LagMonitorFunction');
    expect(lagMonitor).toContain('pg_stat_replication');
    expect(lagMonitor).toContain('ReplicationLagSeconds');
    const notifier = codeOf('SlackNotifierFunction');
    expect(notifier).toContain('hooks.slack.com');
    expect(notifier).not.toContain('pg_stat_replication');
  });
});
