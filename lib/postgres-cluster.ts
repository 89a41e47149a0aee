import { Duration, RemovalPolicy, Tags, Validations } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { DatabaseConfig } from './config.js';
import { planNodes, type NodePlan } from './topology.js';
import { ResourceTag } from '../src/core/resource-tags.js';

/**
 * WAL, replication and logging settings of every node (primary and replicas share the group, so a promoted replica
 * keeps them). Values are in the units RDS uses for each parameter.
 */
export const DEFAULT_DB_PARAMETERS: Readonly<Record<string, string>> = {
  // Spread checkpoints out: fewer full-page writes, steadier replication; recovery after a crash stays bounded.
  checkpoint_timeout: '900', // seconds
  max_wal_size: '8192', // MB
  min_wal_size: '1024', // MB
  wal_buffers: '2048', // 8 kB pages = 16 MB (static: applied at the next reboot)
  // Replicas are failover candidates: keep their replay close to the primary.
  hot_standby_feedback: '1',
  max_standby_streaming_delay: '5000', // ms
  max_standby_archive_delay: '5000', // ms
  'rds.force_ssl': '1',
  log_min_duration_statement: '1000', // ms
  log_lock_waits: '1',
  log_checkpoints: '1',
  log_autovacuum_min_duration: '10000', // ms
  log_temp_files: '10240', // kB
  log_replication_commands: '1',
};

export const LOG_EXPORTS = ['postgresql', 'upgrade'] as const;
/** CA of the server certificates the workers and Lambdas verify (TLS is forced by rds.force_ssl). */
export const CA_CERTIFICATE = 'rds-ca-rsa2048-g1';

export interface PostgresClusterProps {
  readonly clusterId: string;
  /** Topology, sizing, windows and settings (validated by parseConfig). */
  readonly database: DatabaseConfig;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Security group of every node in the topology. */
  readonly securityGroup: ec2.ISecurityGroup;
  /** Security group of retired (fenced) former primaries: no ingress. */
  readonly quarantineSecurityGroup: ec2.ISecurityGroup;
  /** Security group of the credentials-rotation Lambda (must reach the database port). */
  readonly rotationSecurityGroup: ec2.ISecurityGroup;
  /** Subnets of the rotation Lambda (must reach the Secrets Manager endpoint). */
  readonly rotationSubnets: ec2.SubnetSelection;
  /** Customer-managed key for storage, Performance Insights and the credentials secret. */
  readonly key: kms.IKey;
  /** Key of the exported PostgreSQL log groups. */
  readonly logKey: kms.IKey;
}

/**
 * RDS PostgreSQL 16: one DB instance per configured node (`<clusterId>-<node>`), the primary plus read replicas of it,
 * and former primaries kept fenced until removed. Shared parameter group, subnet group, rotated credentials secret
 * (attached to the primary), Enhanced Monitoring role and KMS-encrypted log groups for the log exports.
 */
export class PostgresCluster extends Construct {
  /** The master secret's rotation (its first run starts right after creation). */
  readonly secretRotation: secretsmanager.RotationSchedule;
  readonly nodes: readonly NodePlan[];
  /** Every DB instance by node name (topology and retired). */
  readonly instances: Readonly<Record<string, rds.CfnDBInstance>>;
  readonly primary: NodePlan;
  readonly primaryInstance: rds.CfnDBInstance;
  readonly secret: rds.DatabaseSecret;
  readonly port: number;
  readonly databaseName: string;
  readonly parameterGroup: rds.ParameterGroup;
  readonly monitoringRole: iam.Role;

