import { ArnFormat, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as destinations from 'aws-cdk-lib/aws-lambda-destinations';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ControllerFunction, RDS_CA_ENVIRONMENT } from './controller-function.js';
import { BufferMetric, Dimension, LagMetric, METRIC_NAMESPACE } from '../src/core/metric-names.js';
import { resolveMonitorConfig, type MonitorConfig } from '../src/core/monitor-config.js';
import { LagMonitorEnv, SlackNotifierEnv } from '../src/core/monitor-environment.js';

const GiB = 1024 ** 3;

/**
 * The `monitoring` section of the configuration (JSON-friendly). Every field is optional; defaults below.
 * Thresholds are shared by the lag monitor (Slack alerts, sub-minute) and the CloudWatch alarms (backstop).
 */
export interface MonitoringSettingsInput {
  /** Replication lag thresholds. @default { warnSeconds: 30, critSeconds: 120, warnBytes: 64 MiB, critBytes: 512 MiB } */
  readonly lag?: { readonly warnSeconds?: number; readonly critSeconds?: number; readonly warnBytes?: number; readonly critBytes?: number };
  /** Worker buffer backlog thresholds. @default { warnOldestPendingSeconds: 60, critOldestPendingSeconds: 300, warnPendingRows: 10000, critPendingRows: 100000 } */
  readonly backlog?: {
    readonly warnOldestPendingSeconds?: number;
    readonly critOldestPendingSeconds?: number;
    readonly warnPendingRows?: number;
    readonly critPendingRows?: number;
  };
  /** Hysteresis: consecutive samples a new replica state must hold before it is adopted. @default 3 */
  readonly samplesToChange?: number;
  /** Seconds between two lag samples (1-60, below the schedule period). @default 10 */
  readonly sampleIntervalSeconds?: number;
  /** The lag monitor runs every this many minutes (1-15) and samples throughout. @default 1 */
  readonly scheduleMinutes?: number;
  /** Reminder while a replica stays not OK, minutes. @default 30 */
  readonly reminderMinutes?: number;
  readonly slack?: {
    /** ARN of an existing secret holding the webhook URL. @default - a new, empty secret: set its value after deploying */
    readonly webhookSecretArn?: string;
    /** The channel the webhook posts to, for people reading the topic and the docs (a webhook is bound to one channel). @default - none */
    readonly channel?: string;
  };
  /** E-mail addresses subscribed to the alert topic: a path that does not depend on Slack. @default [] */
  readonly alarmEmails?: readonly string[];
  readonly alarms?: {
    /** AWS/RDS ReplicaLag alarm threshold, seconds. @default lag.critSeconds */
    readonly replicaLagSeconds?: number;
    /** AWS/RDS OldestReplicationSlotLag alarm threshold, bytes. @default lag.critBytes */
    readonly oldestReplicationSlotLagBytes?: number;
    /** AWS/RDS TransactionLogsDiskUsage alarm threshold, bytes. @default 10 GiB */
    readonly transactionLogsDiskUsageBytes?: number;
    /** AWS/RDS FreeStorageSpace alarm when at or below, bytes. @default 10 GiB */
    readonly freeStorageSpaceBytes?: number;
    /** AWS/RDS CPUUtilization alarm threshold, percent. @default 90 */
    readonly cpuUtilizationPercent?: number;
    /** Consecutive one-minute periods a metric must breach before an alarm fires. @default 5 */
    readonly evaluationMinutes?: number;
  };
  /** CloudWatch dashboard name. @default rds-failover-<clusterId> */
  readonly dashboardName?: string;
}

export interface MonitoringAlarmSettings {
  readonly replicaLagSeconds: number;
  readonly oldestReplicationSlotLagBytes: number;
  readonly transactionLogsDiskUsageBytes: number;
  readonly freeStorageSpaceBytes: number;
  readonly cpuUtilizationPercent: number;
  readonly evaluationMinutes: number;
}

export interface MonitoringSettings {
  /** What the lag monitor runs with (passed to it as MONITOR_CONFIG). */
  readonly monitor: MonitorConfig;
  readonly scheduleMinutes: number;
  readonly slack: { readonly webhookSecretArn?: string; readonly channel?: string };
  readonly alarmEmails: readonly string[];
  readonly alarms: MonitoringAlarmSettings;
  readonly dashboardName: string;
}

/**
 * Validates the `monitoring` settings and fills the defaults. Throws one error listing every problem with its
 * path (`monitoring.lag.warnSeconds: ...`) and the expected form.
 */
