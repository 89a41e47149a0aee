import { CfnOutput, Duration, RemovalPolicy, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as rds from 'aws-cdk-lib/aws-rds';
import type * as route53 from 'aws-cdk-lib/aws-route53';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { BufferSnapshots } from './buffer-snapshots.js';
import { BufferedWorkers, WORKER_TAGS } from './buffered-workers.js';
import { DatabaseRoles } from './database-roles.js';
import type { FailoverConfig } from './config.js';
import { Monitoring } from './monitoring.js';
import { Network } from './network.js';
import { PostgresCluster } from './postgres-cluster.js';
import { Runbook } from './runbook.js';
import { SecurityGroups } from './security-groups.js';
import { topologyDocument, topologyParameterName, writerParameterName } from './topology.js';
import { WorkerMaintenance } from './worker-maintenance.js';
import { AGENT } from './worker-user-data.js';
import { WriterEndpoint } from './writer-endpoint.js';
import { clusterStackName } from '../src/core/topology-document.js';
import { parseStreams } from '../src/agent/config.js';

export interface FailoverStackProps extends StackProps {
  /** Validated configuration (parseConfig / loadConfig). */
  readonly config: FailoverConfig;
}

/** Stack name for a cluster: one stack per cluster and environment. */
export function stackName(config: FailoverConfig): string {
  return clusterStackName(config.clusterId);
}

/**
 * The whole cluster: network, PostgreSQL primary + replicas with the writer endpoint, buffered workers, their
 * snapshots and patch window. Public fields are what the Monitoring and Runbook constructs need.
 */
export class FailoverStack extends Stack {
  readonly config: FailoverConfig;
  /** Customer-managed key: RDS storage and Performance Insights, EBS volumes, the credentials secret. */
  readonly key: kms.Key;
  /** Customer-managed key for CloudWatch log groups (flow logs, RDS log exports, Lambda logs). */
  readonly logKey: kms.Key;
  readonly network: Network;
  readonly vpc: ec2.Vpc;
  readonly dbSecurityGroup: ec2.SecurityGroup;
  /** For the monitor and runbook Lambdas: allowed to reach the database port. */
  readonly controllerSecurityGroup: ec2.SecurityGroup;
  /** No ingress, no egress: where the runbook moves a fenced primary. */
  readonly quarantineSecurityGroup: ec2.SecurityGroup;
  readonly workersSecurityGroup: ec2.SecurityGroup;
  readonly database: PostgresCluster;
  /** DB instance identifiers by node name (topology only; retired nodes excluded). */
  readonly dbInstanceIds: Readonly<Record<string, string>>;
  readonly primaryNode: string;
  /** The master user's credentials (the runbook's fence needs them). */
  readonly dbCredentialsSecret: rds.DatabaseSecret;
  /** The workers' and the lag monitor's own PostgreSQL roles and secrets. */
  readonly databaseRoles: DatabaseRoles;
  readonly writerEndpoint: WriterEndpoint;
  readonly hostedZone: route53.PrivateHostedZone;
  /** Fully-qualified writer record, e.g. writer.orders.rds-failover.internal. */
  readonly writerRecordName: string;
  readonly writerParameter: ssm.StringParameter;
  readonly topologyParameter: ssm.StringParameter;
  /** Plain names (no tokens) of the two parameters, for environment variables and IAM ARNs. */
  readonly writerParameterName: string;
  readonly topologyParameterName: string;
  readonly workers: BufferedWorkers;
  readonly workerInstanceIds: readonly string[];
  /** Tags that select this cluster's workers (SSM SendCommand targets). */
  readonly workerTargetTags: Readonly<Record<string, string>>;
  readonly snapshots: BufferSnapshots;
  readonly workerMaintenance: WorkerMaintenance;
  /** Lag monitor, alarms, dashboard, the SNS topic every alert and runbook event goes through, Slack. */
  readonly monitoring: Monitoring;
  /** The failover runbook (Step Functions) and its lock. */
  readonly runbook: Runbook;

  constructor(scope: Construct, id: string, props: FailoverStackProps) {
    super(scope, id, {
      description: `rds-failover ${props.config.clusterId}: RDS PostgreSQL primary + replicas, buffered workers, failover controller`,
      ...props,
      env: props.env ?? props.config.env,
    });
    const config = props.config;
    this.config = config;
    Tags.of(this).add(WORKER_TAGS.cluster, config.clusterId);
    for (const [key, value] of Object.entries(config.tags)) Tags.of(this).add(key, value);

    this.key = new kms.Key(this, 'DataKey', {
      description: `rds-failover ${config.clusterId}: database storage, EBS volumes, secrets`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.logKey = new kms.Key(this, 'LogKey', {
      description: `rds-failover ${config.clusterId}: CloudWatch log groups`,
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.logKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchLogs',
        principals: [new iam.ServicePrincipal(`logs.${this.region}.amazonaws.com`)],
        actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
        resources: ['*'],
        conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${this.partition}:logs:${this.region}:${this.account}:*` } },
      }),
    );

    this.network = new Network(this, 'Network', {
      cidr: config.network.cidr,
      maxAzs: config.network.maxAzs,
      natGateways: config.network.natGateways,
      interfaceEndpoints: config.network.interfaceEndpoints,
      logKey: this.logKey,
      flowLogRetention: config.network.flowLogRetentionDays as logs.RetentionDays,
    });
    this.vpc = this.network.vpc;

    const groups = new SecurityGroups(this, 'SecurityGroups', { vpc: this.vpc, databasePort: config.database.port });
    this.dbSecurityGroup = groups.database;
    this.controllerSecurityGroup = groups.controller;
    this.quarantineSecurityGroup = groups.quarantine;
    this.workersSecurityGroup = groups.workers;

    this.database = new PostgresCluster(this, 'Database', {
      clusterId: config.clusterId,
      database: config.database,
      vpc: this.vpc,
      subnets: this.network.dataSubnets,
      securityGroup: this.dbSecurityGroup,
      quarantineSecurityGroup: this.quarantineSecurityGroup,
      rotationSecurityGroup: this.controllerSecurityGroup,
      rotationSubnets: this.network.workerSubnets,
      key: this.key,
      logKey: this.logKey,
    });
    this.dbInstanceIds = this.database.topologyInstanceIds;
    this.primaryNode = this.database.primary.name;
    this.dbCredentialsSecret = this.database.secret;

    this.databaseRoles = new DatabaseRoles(this, 'DatabaseRoles', {
      clusterId: config.clusterId,
      vpc: this.vpc,
      subnets: this.network.workerSubnets,
      dbClientSecurityGroup: this.controllerSecurityGroup,
      masterSecret: this.dbCredentialsSecret,
      masterSecretRotation: this.database.secretRotation,
      primary: this.database.primaryInstance,
      databaseName: config.database.databaseName,
      agentTables: agentTables(config.workers.streams),
      rotationDays: config.database.credentialsRotationDays,
      key: this.key,
      logKey: this.logKey,
    });

    this.writerEndpoint = new WriterEndpoint(this, 'WriterEndpoint', {
      clusterId: config.clusterId,
      vpc: this.vpc,
      zoneName: config.writerEndpoint.zoneName,
      recordName: config.writerEndpoint.recordName,
      ttl: Duration.seconds(config.writerEndpoint.ttlSeconds),
      primaryAddress: this.database.primaryInstance.attrEndpointAddress,
      primaryInstanceId: this.database.primary.instanceId,
      topology: topologyDocument({ clusterId: config.clusterId, ...config.database }),
    });
    this.hostedZone = this.writerEndpoint.zone;
    this.writerRecordName = this.writerEndpoint.fqdn;
    this.writerParameter = this.writerEndpoint.writerParameter;
    this.topologyParameter = this.writerEndpoint.topologyParameter;
    this.writerParameterName = writerParameterName(config.clusterId);
    this.topologyParameterName = topologyParameterName(config.clusterId);

    this.workers = new BufferedWorkers(this, 'Workers', {
      clusterId: config.clusterId,
      vpc: this.vpc,
      subnets: this.network.workerSubnets,
      securityGroup: this.workersSecurityGroup,
      key: this.key,
      count: config.workers.count,
      instanceType: new ec2.InstanceType(config.workers.instanceType),
      amiId: config.workers.amiId,
      rootVolumeGiB: config.workers.rootVolumeGiB,
      dataVolumeGiB: config.workers.dataVolumeGiB,
      writerHost: this.writerRecordName,
      writerPort: config.database.port,
      databaseName: config.database.databaseName,
      secret: this.databaseRoles.agentSecret,
      streams: config.workers.streams,
      rdsCaBundleFile: config.workers.rdsCaBundleFile,
    });
    this.workerInstanceIds = this.workers.instanceIds;
    this.workerTargetTags = { [WORKER_TAGS.cluster]: config.clusterId, [WORKER_TAGS.role]: WORKER_TAGS.roleValue };

    this.snapshots = new BufferSnapshots(this, 'Snapshots', {
      clusterId: config.clusterId,
      targetTag: { key: WORKER_TAGS.cluster, value: config.clusterId },
      volumeKey: this.key,
      checkpointCommand: `${AGENT.command} checkpoint --buffer ${AGENT.bufferPath}`,
      hourly: config.snapshots.hourly,
      daily: config.snapshots.daily,
      crossRegionCopy: config.snapshots.crossRegionCopy,
      fastSnapshotRestoreAzs: config.snapshots.fastSnapshotRestore
        ? (config.snapshots.fastSnapshotRestore.availabilityZones ?? this.workers.availabilityZones)
        : undefined,
      preScriptTimeoutSeconds: config.snapshots.preScriptTimeoutSeconds,
    });
    this.workerMaintenance = new WorkerMaintenance(this, 'WorkerMaintenance', {
      clusterId: config.clusterId,
      window: config.workers.maintenanceWindow,
      cutoffHours: config.workers.patchCutoffHours,
      targetTags: this.workerTargetTags,
    });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      clusterId: config.clusterId,
      vpc: this.vpc,
      vpcSubnets: this.network.workerSubnets,
      dbInstanceIds: Object.values(this.dbInstanceIds),
      dbCredentialsSecret: this.databaseRoles.monitorSecret,
      databaseName: config.database.databaseName,
      dbClientSecurityGroup: this.controllerSecurityGroup,
      key: this.key,
      logKey: this.logKey,
      settings: config.monitoring,
      workerIds: this.workers.instances.map((i) => i.instanceId),
    });

    const runbook = config.runbook;
    this.runbook = new Runbook(this, 'Runbook', {
      clusterId: config.clusterId,
      vpc: this.vpc,
      vpcSubnets: this.network.workerSubnets,
      dbClientSecurityGroup: this.controllerSecurityGroup,
      dbCredentialsSecret: this.dbCredentialsSecret,
      databaseName: config.database.databaseName,
      fenceDatabases: [config.database.databaseName],
      hostedZone: this.hostedZone,
      writerRecordName: this.writerRecordName,
      writerRecordTtlSeconds: config.writerEndpoint.ttlSeconds,
      writerParameter: this.writerParameter,
      topologyParameter: this.topologyParameter,
      quarantineSecurityGroup: this.quarantineSecurityGroup,
      notificationTopic: this.monitoring.topic,
      key: this.key,
      logKey: this.logKey,
      dbStorageKey: this.key,
      monitoringRole: this.database.monitoringRole,
      workers: {
        tagKey: WORKER_TAGS.cluster,
        tagValue: config.clusterId,
        agentCommand: AGENT.command,
        bufferPath: AGENT.bufferPath,
        configPath: AGENT.configPath,
        daemonUnit: AGENT.unit,
        drainTimeoutSeconds: runbook.drainTimeoutSeconds,
        expectedCount: config.workers.count,
      },
      autoFailover: runbook.autoFailover,
      timing: {
        maxLagOnFailoverBytes: runbook.maxLagOnFailoverBytes,
        pollSeconds: runbook.pollSeconds,
        timeoutSeconds: runbook.timeoutSeconds,
      },
      backupRetentionDays: config.database.backupRetentionDays,
    });
    this.monitoring.addFailoverStateMachine(this.runbook.stateMachine);
    this.monitoring.addSnapshotPolicy(this.snapshots.policy.ref);

    this.addOutputs();
  }

  private addOutputs(): void {
    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('ClusterId', this.config.clusterId, 'Cluster id (prefix of the DB instance identifiers)');
    output('WriterEndpointName', this.writerRecordName, 'DNS name of the current primary (CNAME, repointed on failover)');
    output('PrimaryInstanceId', this.database.primary.instanceId, 'DB instance identifier of the primary at deploy time');
    output('WriterParameterName', this.writerParameterName, 'SSM parameter holding the current writer instance id');
    output('TopologyParameterName', this.topologyParameterName, 'SSM parameter holding the topology (JSON)');
    output('DatabaseSecretArn', this.dbCredentialsSecret.secretArn, 'Secrets Manager secret with the master credentials');
    output('WorkerInstanceIds', this.workerInstanceIds.join(','), 'EC2 instance ids of the buffered workers');
    const roles = this.databaseRoles.resource;
    output('AgentTablesMissing', roles.getAttString('MissingTables'), 'Stream tables that did not exist when the agent role was applied (grant them once created: docs/buffer.md)');
    output('AgentTablesNotGranted', roles.getAttString('NotGrantedTables'), 'Stream tables the master user could not grant to the agent role (their owner must)');
    output('DrainDocumentName', this.runbook.drainDocument.documentName, 'SSM Command document that drains a worker\'s buffer (rds-failover drain runs it)');
    output('RunbookStateMachineArn', this.runbook.stateMachine.stateMachineArn, 'The failover runbook (rds-failover failover/switchover/plan start it)');
    output('AlertTopicArn', this.monitoring.topic.topicArn, 'SNS topic of lag alerts, alarms and runbook events (Slack subscribes to it)');
    output('SlackWebhookSecretArn', this.monitoring.webhookSecret.secretArn, 'Put the Slack incoming-webhook URL here: {"url": "https://hooks.slack.com/..."}');
    output('DashboardName', this.monitoring.dashboard.dashboardName, 'CloudWatch dashboard of lag, backlog, failovers and alarms');
  }
}

/** The tables the workers' agent writes into and their keys (workers.streams, validated by the agent's parser). */
function agentTables(streams: Readonly<Record<string, unknown>>): { table: string; keyColumns: string[] }[] {
  return Object.values(parseStreams(streams)).map((s) => ({ table: s.table, keyColumns: [...s.key] }));
}