  constructor(scope: Construct, id: string, props: PostgresClusterProps) {
    super(scope, id);
    const db = props.database;
    if (!db.nodes.includes(db.primary)) throw new Error(`PostgresCluster ${id}: primary '${db.primary}' is not one of nodes (${db.nodes.join(', ')})`);
    if (db.originalPrimary !== db.primary && db.nodes.includes(db.originalPrimary)) {
      throw new Error(`PostgresCluster ${id}: '${db.originalPrimary}' was created as the primary and cannot become a replica without replacement; retire it`);
    }
    this.port = db.port;
    this.databaseName = db.databaseName;
    this.nodes = planNodes({ clusterId: props.clusterId, ...db });
    this.primary = this.nodes.find((n) => n.role === 'primary')!;

    const engine = rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.of(db.engineVersion, '16') });
    this.parameterGroup = new rds.ParameterGroup(this, 'Parameters', {
      engine,
      description: `rds-failover ${props.clusterId}: WAL, replication, TLS and logging settings`,
      parameters: { ...DEFAULT_DB_PARAMETERS, ...db.parameters },
    });
    const parameterGroupName = this.parameterGroup.bindToInstance({}).parameterGroupName;
    const subnetGroup = new rds.SubnetGroup(this, 'Subnets', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      description: `rds-failover ${props.clusterId}: isolated data subnets`,
    });

    this.monitoringRole = new iam.Role(this, 'MonitoringRole', {
      assumedBy: new iam.ServicePrincipal('monitoring.rds.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonRDSEnhancedMonitoringRole')],
    });
    Validations.of(this.monitoringRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]',
      reason: 'The AWS-maintained Enhanced Monitoring policy only writes to the RDSOSMetrics log group; its service role is assumable by monitoring.rds.amazonaws.com alone.',
    });

    this.secret = new rds.DatabaseSecret(this, 'Credentials', {
      username: db.masterUsername,
      dbname: db.databaseName,
      encryptionKey: props.key,
    });

    // The primary first: replicas reference it (Ref), which also orders their creation after it.
    this.primaryInstance = this.renderNode(this.primary, props, parameterGroupName, subnetGroup.subnetGroupName);
    const instances: Record<string, rds.CfnDBInstance> = {};
    for (const node of this.nodes) {
      instances[node.name] =
        node === this.primary ? this.primaryInstance : this.renderNode(node, props, parameterGroupName, subnetGroup.subnetGroupName, this.primaryInstance.ref);
    }
    this.instances = instances;

    const attached = this.secret.attach({
      asSecretAttachmentTarget: () => ({
        targetId: this.primaryInstance.ref,
        targetType: secretsmanager.AttachmentTargetType.RDS_DB_INSTANCE,
      }),
    });
    this.secretRotation = attached.addRotationSchedule('Rotation', {
      automaticallyAfter: Duration.days(db.credentialsRotationDays),
      hostedRotation: secretsmanager.HostedRotation.postgreSqlSingleUser({
        vpc: props.vpc,
        vpcSubnets: props.rotationSubnets,
        securityGroups: [props.rotationSecurityGroup],
      }),
    });
  }

  /** Identifiers of the topology's instances by node name (retired nodes excluded). */
  get topologyInstanceIds(): Record<string, string> {
    return Object.fromEntries(this.nodes.filter((n) => n.role !== 'retired').map((n) => [n.name, n.instanceId]));
  }

  private renderNode(node: NodePlan, props: PostgresClusterProps, parameterGroupName: string, subnetGroupName: string, primaryRef?: string): rds.CfnDBInstance {
    const db = props.database;
    if (node.role === 'replica' && !primaryRef) throw new Error(`PostgresCluster: replica '${node.name}' rendered without its primary`);
    const isPrimary = node.role === 'primary';
    // A retired node was a primary: it keeps its backups (no modification) but loses deletion protection.
    const hasBackups = node.role !== 'replica';
    const logGroups = LOG_EXPORTS.map(
      (type) =>
        new logs.LogGroup(this, `Logs-${node.name}-${type}`, {
          logGroupName: `/aws/rds/instance/${node.instanceId}/${type}`,
          encryptionKey: props.logKey,
          retention: db.logRetentionDays as logs.RetentionDays,
          // Named after the instance: destroyed with it so that the stack (or the node) can be created again.
          removalPolicy: RemovalPolicy.DESTROY,
        }),
    );

    const instance = new rds.CfnDBInstance(this, `Node-${node.name}`, {
      dbInstanceIdentifier: node.instanceId,
      dbInstanceClass: db.instanceClass,
      engine: 'postgres',
      engineVersion: db.engineVersion,
      allowMajorVersionUpgrade: false,
      autoMinorVersionUpgrade: true,
      storageType: 'gp3',
      allocatedStorage: String(db.allocatedStorageGiB),
      maxAllocatedStorage: db.maxAllocatedStorageGiB,
      // Create-only properties (StorageEncrypted, KmsKeyId, Port, DBSubnetGroupName, MasterUsername, DBName) never
      // depend on the current role, so promotion never forces a replacement. A same-region replica inherits its
      // source's encryption and key, and AWS says not to specify them for it: only the original primary does.
      storageEncrypted: node.createdAsPrimary ? true : undefined,
      kmsKeyId: node.createdAsPrimary ? props.key.keyArn : undefined,
      port: String(db.port),
      dbSubnetGroupName: subnetGroupName,
      dbParameterGroupName: parameterGroupName,
      caCertificateIdentifier: CA_CERTIFICATE,
      vpcSecurityGroups: [(node.role === 'retired' ? props.quarantineSecurityGroup : props.securityGroup).securityGroupId],
      publiclyAccessible: false,
      multiAz: node.role === 'replica' ? db.replicasMultiAz : db.multiAz,
      enableIamDatabaseAuthentication: true,
      monitoringInterval: db.monitoringIntervalSeconds,
      monitoringRoleArn: this.monitoringRole.roleArn,
      enablePerformanceInsights: true,
      performanceInsightsKmsKeyId: props.key.keyArn,
      performanceInsightsRetentionPeriod: db.performanceInsightsRetentionDays,
      enableCloudwatchLogsExports: [...LOG_EXPORTS],
      copyTagsToSnapshot: true,
      deleteAutomatedBackups: false,
      deletionProtection: isPrimary ? db.deletionProtection : false,
      preferredMaintenanceWindow: db.windows[node.name].maintenance,
      backupRetentionPeriod: hasBackups ? db.backupRetentionDays : undefined,
      preferredBackupWindow: hasBackups ? db.windows[node.name].backup : undefined,
      sourceDbInstanceIdentifier: node.role === 'replica' ? primaryRef : undefined,
      masterUsername: node.createdAsPrimary ? db.masterUsername : undefined,
      masterUserPassword: node.createdAsPrimary ? this.secret.secretValueFromJson('password').unsafeUnwrap() : undefined,
      dbName: node.createdAsPrimary ? db.databaseName : undefined,
    });
    instance.applyRemovalPolicy(db.removalPolicy === 'retain' ? RemovalPolicy.RETAIN : RemovalPolicy.SNAPSHOT);
    for (const group of logGroups) instance.node.addDependency(group);
    Tags.of(instance).add(ResourceTag.Cluster, props.clusterId);
    Tags.of(instance).add(ResourceTag.Node, node.name);
    const failover = db.failover[node.name];
    if (failover) {
      Tags.of(instance).add(ResourceTag.Priority, String(failover.priority));
      Tags.of(instance).add(ResourceTag.NoFailover, String(failover.noFailover));
    }
    this.acknowledgeFindings(instance, node, db);
    return instance;
  }

  private acknowledgeFindings(instance: rds.CfnDBInstance, node: NodePlan, db: DatabaseConfig): void {
    const ack = (id: string, reason: string) => Validations.of(instance).acknowledge({ id, reason });
    if (db.port === 5432) {
      ack('AwsSolutions-RDS11', 'Workers, the agent and the operator tools expect PostgreSQL on 5432; only the workers and controller security groups reach it, so a non-default port would add no protection (set database.port to change it).');
    }
    if (!node.createdAsPrimary) {
      const reason = 'Encrypted: created as a read replica of the encrypted original primary, it inherits that encryption and KMS key (AWS: do not specify KmsKeyId for a same-region replica). CloudFormation forbids StorageEncrypted together with SourceDBInstanceIdentifier, and adding it after a promotion would replace the instance.';
      ack('AwsSolutions-RDS2', reason);
      ack('CloudFormation-Validate::W9008', reason);
    }
    if (node.role === 'replica') {
      ack('AwsSolutions-RDS13', 'RDS for PostgreSQL read replicas do not support automated backups; backups run on the primary and start on a replica when it is promoted.');
      ack('AwsSolutions-RDS10', 'Read replicas hold no data of their own (copies of the primary) and must be replaceable by the reconcile step after a failover; the primary is deletion-protected.');
      if (!db.replicasMultiAz) ack('AwsSolutions-RDS3', 'The read replicas are themselves the failover targets of the runbook; database.replicasMultiAz=false avoids a second standby per replica. The primary is Multi-AZ unless database.multiAz=false.');
    }
    if (node.role === 'retired') {
      ack('AwsSolutions-RDS10', 'A retired former primary is fenced in the quarantine security group and kept only until the operator removes it from database.retired; deletion protection is off so that this removal can delete it (with a final snapshot).');
    }
    if (node.role === 'primary' && !db.deletionProtection) {
      ack('AwsSolutions-RDS10', 'Deletion protection disabled by configuration (database.deletionProtection=false), e.g. for a disposable test environment.');
    }
    if (node.role !== 'replica' && !db.multiAz) {
      ack('AwsSolutions-RDS3', 'Multi-AZ disabled by configuration (database.multiAz=false); the read replicas and the failover runbook remain the recovery path.');
    }
  }
}