export function resolveMonitoringSettings(input: unknown, clusterId: string, path = 'monitoring'): MonitoringSettings {
  const errors: string[] = [];
  const raw = (input ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${path}: expected an object`);
  const known = ['lag', 'backlog', 'samplesToChange', 'sampleIntervalSeconds', 'scheduleMinutes', 'reminderMinutes', 'slack', 'alarmEmails', 'alarms', 'dashboardName'];
  for (const key of Object.keys(raw)) if (!known.includes(key)) errors.push(`${path}.${key}: unknown field; expected one of ${known.join(', ')}`);

  const int = (value: unknown, at: string, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      errors.push(`${at}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value;
  };
  const scheduleMinutes = int(raw.scheduleMinutes, `${path}.scheduleMinutes`, 1, 1, 15);
  const sampleIntervalSeconds = int(raw.sampleIntervalSeconds, `${path}.sampleIntervalSeconds`, 10, 1, 60);
  if (sampleIntervalSeconds >= scheduleMinutes * 60) errors.push(`${path}.sampleIntervalSeconds (${sampleIntervalSeconds}) must be below the schedule period (${scheduleMinutes * 60} s)`);
  const reminderMinutes = int(raw.reminderMinutes, `${path}.reminderMinutes`, 30, 1, 24 * 60);

  let monitor: MonitorConfig | undefined;
  try {
    monitor = resolveMonitorConfig(
      {
        ...(raw.lag !== undefined ? { lag: raw.lag } : {}),
        ...(raw.backlog !== undefined ? { backlog: raw.backlog } : {}),
        ...(raw.samplesToChange !== undefined ? { samplesToChange: raw.samplesToChange } : {}),
        sampleIntervalMs: sampleIntervalSeconds * 1000,
        // Samples at 0, S, 2S ... up to one period minus S: evenly spaced across invocations.
        runDurationMs: Math.max(0, scheduleMinutes * 60_000 - sampleIntervalSeconds * 1000),
        reminderIntervalMs: reminderMinutes * 60_000,
      },
      path,
    );
  } catch (error) {
    errors.push(...(error as Error).message.split('\n  - ').slice(1));
  }

  const slackIn = (raw.slack ?? {}) as Record<string, unknown>;
  const slack: { webhookSecretArn?: string; channel?: string } = {};
  if (typeof slackIn !== 'object' || Array.isArray(slackIn)) errors.push(`${path}.slack: expected an object`);
  else {
    for (const key of Object.keys(slackIn)) if (!['webhookSecretArn', 'channel'].includes(key)) errors.push(`${path}.slack.${key}: unknown field; expected webhookSecretArn, channel`);
    if (slackIn.webhookSecretArn !== undefined) {
      if (typeof slackIn.webhookSecretArn !== 'string' || !/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/.test(slackIn.webhookSecretArn)) {
        errors.push(`${path}.slack.webhookSecretArn: expected a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>), never the webhook URL itself`);
      } else slack.webhookSecretArn = slackIn.webhookSecretArn;
    }
    if (slackIn.channel !== undefined) {
      if (typeof slackIn.channel !== 'string' || !/^#?[a-z0-9][a-z0-9._-]{0,79}$/.test(slackIn.channel)) errors.push(`${path}.slack.channel: expected a Slack channel name like #db-alerts`);
      else slack.channel = slackIn.channel;
    }
  }

  const emails = raw.alarmEmails ?? [];
  if (!Array.isArray(emails) || !emails.every((e) => typeof e === 'string' && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e))) {
    errors.push(`${path}.alarmEmails: expected a list of e-mail addresses`);
  }

  const alarmsIn = (raw.alarms ?? {}) as Record<string, unknown>;
  const alarmKnown = ['replicaLagSeconds', 'oldestReplicationSlotLagBytes', 'transactionLogsDiskUsageBytes', 'freeStorageSpaceBytes', 'cpuUtilizationPercent', 'evaluationMinutes'];
  for (const key of Object.keys(alarmsIn)) if (!alarmKnown.includes(key)) errors.push(`${path}.alarms.${key}: unknown field; expected one of ${alarmKnown.join(', ')}`);
  const lagDefaults = monitor?.lag ?? resolveMonitorConfig().lag;
  const big = Number.MAX_SAFE_INTEGER;
  const alarms: MonitoringAlarmSettings = {
    replicaLagSeconds: int(alarmsIn.replicaLagSeconds, `${path}.alarms.replicaLagSeconds`, Math.ceil(lagDefaults.critSeconds), 1, 86_400),
    oldestReplicationSlotLagBytes: int(alarmsIn.oldestReplicationSlotLagBytes, `${path}.alarms.oldestReplicationSlotLagBytes`, lagDefaults.critBytes, 1, big),
    transactionLogsDiskUsageBytes: int(alarmsIn.transactionLogsDiskUsageBytes, `${path}.alarms.transactionLogsDiskUsageBytes`, 10 * GiB, 1, big),
    freeStorageSpaceBytes: int(alarmsIn.freeStorageSpaceBytes, `${path}.alarms.freeStorageSpaceBytes`, 10 * GiB, 1, big),
    cpuUtilizationPercent: int(alarmsIn.cpuUtilizationPercent, `${path}.alarms.cpuUtilizationPercent`, 90, 1, 100),
    evaluationMinutes: int(alarmsIn.evaluationMinutes, `${path}.alarms.evaluationMinutes`, 5, 1, 60),
  };

  const dashboardName = raw.dashboardName ?? `rds-failover-${clusterId}`;
  if (typeof dashboardName !== 'string' || !/^[A-Za-z0-9_-]{1,255}$/.test(dashboardName)) errors.push(`${path}.dashboardName: expected 1-255 of A-Z a-z 0-9 - _`);

  if (errors.length > 0 || !monitor) throw new Error(`invalid monitoring settings:\n  - ${errors.join('\n  - ')}`);
  return { monitor, scheduleMinutes, slack, alarmEmails: emails as string[], alarms, dashboardName: dashboardName as string };
}

