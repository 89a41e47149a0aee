import { CustomResource, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { DatabaseRolesProperties } from '../src/aws/database-roles-resource.js';
import type { TableGrant } from '../src/pg/database-roles.js';
import { ControllerFunction, RDS_CA_ENVIRONMENT } from './controller-function.js';

export const AGENT_ROLE = 'rds_failover_agent';
export const MONITOR_ROLE = 'rds_failover_monitor';

export interface DatabaseRolesProps {
  readonly clusterId: string;
  readonly vpc: ec2.IVpc;
  /** Subnets of the function and the rotation Lambdas (they must reach the database and the Secrets Manager endpoint). */
  readonly subnets: ec2.SubnetSelection;
  /** A security group allowed to reach the database port. */
  readonly dbClientSecurityGroup: ec2.ISecurityGroup;
  /** The master user's secret: the function applies the roles with it. */
  readonly masterSecret: secretsmanager.ISecret;
  /** Its rotation: the roles are applied after it is set up (the function also retries a password refused mid-rotation). */
  readonly masterSecretRotation?: secretsmanager.RotationSchedule;
  /** The primary the roles are created on (they replicate to the replicas). */
  readonly primary: rds.CfnDBInstance;
  readonly databaseName: string;
  /** The agent's stream tables and their key columns (workers.streams). */
  readonly agentTables: readonly TableGrant[];
  readonly rotationDays: number;
  readonly key: kms.IKey;
  readonly logKey: kms.IKey;
}

/**
 * The workers and the lag monitor log in as roles of their own instead of the master user: a custom
 * resource applies them on the primary at every deploy that changes them (src/pg/database-roles.ts), each
 * with a secret of its own, rotated by its own user (single-user rotation). The agent role may INSERT into
 * its stream tables and read their key columns, plus pg_read_all_stats; the monitor role has pg_monitor.
 * The same resource creates the lineage (schema rds_failover with the root epoch, src/pg/lineage.ts): the agent
 * role reads it and records its confirmations, the monitor role reads both tables.
 * The runbook keeps the master user: fencing needs ALTER DATABASE and pg_terminate_backend, and it records epochs.
 */
export class DatabaseRoles extends Construct {
  readonly agentSecret: secretsmanager.ISecret;
  readonly monitorSecret: secretsmanager.ISecret;
  readonly resource: CustomResource;
  readonly function: ControllerFunction;

  constructor(scope: Construct, id: string, props: DatabaseRolesProps) {
    super(scope, id);
    if (props.agentTables.length === 0) throw new Error(`DatabaseRoles ${id}: agentTables must name at least one table (workers.streams)`);
    // Attached to the primary: the secret carries host and port, which the hosted rotation needs.
    const secret = (name: string, username: string) =>
      new rds.DatabaseSecret(this, name, { username, dbname: props.databaseName, encryptionKey: props.key }).attach({
        asSecretAttachmentTarget: () => ({ targetId: props.primary.ref, targetType: secretsmanager.AttachmentTargetType.RDS_DB_INSTANCE }),
      });
    this.agentSecret = secret('AgentCredentials', AGENT_ROLE);
    this.monitorSecret = secret('MonitorCredentials', MONITOR_ROLE);

    this.function = new ControllerFunction(this, 'Function', {
      handlerDir: 'database-roles',
      description: `rds-failover ${props.clusterId}: apply the agent and monitor PostgreSQL roles (custom resource)`,
      logKey: props.logKey,
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [props.dbClientSecurityGroup],
      timeout: Duration.minutes(2),
      environment: {
        DB_SECRET_ARN: props.masterSecret.secretArn,
        DB_HOST: props.primary.attrEndpointAddress,
        DB_PORT: props.primary.attrEndpointPort,
        DB_NAME: props.databaseName,
        DB_INSTANCE_ID: props.primary.ref,
        ...RDS_CA_ENVIRONMENT,
      },
    });
    for (const s of [props.masterSecret, this.agentSecret, this.monitorSecret]) s.grantRead(this.function.function);

    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.function.function,
      logGroup: new logs.LogGroup(this, 'ProviderLogs', { encryptionKey: props.logKey, retention: logs.RetentionDays.ONE_MONTH }),
    });
    const properties: DatabaseRolesProperties = {
      AgentSecretArn: this.agentSecret.secretArn,
      MonitorSecretArn: this.monitorSecret.secretArn,
      Tables: JSON.stringify(props.agentTables),
    };
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::RdsFailoverDatabaseRoles',
      properties: { ...properties },
    });
    if (props.masterSecretRotation) this.resource.node.addDependency(props.masterSecretRotation);

    for (const [name, s] of [['AgentRotation', this.agentSecret], ['MonitorRotation', this.monitorSecret]] as const) {
      const rotation = s.addRotationSchedule(name, {
        automaticallyAfter: Duration.days(props.rotationDays),
        hostedRotation: secretsmanager.HostedRotation.postgreSqlSingleUser({
          vpc: props.vpc,
          vpcSubnets: props.subnets,
          securityGroups: [props.dbClientSecurityGroup],
        }),
      });
      // The first rotation runs right away: the role must exist by then.
      rotation.node.addDependency(this.resource);
    }
    this.acknowledge(provider);
  }

  private acknowledge(provider: cr.Provider): void {
    const fn = this.function.function;
    this.function.acknowledgeFindings([{ id: 'AwsSolutions-IAM5[Resource::*]', reason: 'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.' }]);
    Validations.of(provider).acknowledge(
      { id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]', reason: 'The CDK custom-resource framework function: logs only.' },
      {
        id: `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
        reason: 'The CDK custom-resource framework may invoke every version of the one onEvent function (<arn>:*).',
      },
      { id: 'AwsSolutions-L1', reason: 'The CDK custom-resource framework picks its own runtime.' },
    );
  }
}
