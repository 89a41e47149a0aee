import { DrainDocument, drainDocumentPropsErrors } from './drain-document.js';
import { DRAIN_DELIVERY_TIMEOUT_SECONDS } from '../src/core/drain-parameters.js';
import { ArnFormat, Duration, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as route53 from 'aws-cdk-lib/aws-route53';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { ControllerFunction, RDS_CA_ENVIRONMENT } from './controller-function.js';
import { ResourceTag, WORKER_ROLE } from '../src/core/resource-tags.js';
import { RUNBOOK_FUNCTIONS, RunbookEnvVar, type RunbookFunctionName } from '../src/core/runbook/lambda-environment.js';

/** Timing of the runbook in AWS (seconds: Step Functions waits whole seconds). Every field optional. */
export interface RunbookTiming {
  /** Lag guard: never promote a replica further behind than this without force. @default 1048576 (1 MiB, like Patroni) */
  readonly maxLagOnFailoverBytes?: number;
  /** The failover lock expires this long after the last step renewed it. @default 900 */
  readonly lockTtlSeconds?: number;
  /** Seconds between status checks while waiting. @default { catchUp: 2, promotion: 10, drain: 5, confirmations: 5, rebuild: 60 } */
  readonly pollSeconds?: { readonly catchUp?: number; readonly promotion?: number; readonly drain?: number; readonly confirmations?: number; readonly rebuild?: number };
  /**
   * Give up waiting after (confirmations: how long verify waits for every worker to confirm the new epoch before it
   * finishes with a warning). @default { catchUp: 300, promotion: 1800, drain: 900, confirmations: 300, rebuild: 7200 }
   */
  readonly timeoutSeconds?: {
    readonly catchUp?: number;
    readonly promotion?: number;
    readonly drain?: number;
    readonly confirmations?: number;
    readonly rebuild?: number;
  };
}

/** Starting a failover by itself on RDS failure events for the primary. */
export interface AutoFailoverProps {
  /** @default false: the rule exists but is DISABLED; an operator starts failovers */
  readonly enabled?: boolean;
  /** The primary must stay unreachable by probe this long before the failover starts. @default 30 */
  readonly confirmSeconds?: number;
  /** Seconds between two probes while confirming. @default 5 */
  readonly probeIntervalSeconds?: number;
  /** RDS event categories that start the confirmation. @default ['failure', 'availability', 'low storage'] */
  readonly eventCategories?: readonly string[];
}

/** How the drain reaches the worker agents (SSM Run Command). */
export interface RunbookWorkersProps {
  /** Tag key and value that mark this cluster's workers (besides rds-failover:role=worker, which every worker carries). */
  readonly tagKey: string;
  readonly tagValue: string;
  /** @default /usr/local/bin/rds-failover-agent */
  readonly agentCommand?: string;
  /** The buffer file on the worker's data volume. */
  readonly bufferPath: string;
  /** @default - the agent's default configuration */
  readonly configPath?: string;
  /** The agent daemon's systemd unit (SIGHUP before a drain). @default rds-failover-agent.service */
  readonly daemonUnit?: string;
  /** How long one worker's drain may run. @default 600 */
  readonly drainTimeoutSeconds?: number;
  /**
   * How many workers the drain must find (the stack's worker count): fewer fails the drain step instead of
   * silently skipping a worker that would never re-send its rows.
   * @default - any number (none found is a warning)
   */
  readonly expectedCount?: number;
}

export interface RunbookProps {
  readonly clusterId: string;
  readonly vpc: ec2.IVpc;
  /**
   * Subnets of the functions that talk to PostgreSQL.
   * @default - the VPC's private isolated subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** Security group allowed to reach the database port (the controller group). */
  readonly dbClientSecurityGroup: ec2.ISecurityGroup;
  readonly dbCredentialsSecret: secretsmanager.ISecret;
  /**
   * Database the runbook's functions connect to.
   * @default - the secret's dbname, else postgres
   */
  readonly databaseName?: string;
  /**
   * Application databases the fence sets read-only (the runbook's user must own them).
   * @default - every database the runbook's user owns
   */
  readonly fenceDatabases?: readonly string[];
  readonly hostedZone: route53.IHostedZone;
  /** Fully-qualified writer record the runbook UPSERTs, e.g. writer.orders.rds-failover.internal. */
  readonly writerRecordName: string;
  /**
   * TTL the runbook writes on the writer record (match the WriterEndpoint's).
   * @default 5
   */
  readonly writerRecordTtlSeconds?: number;
  readonly writerParameter: ssm.IStringParameter;
  readonly topologyParameter: ssm.IStringParameter;
  /** No-ingress security group the fence moves the old primary into. */
  readonly quarantineSecurityGroup: ec2.ISecurityGroup;
  /** Where runbook events go (the Slack notifier subscribes to it). */
  readonly notificationTopic: sns.ITopic;
  /** KMS key of the lock/journal table. */
  readonly key: kms.IKey;
  /** KMS key of the log groups (state machine and functions); its policy must admit CloudWatch Logs. */
  readonly logKey: kms.IKey;
  /**
   * Key encrypting the DB storage / Performance Insights: rebuilding a replica creates a grant on it.
   * @default - no KMS permissions for the rebuild
   */
  readonly dbStorageKey?: kms.IKey;
  /**
   * Enhanced Monitoring role of the DB instances: a rebuilt replica gets the same one (iam:PassRole).
   * @default - no PassRole
   */
  readonly monitoringRole?: iam.IRole;
  readonly workers: RunbookWorkersProps;
  /** @default - disabled */
  readonly autoFailover?: AutoFailoverProps;
  /** @default - see RunbookTiming */
  readonly timing?: RunbookTiming;
  /**
   * Automated backup retention set on the promoted primary (replicas need backups on their source).
   * @default 7
   */
  readonly backupRetentionDays?: number;
  /**
   * Log retention of the state machine and function logs.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/** Errors worth retrying as is (throttling, a Lambda hiccup, a task killed by its timeout: every step is idempotent). */
const RETRY_ERRORS = [
  'RunbookTransient',
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.Unknown',
  'States.Timeout',
];

/**
 * The failover runbook in AWS: a JSONPath Step Functions state machine whose Lambda tasks run the steps of
 * src/core/runbook (one function per IAM boundary), Wait/Choice loops for the long waits, Retry with backoff,
 * Catch to a failure path that notifies and leaves a documented recoverable state; a DynamoDB table holding the
 * failover lock and the journal; an EventBridge rule on RDS failure events (disabled unless autoFailover.enabled).
 */
export class Runbook extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly table: dynamodb.Table;
  readonly functions: Readonly<Record<RunbookFunctionName, ControllerFunction>>;
  readonly logGroup: logs.LogGroup;
  /** The one command the drain function may run on the workers. */
  readonly drainDocument: DrainDocument;
  readonly failureEventRule: events.Rule;
  private readonly clusterId: string;

  constructor(scope: Construct, id: string, props: RunbookProps) {
    super(scope, id);
    validate(id, props);
    this.clusterId = props.clusterId;
    const stack = Stack.of(this);
    const dbArn = (instance: string) => stack.formatArn({ service: 'rds', resource: 'db', resourceName: instance, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const clusterDbs = dbArn(`${props.clusterId}-*`);

    this.table = new dynamodb.Table(this, 'LockTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const common: Record<string, string> = {
      [RunbookEnvVar.ClusterId]: props.clusterId,
      [RunbookEnvVar.Config]: JSON.stringify(runbookConfig(props)),
      [RunbookEnvVar.LockTable]: this.table.tableName,
      [RunbookEnvVar.TopicArn]: props.notificationTopic.topicArn,
      [RunbookEnvVar.WriterParameter]: props.writerParameter.parameterName,
      [RunbookEnvVar.TopologyParameter]: props.topologyParameter.parameterName,
      [RunbookEnvVar.HostedZoneId]: props.hostedZone.hostedZoneId,
      [RunbookEnvVar.WriterRecordName]: props.writerRecordName,
      [RunbookEnvVar.WriterRecordTtl]: String(props.writerRecordTtlSeconds ?? 5),
      [RunbookEnvVar.QuarantineSecurityGroup]: props.quarantineSecurityGroup.securityGroupId,
      [RunbookEnvVar.BackupRetentionDays]: String(props.backupRetentionDays ?? 7),
    };
    const database: Record<string, string> = {
      [RunbookEnvVar.DbSecretArn]: props.dbCredentialsSecret.secretArn,
      ...(props.databaseName ? { [RunbookEnvVar.DbName]: props.databaseName } : {}),
      ...(props.fenceDatabases?.length ? { [RunbookEnvVar.DbFenceDatabases]: props.fenceDatabases.join(',') } : {}),
      ...RDS_CA_ENVIRONMENT,
    };
    const w = props.workers;
    this.drainDocument = new DrainDocument(this, 'DrainDocument', {
      clusterId: props.clusterId,
      agentCommand: w.agentCommand,
      bufferPath: w.bufferPath,
      configPath: w.configPath,
      daemonUnit: w.daemonUnit,
      timeoutSeconds: w.drainTimeoutSeconds ?? 600,
    });
    const drain: Record<string, string> = {
      [RunbookEnvVar.WorkerTagKey]: w.tagKey,
      [RunbookEnvVar.WorkerTagValue]: w.tagValue,
      [RunbookEnvVar.DrainDocument]: this.drainDocument.documentName,
    };

    const inVpc = new Set<RunbookFunctionName>(['probe', 'fence', 'promote', 'finish']);
    const descriptions: Record<RunbookFunctionName, string> = {
      probe: 'Failover runbook: confirm, preflight, plan, fork point, verify (reads PostgreSQL)',
      fence: 'Failover runbook: fence the old primary (read-only + quarantine security group)',
      promote: 'Failover runbook: promote the replica, wait until it accepts writes, record its epoch',
      repoint: 'Failover runbook: repoint the writer (Route 53 + SSM)',
      drain: 'Failover runbook: drain every worker buffer (SSM Run Command)',
      rebuild: 'Failover runbook: rebuild replicas from the new primary',
      finish: 'Failover runbook: final report and failure path',
    };
    // fence: the pg fence, then up to 60 s waiting for the quarantine group to apply and the reboot (RdsClusterControl).
    const timeouts: Record<RunbookFunctionName, number> = { probe: 60, fence: 180, promote: 60, repoint: 30, drain: 60, rebuild: 60, finish: 60 };
    const make = (name: RunbookFunctionName) =>
      new ControllerFunction(this, `${capitalise(name)}Function`, {
        handlerDir: `runbook-${name}`,
        description: descriptions[name],
        logKey: props.logKey,
        logRetention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
        timeout: Duration.seconds(timeouts[name]),
        ...(inVpc.has(name)
          ? { vpc: props.vpc, vpcSubnets: props.vpcSubnets, securityGroups: [props.dbClientSecurityGroup] }
          : {}),
        environment: { ...common, ...(inVpc.has(name) ? database : {}), ...(name === 'drain' ? drain : {}) },
      });
    const fns = Object.fromEntries((Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]).map((n) => [n, make(n)])) as Record<RunbookFunctionName, ControllerFunction>;
    this.functions = fns;

    // ---- IAM: each function names only the actions and resources its steps touch. ----
    for (const name of Object.keys(fns) as RunbookFunctionName[]) {
      const role = fns[name].function;
      // Lock renewal (UpdateItem), take-over (PutItem), release (DeleteItem), holder / journal reads (GetItem),
      // journal writes (TransactWriteItems = ConditionCheckItem on the lock + PutItem of the journal).
      this.table.grant(role, 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:ConditionCheckItem');
      // DynamoDB and SNS use the key with the caller's permissions: DescribeKey too (AWS: customer managed table keys).
      props.key.grant(role, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*', 'kms:DescribeKey');
      props.notificationTopic.grantPublish(role);
    }
    const allow = (name: RunbookFunctionName, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      fns[name].function.addToRolePolicy(new iam.PolicyStatement({ actions, resources, ...(conditions ? { conditions } : {}) }));

    for (const name of ['probe', 'fence', 'promote', 'repoint', 'rebuild', 'finish'] as const) allow(name, ['rds:DescribeDBInstances'], [clusterDbs]);
    for (const name of ['probe', 'fence', 'promote', 'finish'] as const) props.dbCredentialsSecret.grantRead(fns[name].function);
    props.writerParameter.grantRead(fns.probe.function);
    props.topologyParameter.grantRead(fns.probe.function);
    // `db:<clusterId>-*` also matches another cluster whose id starts with this one plus '-' (orders / orders-eu):
    // the actions that change an instance also require the instance's cluster tag. All of them authorize against the
    // `db` resource type, which supports aws:ResourceTag/${TagKey} (Service Authorization Reference, Amazon RDS).
    // DescribeDBInstances stays unconditioned: read-only, and it lists no tags to match before the call.
    const inCluster = { StringEquals: { [`aws:ResourceTag/${ResourceTag.Cluster}`]: props.clusterId } };
    allow('fence', ['rds:ModifyDBInstance'], [clusterDbs], inCluster);
    // Security groups do not cut established connections: the fence reboots the quarantined old primary once and
    // records it in the fenced-at tag (and removes a stale one before a new quarantine). Only that tag key.
    allow('fence', ['rds:RebootDBInstance'], [clusterDbs], inCluster);
    // The old primary counts as isolated only once that reboot completed: RDS's restart event after the request.
    // DescribeEvents is read-only and supports no resource-level permissions.
    allow('fence', ['rds:DescribeEvents'], ['*']);
    allow('fence', ['rds:AddTagsToResource', 'rds:RemoveTagsFromResource'], [clusterDbs], {
      ...inCluster,
      'ForAllValues:StringEquals': { 'aws:TagKeys': [ResourceTag.FencedAt] },
      Null: { 'aws:TagKeys': 'false' },
    });
    allow('promote', ['rds:PromoteReadReplica'], [clusterDbs], inCluster);
    allow('repoint', ['route53:ChangeResourceRecordSets'], [props.hostedZone.hostedZoneArn], {
      'ForAllValues:StringEquals': {
        'route53:ChangeResourceRecordSetsNormalizedRecordNames': [props.writerRecordName.toLowerCase().replace(/\.$/, '')],
        'route53:ChangeResourceRecordSetsRecordTypes': ['CNAME'],
        'route53:ChangeResourceRecordSetsActions': ['UPSERT'],
      },
    });
    for (const name of ['repoint', 'rebuild'] as const) {
      props.topologyParameter.grantRead(fns[name].function);
      props.topologyParameter.grantWrite(fns[name].function);
    }
    props.writerParameter.grantRead(fns.repoint.function);
    props.writerParameter.grantWrite(fns.repoint.function);
    allow('drain', ['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation'], ['*']);
    allow('drain', ['ssm:SendCommand'], [stack.formatArn({ service: 'ssm', resource: 'document', resourceName: this.drainDocument.documentName })]);
    // Every taggable resource of the stack carries the cluster tag: the workers are the instances that also carry the
    // worker role tag (what SsmWorkerControl selects by).
    allow('drain', ['ssm:SendCommand'], [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })], {
      StringEquals: { [`ssm:resourceTag/${w.tagKey}`]: w.tagValue, [`ssm:resourceTag/${ResourceTag.Role}`]: WORKER_ROLE },
    });
    // The new replica must be created tagged as this cluster's (aws:RequestTag), and no instance already tagged as another
    // cluster's may be its source or get tags (aws:ResourceTag, IfExists: the instance being created has no tags yet).
    // Without these, `db:<clusterId>-*` would let the rebuild put this cluster's tag on orders-eu-a and so hand it to the
    // fence and promote roles, whose guard is that tag.
    const taggedOurs = { StringEquals: { [`aws:RequestTag/${ResourceTag.Cluster}`]: props.clusterId } };
    allow('rebuild', ['rds:CreateDBInstanceReadReplica', 'rds:AddTagsToResource'], [clusterDbs], {
      ...taggedOurs,
      StringEqualsIfExists: { [`aws:ResourceTag/${ResourceTag.Cluster}`]: props.clusterId },
    });
    allow(
      'rebuild',
      ['rds:CreateDBInstanceReadReplica'],
      [
        // The request names the old replica's subnet group, parameter group and option group.
        stack.formatArn({ service: 'rds', resource: 'subgrp', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
        stack.formatArn({ service: 'rds', resource: 'pg', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
        stack.formatArn({ service: 'rds', resource: 'og', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
      ],
      taggedOurs,
    );
    if (props.monitoringRole) {
      // Which service name RDS sends when a replica is created with a monitoring role is not documented: allow both.
      allow('rebuild', ['iam:PassRole'], [props.monitoringRole.roleArn], {
        StringEquals: { 'iam:PassedToService': ['monitoring.rds.amazonaws.com', 'rds.amazonaws.com'] },
      });
    }
    if (props.dbStorageKey) props.dbStorageKey.grant(fns.rebuild.function, 'kms:CreateGrant', 'kms:DescribeKey');

    // ---- The state machine. ----
    this.logGroup = new logs.LogGroup(this, 'StateMachineLogs', {
      // AWS recommends /aws/vendedlogs/ for vended logs: no CloudWatch Logs resource policy entry (size-limited) per group.
      logGroupName: `/aws/vendedlogs/states/rds-failover-${props.clusterId}-runbook`,
      encryptionKey: props.logKey,
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: `rds-failover-${props.clusterId}-runbook`,
      comment: `Failover runbook of ${props.clusterId}: fence, record fork point, promote, record epoch, repoint, drain, verify, rebuild (docs/runbook.md)`,
      definitionBody: sfn.DefinitionBody.fromChainable(definition(this, fns)),
      queryLanguage: sfn.QueryLanguage.JSON_PATH,
      timeout: Duration.hours(6),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });

    const auto = props.autoFailover ?? {};
    this.failureEventRule = new events.Rule(this, 'PrimaryFailureRule', {
      description: `rds-failover ${props.clusterId}: RDS failure events start the runbook, which acts only if the writer stays unreachable`,
      enabled: auto.enabled ?? false,
      eventPattern: {
        source: ['aws.rds'],
        detailType: ['RDS DB Instance Event'],
        detail: {
          SourceIdentifier: [{ prefix: `${props.clusterId}-` }],
          EventCategories: [...(auto.eventCategories ?? ['failure', 'availability', 'low storage'])],
        },
      },
    });
    this.failureEventRule.addTarget(
      new targets.SfnStateMachine(this.stateMachine, {
        input: events.RuleTargetInput.fromObject({
          mode: 'failover',
          trigger: {
            source: 'rds-event',
            sourceId: events.EventField.fromPath('$.detail.SourceIdentifier'),
            eventId: events.EventField.fromPath('$.detail.EventID'),
            message: events.EventField.fromPath('$.detail.Message'),
          },
        }),
        retryAttempts: 3,
        maxEventAge: Duration.minutes(15),
      }),
    );

    this.acknowledge(fns);
  }

  private acknowledge(fns: Record<RunbookFunctionName, ControllerFunction>): void {
    const stack = Stack.of(this);
    // cdk-nag names findings by the rendered ARN: tokens as <AWS::Region>, literal values as themselves.
    const region = Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region;
    const account = Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account;
    const partition = Token.isUnresolved(stack.partition) ? '<AWS::Partition>' : stack.partition;
    const rdsArn = (resource: string) => `arn:${partition}:rds:${region}:${account}:${resource}`;
    for (const [name, fn] of Object.entries(fns) as [RunbookFunctionName, ControllerFunction][]) {
      const reasons: { id: string; reason: string }[] = [
        {
          id: 'AwsSolutions-IAM5[Resource::*]',
          reason:
            name === 'drain'
              ? 'X-Ray segments, ssm:DescribeInstanceInformation and ssm:GetCommandInvocation support no resource-level permissions; SendCommand itself is scoped to the stack\'s drain document and instances carrying the worker tag.'
              : name === 'fence'
                ? 'X-Ray PutTraceSegments/PutTelemetryRecords and rds:DescribeEvents (read-only, whether the reboot completed) support no resource-level permissions.'
                : 'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.',
        },
        { id: 'AwsSolutions-IAM5[Action::kms:GenerateDataKey*]', reason: 'Encrypting items of the lock table and messages to the encrypted topic needs GenerateDataKey variants, scoped to their keys.' },
      ];
      if (name === 'drain') {
        reasons.push({
          id: `AwsSolutions-IAM5[Resource::arn:${partition}:ec2:${region}:${account}:instance/*]`,
          reason: 'SendCommand on instances is conditioned on the worker tag (ssm:resourceTag); instance ids change when workers are replaced.',
        });
      } else {
        reasons.push({
          id: `AwsSolutions-IAM5[Resource::${rdsArn(`db:${this.clusterId}-*`)}]`,
          reason: 'Every DB instance of this cluster, including replicas the runbook creates, is named <clusterId>-<node>; the wildcard covers exactly those.',
        });
      }
      if (name === 'rebuild') {
        for (const type of ['subgrp', 'pg', 'og']) {
          reasons.push({
            id: `AwsSolutions-IAM5[Resource::${rdsArn(`${type}:*`)}]`,
            reason: 'CreateDBInstanceReadReplica is authorized against the subnet, parameter and option groups the old replica used, named by the database stack.',
          });
        }
      }
      fn.acknowledgeFindings(reasons);
    }
    Validations.of(this.stateMachine.role).acknowledge(
      { id: 'AwsSolutions-IAM5[Resource::*]', reason: 'X-Ray tracing of the state machine (PutTraceSegments, GetSamplingRules...) supports no resource-level permissions.' },
      ...Object.values(fns).map((fn) => ({
        id: `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(fn.function.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
        reason: 'Step Functions may invoke the runbook function by its ARN or a qualified ARN (version/alias); CDK grants both and nothing else.',
      })),
    );
  }
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function runbookConfig(props: RunbookProps) {
  const t = props.timing ?? {};
  const auto = props.autoFailover ?? {};
  const s = (v: number | undefined, d: number) => (v ?? d) * 1000;
  return {
    maxLagOnFailoverBytes: t.maxLagOnFailoverBytes ?? 1024 * 1024,
    lockTtlSeconds: t.lockTtlSeconds ?? 900,
    ...(props.workers.expectedCount !== undefined ? { expectedWorkers: props.workers.expectedCount } : {}),
    confirmUnreachableMs: s(auto.confirmSeconds, 30),
    pollIntervalMs: {
      confirm: s(auto.probeIntervalSeconds, 5),
      catchUp: s(t.pollSeconds?.catchUp, 2),
      promotion: s(t.pollSeconds?.promotion, 10),
      drain: s(t.pollSeconds?.drain, 5),
      confirmations: s(t.pollSeconds?.confirmations, 5),
      rebuild: s(t.pollSeconds?.rebuild, 60),
    },
    timeoutMs: {
      catchUp: s(t.timeoutSeconds?.catchUp, 300),
      promotion: s(t.timeoutSeconds?.promotion, 1800),
      drain: s(t.timeoutSeconds?.drain, 900),
      confirmations: s(t.timeoutSeconds?.confirmations, 300),
      rebuild: s(t.timeoutSeconds?.rebuild, 7200),
    },
  };
}

function validate(id: string, props: RunbookProps): void {
  const errors: string[] = [];
  if (!/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/.test(props.clusterId)) errors.push(`clusterId '${props.clusterId}' must be 2-32 lowercase letters, digits or '-'`);
  if (!/^([a-z0-9-]+\.)+[a-z0-9-]+\.?$/i.test(props.writerRecordName)) errors.push(`writerRecordName '${props.writerRecordName}' must be a fully-qualified DNS name like writer.orders.internal`);
  const ttl = props.writerRecordTtlSeconds ?? 5;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 300) errors.push(`writerRecordTtlSeconds must be an integer from 1 to 300, got ${ttl}`);
  const retention = props.backupRetentionDays ?? 7;
  if (!Number.isInteger(retention) || retention < 1 || retention > 35) errors.push(`backupRetentionDays must be an integer from 1 to 35 (replicas need backups on their source), got ${retention}`);
  const w = props.workers;
  if (!w.tagKey || !w.tagValue) errors.push('workers.tagKey and workers.tagValue must name the tag that marks the worker instances');
  errors.push(...drainDocumentPropsErrors(w, 'workers.'));
  const positive = (path: string, v: number | undefined) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) errors.push(`${path} must be a whole number of seconds >= 1, got ${v}`);
  };
  positive('workers.drainTimeoutSeconds', w.drainTimeoutSeconds);
  positive('workers.expectedCount', w.expectedCount);
  positive('autoFailover.confirmSeconds', props.autoFailover?.confirmSeconds);
  positive('autoFailover.probeIntervalSeconds', props.autoFailover?.probeIntervalSeconds);
  const t = props.timing ?? {};
  positive('timing.lockTtlSeconds', t.lockTtlSeconds);
  for (const [k, v] of Object.entries(t.pollSeconds ?? {})) positive(`timing.pollSeconds.${k}`, v);
  for (const [k, v] of Object.entries(t.timeoutSeconds ?? {})) positive(`timing.timeoutSeconds.${k}`, v);
  const drainLimit = t.timeoutSeconds?.drain ?? 900;
  const oneUndelivered = DRAIN_DELIVERY_TIMEOUT_SECONDS + (w.drainTimeoutSeconds ?? 600) + (t.pollSeconds?.drain ?? 5);
  if (drainLimit <= oneUndelivered) {
    errors.push(
      `timing.timeoutSeconds.drain (${drainLimit} s) must exceed ${oneUndelivered} s: a drain sent to a worker cut off just before (SSM still lists it Online for minutes) ` +
        `stays Pending for its SendCommand timeout (${DRAIN_DELIVERY_TIMEOUT_SECONDS} s) + workers.drainTimeoutSeconds (${w.drainTimeoutSeconds ?? 600} s) before SSM reports it DeliveryTimedOut, ` +
        `plus one poll (${t.pollSeconds?.drain ?? 5} s) to restart it; a drain step that gives up first reports every such worker (and every drain slower than that) unreachable before SSM could tell. Raise it or lower workers.drainTimeoutSeconds`,
    );
  }
  if (t.maxLagOnFailoverBytes !== undefined && (!Number.isInteger(t.maxLagOnFailoverBytes) || t.maxLagOnFailoverBytes < 0)) {
    errors.push(`timing.maxLagOnFailoverBytes must be a whole number of bytes >= 0, got ${t.maxLagOnFailoverBytes}`);
  }
  if (props.fenceDatabases?.some((d) => !/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/.test(d))) errors.push(`fenceDatabases must be PostgreSQL database names, got ${JSON.stringify(props.fenceDatabases)}`);
  if (props.autoFailover?.eventCategories && props.autoFailover.eventCategories.length === 0) errors.push('autoFailover.eventCategories must not be empty');
  if (errors.length > 0) throw new Error(`Runbook ${id}: ${errors.join('; ')}`);
}

/**
 * The state machine: the same sequence as src/core/runbook/run-runbook.ts. Every task sends { action, state }
 * to its function and replaces the state with the answer; every poll action sets $.poll.done and
 * $.poll.waitSeconds for the Choice and Wait states.
 */
function definition(scope: Construct, fns: Record<RunbookFunctionName, ControllerFunction>): sfn.IChainable {
  const failEnd = new sfn.Fail(scope, 'RunbookFailed', { errorPath: '$.error.Error', causePath: '$.error.Cause' });
  const failurePath = task(scope, 'NotifyFailure', fns.finish, 'failed');
  failurePath.addCatch(failEnd, { errors: ['States.ALL'], resultPath: '$.failurePathError' });
  const failure = failurePath.next(failEnd);

  const step = (name: string, fn: RunbookFunctionName, action: string) => {
    const t = task(scope, name, fns[fn], action);
    t.addCatch(failure, { errors: ['States.ALL'], resultPath: '$.error' });
    return t;
  };
  const pollDone = sfn.Condition.and(sfn.Condition.isPresent('$.poll.done'), sfn.Condition.booleanEquals('$.poll.done', true));
  /** poll -> Choice(done? next : Wait -> poll) */
  const loop = (name: string, fn: RunbookFunctionName, action: string, next: sfn.IChainable) => {
    const poll = step(name, fn, action);
    const wait = new sfn.Wait(scope, `WaitBefore${name}`, { time: sfn.WaitTime.secondsPath('$.poll.waitSeconds') });
    return poll.next(new sfn.Choice(scope, `${name}Done?`).when(pollDone, next).otherwise(wait.next(poll)));
  };

  const finish = step('Finish', 'finish', 'finish').next(new sfn.Succeed(scope, 'FailoverComplete'));
  const rebuild = step('StartRebuilds', 'rebuild', 'startRebuilds').next(loop('RebuildStatus', 'rebuild', 'rebuildStatus', finish));
  const verify = loop('Verify', 'probe', 'verify', rebuild);
  const drain = step('StartDrains', 'drain', 'startDrains').next(loop('DrainStatus', 'drain', 'drainStatus', verify));
  const repoint = step('RepointWriter', 'repoint', 'repoint').next(drain);
  const isolate = step('IsolateOldPrimary', 'fence', 'isolate').next(repoint);
  const recordEpoch = step('RecordEpoch', 'promote', 'recordEpoch').next(isolate);
  const promote = step('Promote', 'promote', 'promote').next(loop('PromotionStatus', 'promote', 'promotionStatus', recordEpoch));
  const forkPoint = loop('RecordForkPoint', 'probe', 'forkPoint', promote);
  const fence = step('FenceOldPrimary', 'fence', 'fence').next(forkPoint);

  const isDryRun = sfn.Condition.and(sfn.Condition.isPresent('$.outcome'), sfn.Condition.stringEquals('$.outcome', 'dry-run'));
  const plan = step('Plan', 'probe', 'plan').next(new sfn.Choice(scope, 'DryRun?').when(isDryRun, new sfn.Succeed(scope, 'DryRunComplete')).otherwise(fence));
  const preflight = step('Preflight', 'probe', 'preflight').next(plan);

  const confirmed = sfn.Condition.and(pollDone, sfn.Condition.stringEquals('$.confirm.status', 'confirmed'));
  const confirm = step('ConfirmPrimaryDown', 'probe', 'confirm');
  const confirmWait = new sfn.Wait(scope, 'WaitBeforeConfirmPrimaryDown', { time: sfn.WaitTime.secondsPath('$.poll.waitSeconds') });
  confirm.next(
    new sfn.Choice(scope, 'PrimaryDown?')
      .when(confirmed, preflight)
      .when(pollDone, new sfn.Succeed(scope, 'NotConfirmed', { comment: 'The primary answered, or the event was not about the writer: no failover.' }))
      .otherwise(confirmWait.next(confirm)),
  );

  const start = new sfn.Pass(scope, 'Start', {
    comment: 'The runbook state: the input plus the execution name (the lock owner) and start time.',
    parameters: { 'input.$': '$', 'executionId.$': '$$.Execution.Name', 'startedAt.$': '$$.Execution.StartTime' },
  });
  return start.next(new sfn.Choice(scope, 'Triggered?').when(sfn.Condition.isPresent('$.input.trigger'), confirm).otherwise(preflight));
}

function task(scope: Construct, name: string, fn: ControllerFunction, action: string): tasks.LambdaInvoke {
  const t = new tasks.LambdaInvoke(scope, name, {
    lambdaFunction: fn.function,
    payload: sfn.TaskInput.fromObject({ action, 'state.$': '$' }),
    payloadResponseOnly: true,
    retryOnServiceExceptions: false,
    taskTimeout: sfn.Timeout.duration(fn.function.timeout!.plus(Duration.seconds(30))),
  });
  t.addRetry({ errors: RETRY_ERRORS, interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 5, maxDelay: Duration.seconds(60), jitterStrategy: sfn.JitterType.FULL });
  return t;
}