export interface MonitoringProps {
  /** Cluster id (lowercase letters, digits, dashes): metric dimension, names of alarms and dashboard. */
  readonly clusterId: string;
  readonly vpc: ec2.IVpc;
  /**
   * Subnets for the lag monitor (they must reach the database and the endpoints of Secrets Manager, RDS,
   * SNS, CloudWatch monitoring and the DynamoDB gateway).
   * @default - the VPC's private isolated subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Every DB instance of the cluster (primary and replicas): the monitor finds the primary by asking them. */
  readonly dbInstanceIds: readonly string[];
  /**
   * application_name each instance has in the primary's pg_stat_replication, where it is not the instance id.
   * @default - the instance id
   */
  readonly replicationNames?: Readonly<Record<string, string>>;
  /** Secret with the monitoring user's credentials ({"username","password"}; pg_monitor is enough). */
  readonly dbCredentialsSecret: secretsmanager.ISecret;
  /**
   * Database to connect to.
   * @default 'postgres'
   */
  readonly databaseName?: string;
  /** Security group the database accepts on 5432 (the controller group). */
  readonly dbClientSecurityGroup: ec2.ISecurityGroup;
  /** Encrypts the topic, the DLQ, the state table and the webhook secret it creates. */
  readonly key: kms.IKey;
  /**
   * Encrypts the Lambdas' log groups (its policy must allow logs.<region>.amazonaws.com).
   * @default - `key`
   */
  readonly logKey?: kms.IKey;
  /**
   * The `monitoring` configuration section; validated here (see MonitoringSettingsInput for fields and defaults).
   * @default - all defaults
   */
  readonly settings?: MonitoringSettingsInput | Readonly<Record<string, unknown>>;
  /**
   * The worker instances' ids (their WorkerId dimension): one alarm each on WorkerUnconfirmed, raised by a failover
   * the worker has not confirmed and cleared by the worker's agent once it has.
   * @default - no per-worker alarms
   */
  readonly workerIds?: readonly string[];
  /**
   * The failover state machine, for the dashboard and a failed-execution alarm (or call addFailoverStateMachine).
   * @default - none
   */
  readonly failoverStateMachine?: sfn.IStateMachine;
}

type Severity = 'critical' | 'warning';

/**
 * Replication-lag monitoring and alerting for one cluster: the lag-monitor Lambda (every minute, sampling every
 * S seconds), the alert topic (KMS), the slack-notifier Lambda with its DLQ, CloudWatch alarms on RDS, lag,
 * backlog and the alerting path itself, and a dashboard.
 */
export class Monitoring extends Construct {
  readonly settings: MonitoringSettings;
  /** Publish runbook events here (SnsNotifier); the slack-notifier delivers them. */
  readonly topic: sns.Topic;
  readonly deadLetterQueue: sqs.Queue;
  readonly stateTable: dynamodb.Table;
  readonly webhookSecret: secretsmanager.ISecret;
  readonly lagMonitor: ControllerFunction;
  readonly slackNotifier: ControllerFunction;
  readonly schedule: events.Rule;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: cloudwatch.Alarm[] = [];
  private readonly clusterId: string;
  private readonly alarmAction: cwActions.SnsAction;
  private readonly alarmWidget: cloudwatch.AlarmStatusWidget;
  private stateMachineAdded = false;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    validateProps(id, props);
    this.clusterId = props.clusterId;
    const settings = (this.settings = resolveMonitoringSettings(props.settings, props.clusterId));
    const stack = Stack.of(this);
    const key = props.key;

    // Service principals that encrypt with the key: CloudWatch (alarm -> topic) and SNS (topic -> DLQ).
    // Takes effect when the key is defined in this app; an imported key's policy must already allow them.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AlarmAndTopicEncryption',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com'), new iam.ServicePrincipal('sns.amazonaws.com')],
        // The actions AWS documents for alarm and SNS sources of encrypted topics/queues.
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );

    this.topic = new sns.Topic(this, 'Topic', { masterKey: key, enforceSSL: true, displayName: `rds-failover ${props.clusterId} alerts${settings.slack.channel ? ` (${settings.slack.channel})` : ''}` });
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account }, ArnLike: { 'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*` } },
      }),
    );
    for (const email of settings.alarmEmails) this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    this.alarmAction = new cwActions.SnsAction(this.topic);

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({ id: 'AwsSolutions-SQS3', reason: 'This queue is the dead-letter queue of the Slack notifier; an alarm fires on its first message.' });

    this.stateTable = new dynamodb.Table(this, 'StateTable', {
      partitionKey: { name: 'ClusterId', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      // Losing it only means the next run starts with fresh hysteresis and may re-announce an ongoing alert.
      removalPolicy: RemovalPolicy.DESTROY,
    });

    if (settings.slack.webhookSecretArn) {
      this.webhookSecret = secretsmanager.Secret.fromSecretCompleteArn(this, 'SlackWebhook', settings.slack.webhookSecretArn);
    } else {
      const secret = new secretsmanager.Secret(this, 'SlackWebhook', {
        description: `Slack incoming-webhook URL for rds-failover ${props.clusterId}: set it with put-secret-value (see docs/monitoring.md)`,
        encryptionKey: key,
      });
      Validations.of(secret).acknowledge({ id: 'AwsSolutions-SMG4', reason: 'A Slack webhook URL is issued by Slack and cannot be rotated by a Lambda; replace it with put-secret-value when Slack reissues it.' });
      this.webhookSecret = secret;
    }

    const logKey = props.logKey ?? key;
    this.lagMonitor = new ControllerFunction(this, 'LagMonitor', {
      handlerDir: 'lag-monitor',
      description: `rds-failover ${props.clusterId}: replication lag sampling every ${settings.monitor.sampleIntervalMs / 1000} s, alerts to SNS`,
      logKey,
      vpc: props.vpc,
      vpcSubnets: props.vpcSubnets,
      securityGroups: [props.dbClientSecurityGroup],
      // One run per schedule period: the next never overlaps it (and the state table's version check guards anyway).
      timeout: Duration.minutes(settings.scheduleMinutes),
      environment: {
        [LagMonitorEnv.ClusterId]: props.clusterId,
        [LagMonitorEnv.DbInstanceIds]: JSON.stringify(props.dbInstanceIds),
        [LagMonitorEnv.ReplicationNames]: JSON.stringify(props.replicationNames ?? {}),
        [LagMonitorEnv.DbSecretArn]: props.dbCredentialsSecret.secretArn,
        [LagMonitorEnv.DbName]: props.databaseName ?? 'postgres',
        [LagMonitorEnv.TopicArn]: this.topic.topicArn,
        [LagMonitorEnv.StateTable]: this.stateTable.tableName,
        [LagMonitorEnv.MonitorConfig]: JSON.stringify(settings.monitor),
        ...RDS_CA_ENVIRONMENT,
        POWERTOOLS_METRICS_NAMESPACE: METRIC_NAMESPACE,
        POWERTOOLS_SERVICE_NAME: 'lag-monitor',
      },
    });
    this.grantLagMonitor(props, key);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: settings.dashboardName, defaultInterval: Duration.hours(3) });
    const dashboardUrl = `https://${stack.region}.console.aws.amazon.com/cloudwatch/home?region=${stack.region}#dashboards/dashboard/${settings.dashboardName}`;

    this.slackNotifier = new ControllerFunction(this, 'SlackNotifier', {
      handlerDir: 'slack-notifier',
      description: `rds-failover ${props.clusterId}: alert topic -> Slack (Block Kit); undeliverable messages to the DLQ`,
      logKey,
      timeout: Duration.seconds(60),
      environment: {
        [SlackNotifierEnv.ClusterId]: props.clusterId,
        [SlackNotifierEnv.WebhookSecretArn]: this.webhookSecret.secretArn,
        [SlackNotifierEnv.DashboardUrl]: dashboardUrl,
        POWERTOOLS_SERVICE_NAME: 'slack-notifier',
      },
    });
    this.webhookSecret.grantRead(this.slackNotifier.function);
    // Failed deliveries: two asynchronous retries by Lambda, then the DLQ; SNS's own delivery failures go there too.
    this.slackNotifier.function.configureAsyncInvoke({ onFailure: new destinations.SqsDestination(this.deadLetterQueue), retryAttempts: 2, maxEventAge: Duration.hours(6) });
    this.topic.addSubscription(new subscriptions.LambdaSubscription(this.slackNotifier.function, { deadLetterQueue: this.deadLetterQueue }));
    acknowledgeFunction(this.slackNotifier, [
      {
        id: 'AwsSolutions-IAM5[Action::kms:ReEncrypt*]',
        reason: "Added by CDK's SqsDestination grant so Lambda can write failed events to the KMS-encrypted DLQ; limited to that one key.",
      },
      {
        id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]',
        reason: "Added by CDK's SqsDestination grant so Lambda can write failed events to the KMS-encrypted DLQ; limited to that one key.",
      },
    ]);

    this.schedule = new events.Rule(this, 'Schedule', {
      description: `rds-failover ${props.clusterId}: run the lag monitor every ${settings.scheduleMinutes} min`,
      schedule: events.Schedule.rate(Duration.minutes(settings.scheduleMinutes)),
      targets: [new targets.LambdaFunction(this.lagMonitor.function, { retryAttempts: 0, maxEventAge: Duration.minutes(settings.scheduleMinutes) })],
    });

    this.alarmWidget = this.createAlarms(props);
    this.buildDashboard(props);
    if (props.failoverStateMachine) this.addFailoverStateMachine(props.failoverStateMachine);
  }

  /** Adds failover executions to the dashboard and an alarm on failed executions. Call once. */
  addFailoverStateMachine(stateMachine: sfn.IStateMachine): void {
    if (this.stateMachineAdded) throw new Error(`Monitoring ${this.node.id}: addFailoverStateMachine was already called`);
    this.stateMachineAdded = true;
    const minute = { period: Duration.minutes(1), statistic: cloudwatch.Stats.SUM };
    const failed = this.alarm('FailoverExecutionFailed', 'failover-execution-failed', 'critical', 'a failover runbook execution failed: its Catch path left a recoverable state (see docs/runbook.md)', stateMachine.metricFailed(minute), {
      threshold: 1,
      evaluationPeriods: 1,
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Failover alarm', alarms: [failed], width: 6, height: 6 }),
      new cloudwatch.GraphWidget({
        title: 'Failover executions',
        width: 18,
        left: [stateMachine.metricStarted(minute), stateMachine.metricSucceeded(minute), stateMachine.metricFailed(minute), stateMachine.metricAborted(minute), stateMachine.metricTimedOut(minute)],
      }),
    );
  }

  /**
   * Alarms on a Data Lifecycle Manager policy (AWS/EBS metrics, DLMPolicyId dimension): a failed pre-script means the
   * snapshots were only crash-consistent (DLM takes them anyway), a failed snapshot means none was taken.
   */
  addSnapshotPolicy(policyId: string): void {
    const hourly = (metricName: string) =>
      new cloudwatch.Metric({ namespace: 'AWS/EBS', metricName, dimensionsMap: { DLMPolicyId: policyId }, period: Duration.hours(1), statistic: cloudwatch.Stats.SUM });
    this.alarm('SnapshotPreScriptFailed', 'snapshot-pre-script-failed', 'warning', 'the buffer checkpoint before a DLM snapshot failed: that snapshot is only crash-consistent (docs/buffer.md)', hourly('PreScriptFailed'), {
      threshold: 1,
      evaluationPeriods: 1,
    });
    this.alarm('SnapshotCreateFailed', 'snapshot-create-failed', 'critical', 'DLM failed to snapshot a worker buffer volume: the newest restorable buffer is older than the schedule says', hourly('SnapshotsCreateFailed'), {
      threshold: 1,
      evaluationPeriods: 1,
    });
  }

  private grantLagMonitor(props: MonitoringProps, key: kms.IKey): void {
    const fn = this.lagMonitor.function;
    const stack = Stack.of(this);
    props.dbCredentialsSecret.grantRead(fn);
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        sid: 'DescribeClusterInstances',
        actions: ['rds:DescribeDBInstances'],
        resources: props.dbInstanceIds.map((id) => stack.formatArn({ service: 'rds', resource: 'db', resourceName: id, arnFormat: ArnFormat.COLON_RESOURCE_NAME })),
      }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'AlertState', actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resources: [this.stateTable.tableArn] }));
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'PublishAlerts', actions: ['sns:Publish'], resources: [this.topic.topicArn] }));
    // SNS (publish to an encrypted topic) and DynamoDB (encrypted table) use the key on the function's behalf;
    // these are the actions AWS documents for an SSE-KMS topic publisher and a CMK table client.
    fn.addToRolePolicy(
      new iam.PolicyStatement({ sid: 'UseMonitoringKey', actions: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey'], resources: [key.keyArn] }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ sid: 'ReadBufferBacklog', actions: ['cloudwatch:GetMetricData'], resources: ['*'] }));
    acknowledgeFunction(this.lagMonitor, [
      { id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]', reason: 'Publishing to the KMS-encrypted topic and writing the encrypted state table; limited to the monitoring key.' },
    ]);
  }

  private alarm(
    id: string,
    slug: string,
    severity: Severity,
    description: string,
    metric: cloudwatch.IMetric,
    options: { threshold: number; evaluationPeriods: number; comparison?: cloudwatch.ComparisonOperator; missing?: cloudwatch.TreatMissingData },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      alarmName: `rds-failover-${this.clusterId}-${slug}`,
      // The slack-notifier reads the severity from this prefix.
      alarmDescription: `${severity}: ${description}`,
      metric,
      threshold: options.threshold,
      evaluationPeriods: options.evaluationPeriods,
      datapointsToAlarm: options.evaluationPeriods,
      comparisonOperator: options.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: options.missing ?? cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(this.alarmAction);
    alarm.addOkAction(this.alarmAction);
    this.alarms.push(alarm);
    return alarm;
  }

  private createAlarms(props: MonitoringProps): cloudwatch.AlarmStatusWidget {
    const { alarms: a, monitor } = this.settings;
    const n = a.evaluationMinutes;
    const minute = Duration.minutes(1);
    const rds = (metricName: string, instanceId: string, statistic: string) =>
      new cloudwatch.Metric({ namespace: 'AWS/RDS', metricName, dimensionsMap: { DBInstanceIdentifier: instanceId }, statistic, period: minute });
    for (const instanceId of props.dbInstanceIds) {
      // Every instance gets every alarm: roles change with failovers; a primary has no ReplicaLag data (not breaching).
      this.alarm(`ReplicaLag-${instanceId}`, `replica-lag-${instanceId}`, 'warning', `AWS/RDS ReplicaLag of ${instanceId} at or above ${a.replicaLagSeconds} s for ${n} min`, rds('ReplicaLag', instanceId, 'Maximum'), {
        threshold: a.replicaLagSeconds,
        evaluationPeriods: n,
      });
      this.alarm(
        `SlotLag-${instanceId}`,
        `slot-lag-${instanceId}`,
        'warning',
        `AWS/RDS OldestReplicationSlotLag of ${instanceId} at or above ${a.oldestReplicationSlotLagBytes} bytes for ${n} min: a slot holds WAL back`,
        rds('OldestReplicationSlotLag', instanceId, 'Maximum'),
        { threshold: a.oldestReplicationSlotLagBytes, evaluationPeriods: n },
      );
      this.alarm(
        `WalDisk-${instanceId}`,
        `wal-disk-${instanceId}`,
        'warning',
        `AWS/RDS TransactionLogsDiskUsage of ${instanceId} at or above ${a.transactionLogsDiskUsageBytes} bytes for ${n} min`,
        rds('TransactionLogsDiskUsage', instanceId, 'Maximum'),
        { threshold: a.transactionLogsDiskUsageBytes, evaluationPeriods: n },
      );
      this.alarm(`FreeStorage-${instanceId}`, `free-storage-${instanceId}`, 'critical', `AWS/RDS FreeStorageSpace of ${instanceId} at or below ${a.freeStorageSpaceBytes} bytes`, rds('FreeStorageSpace', instanceId, 'Minimum'), {
        threshold: a.freeStorageSpaceBytes,
        evaluationPeriods: n,
        comparison: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
      });
      this.alarm(`Cpu-${instanceId}`, `cpu-${instanceId}`, 'warning', `AWS/RDS CPUUtilization of ${instanceId} at or above ${a.cpuUtilizationPercent}% for ${n} min`, rds('CPUUtilization', instanceId, 'Average'), {
        threshold: a.cpuUtilizationPercent,
        evaluationPeriods: n,
      });
      // Backstop for the lag monitor's own alerts (which fire within about 30 s).
      this.alarm(`LagSeconds-${instanceId}`, `lag-seconds-${instanceId}`, 'critical', `ReplicationLagSeconds of ${instanceId} at or above ${monitor.lag.critSeconds} s for ${n} min`, this.lagMetric(LagMetric.Seconds, instanceId), {
        threshold: monitor.lag.critSeconds,
        evaluationPeriods: n,
      });
      this.alarm(`LagBytes-${instanceId}`, `lag-bytes-${instanceId}`, 'critical', `ReplicationLagBytes of ${instanceId} at or above ${monitor.lag.critBytes} bytes for ${n} min`, this.lagMetric(LagMetric.Bytes, instanceId), {
        threshold: monitor.lag.critBytes,
        evaluationPeriods: n,
      });
    }
    this.alarm('BacklogAge', 'buffer-backlog-age', 'critical', `a worker's oldest unsynced row is ${monitor.backlog.critOldestPendingSeconds} s old or more: its buffer is not draining`, this.backlogQuery(BufferMetric.OldestPendingAgeSeconds, false), {
      threshold: monitor.backlog.critOldestPendingSeconds,
      evaluationPeriods: 3,
    });
    this.alarm('BacklogRows', 'buffer-backlog-rows', 'warning', `a worker holds ${monitor.backlog.critPendingRows} or more unsynced rows`, this.backlogQuery(BufferMetric.PendingRows, false), {
      threshold: monitor.backlog.critPendingRows,
      evaluationPeriods: 3,
    });
    (props.workerIds ?? []).forEach((workerId, index) => {
      // Set to 1 by the runbook's verify step for a worker that did not confirm the new epoch, back to 0 by the worker's
      // agent once it has re-sent what it must and confirmed; with no data in between the alarm keeps its state.
      const metric = new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName: BufferMetric.WorkerUnconfirmed,
        dimensionsMap: { [Dimension.Cluster]: this.clusterId, [Dimension.Worker]: workerId },
        statistic: cloudwatch.Stats.MAXIMUM,
        period: minute,
      });
      this.alarm(`WorkerUnconfirmed${index + 1}`, `worker-${index + 1}-unconfirmed`, 'critical', `worker ${index + 1} has not confirmed the newest epoch after a failover: its agent has not re-sent what the failover may have lost (rds-failover status)`, metric, {
        threshold: 1,
        evaluationPeriods: 1,
        missing: cloudwatch.TreatMissingData.IGNORE,
      });
    });
    const scheduleMinutes = this.settings.scheduleMinutes;
    this.alarm('LagMonitorNotRunning', 'lag-monitor-not-running', 'critical', 'the lag monitor has not run: replication lag is not being watched', this.lagMonitor.function.metricInvocations({ period: Duration.minutes(Math.max(5, scheduleMinutes * 2)), statistic: cloudwatch.Stats.SUM }), {
      threshold: 1,
      evaluationPeriods: 1,
      comparison: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      missing: cloudwatch.TreatMissingData.BREACHING,
    });
    this.alarm('LagMonitorErrors', 'lag-monitor-errors', 'warning', 'the lag monitor failed three runs in a row (see its log group)', this.lagMonitor.function.metricErrors({ period: Duration.minutes(scheduleMinutes), statistic: cloudwatch.Stats.SUM }), {
      threshold: 1,
      evaluationPeriods: 3,
    });
    this.alarm('SlackDeadLetters', 'slack-dead-letters', 'critical', 'a message could not be delivered to Slack and waits in the dead-letter queue (check the webhook secret and Slack status)', this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: minute, statistic: cloudwatch.Stats.MAXIMUM }), {
      threshold: 1,
      evaluationPeriods: 1,
    });
    return new cloudwatch.AlarmStatusWidget({ title: 'Alarm states', alarms: [...this.alarms], width: 24, height: 6, sortBy: cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP });
  }

  /** `labelled` for graphs only: a label turns an alarm's metric into a metric-math form. */
  private lagMetric(metricName: string, replicaId: string, labelled = false): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: METRIC_NAMESPACE,
      metricName,
      dimensionsMap: { [Dimension.Cluster]: this.clusterId, [Dimension.Replica]: replicaId },
      statistic: cloudwatch.Stats.MAXIMUM,
      period: Duration.minutes(1),
      ...(labelled ? { label: replicaId } : {}),
    });
  }

  /** Metrics Insights over every worker of the cluster: the max (alarms) or one series per worker (graphs). */
  private backlogQuery(metricName: string, perWorker: boolean): cloudwatch.MathExpression {
    return new cloudwatch.MathExpression({
      expression: `SELECT MAX(${metricName}) FROM SCHEMA("${METRIC_NAMESPACE}", ${Dimension.Cluster}, ${Dimension.Worker}) WHERE ${Dimension.Cluster} = '${this.clusterId}'${perWorker ? ` GROUP BY ${Dimension.Worker}` : ''}`,
      period: Duration.minutes(1),
      label: perWorker ? '' : `max over workers`,
    });
  }

  private buildDashboard(props: MonitoringProps): void {
    const { monitor } = this.settings;
    const lag = (metricName: string) => props.dbInstanceIds.map((id) => this.lagMetric(metricName, id, true));
    this.dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown: `# rds-failover ${this.clusterId}\nReplication lag sampled every ${monitor.sampleIntervalMs / 1000} s by the lag monitor; alerts go to the SNS topic and Slack. WARN ${monitor.lag.warnSeconds} s / ${monitor.lag.warnBytes} B, CRIT ${monitor.lag.critSeconds} s / ${monitor.lag.critBytes} B.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Replication lag per replica (seconds)',
        width: 12,
        left: lag(LagMetric.Seconds),
        leftAnnotations: [
          { value: monitor.lag.warnSeconds, label: 'WARN', color: cloudwatch.Color.ORANGE },
          { value: monitor.lag.critSeconds, label: 'CRIT', color: cloudwatch.Color.RED },
        ],
        leftYAxis: { min: 0, label: 's', showUnits: false },
      }),
      new cloudwatch.GraphWidget({
        title: 'Replication lag per replica (bytes)',
        width: 12,
        left: lag(LagMetric.Bytes),
        leftAnnotations: [
          { value: monitor.lag.warnBytes, label: 'WARN', color: cloudwatch.Color.ORANGE },
          { value: monitor.lag.critBytes, label: 'CRIT', color: cloudwatch.Color.RED },
        ],
        leftYAxis: { min: 0 },
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({ title: 'Buffer backlog per worker (unsynced rows)', width: 12, left: [this.backlogQuery(BufferMetric.PendingRows, true)], leftYAxis: { min: 0 } }),
      new cloudwatch.GraphWidget({
        title: 'Buffer backlog per worker (oldest unsynced row, seconds)',
        width: 12,
        left: [this.backlogQuery(BufferMetric.OldestPendingAgeSeconds, true)],
        leftAnnotations: [{ value: monitor.backlog.critOldestPendingSeconds, label: 'CRIT', color: cloudwatch.Color.RED }],
        leftYAxis: { min: 0 },
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'AWS/RDS ReplicaLag',
        width: 12,
        left: props.dbInstanceIds.map((id) => new cloudwatch.Metric({ namespace: 'AWS/RDS', metricName: 'ReplicaLag', dimensionsMap: { DBInstanceIdentifier: id }, statistic: 'Maximum', period: Duration.minutes(1), label: id })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Alerting path',
        width: 12,
        left: [this.lagMonitor.function.metricInvocations({ period: Duration.minutes(1) }), this.lagMonitor.function.metricErrors({ period: Duration.minutes(1) }), this.slackNotifier.function.metricErrors({ period: Duration.minutes(1) })],
        right: [this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) })],
      }),
    );
    this.dashboard.addWidgets(this.alarmWidget);
  }
}

function validateProps(id: string, props: MonitoringProps): void {
  const errors: string[] = [];
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(props.clusterId)) errors.push(`clusterId '${props.clusterId}' must be a lowercase letter then up to 30 lowercase letters, digits or dashes`);
  if (props.dbInstanceIds.length === 0) errors.push('dbInstanceIds must name at least one DB instance (all of the cluster: primary and replicas)');
  for (const instanceId of props.dbInstanceIds) {
    if (!/^[a-zA-Z][a-zA-Z0-9-]{0,62}$/.test(instanceId) || instanceId.endsWith('-') || instanceId.includes('--')) {
      errors.push(`dbInstanceIds: '${instanceId}' is not a DB instance identifier (letter first, then letters, digits, single dashes; at most 63)`);
    }
  }
  if (new Set(props.dbInstanceIds).size !== props.dbInstanceIds.length) errors.push('dbInstanceIds must not repeat an identifier');
  for (const [instanceId, name] of Object.entries(props.replicationNames ?? {})) {
    if (!props.dbInstanceIds.includes(instanceId)) errors.push(`replicationNames: '${instanceId}' is not one of dbInstanceIds`);
    if (name === '') errors.push(`replicationNames.${instanceId} must not be empty`);
  }
  if (props.databaseName !== undefined && !/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/.test(props.databaseName)) errors.push(`databaseName '${props.databaseName}' is not a PostgreSQL database name`);
  if (errors.length > 0) throw new Error(`Monitoring ${id}: ${errors.join('; ')}`);
}

function acknowledgeFunction(fn: ControllerFunction, extra: { id: string; reason: string }[]): void {
  fn.acknowledgeFindings([
    { id: 'AwsSolutions-IAM5[Resource::*]', reason: 'X-Ray PutTraceSegments/PutTelemetryRecords and (lag monitor) cloudwatch:GetMetricData support no resource-level permissions.' },
    ...extra,
  ]);
}
