/** A small stack holding what the failover stack hands to the Runbook construct (used by template and state-machine tests). */
import { App, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { AwsSolutionsChecks } from 'cdk-nag';
import { Runbook, type RunbookProps } from '../../lib/runbook.js';

export function buildRunbookStack(overrides: Partial<RunbookProps> = {}, options: { bundle?: boolean; nag?: boolean } = {}) {
  const app = new App({ context: options.bundle ? {} : { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'RunbookTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: 2,
    natGateways: 0,
    subnetConfiguration: [{ name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    restrictDefaultSecurityGroup: false,
  });
  Validations.of(vpc).acknowledge({ id: 'AwsSolutions-VPC7', reason: 'Test scaffolding: the real stack has flow logs.' });
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true, removalPolicy: RemovalPolicy.DESTROY });
  const logKey = new kms.Key(stack, 'LogKey', { enableKeyRotation: true, removalPolicy: RemovalPolicy.DESTROY });
  logKey.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal('logs.eu-west-1.amazonaws.com')],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
    }),
  );
  const dbSecret = new secretsmanager.Secret(stack, 'DbSecret', { encryptionKey: key });
  Validations.of(dbSecret).acknowledge({ id: 'AwsSolutions-SMG4', reason: 'Test scaffolding: the real stack rotates the credentials.' });
  const controller = new ec2.SecurityGroup(stack, 'Controller', { vpc, allowAllOutbound: false });
  const quarantine = new ec2.SecurityGroup(stack, 'Quarantine', { vpc, allowAllOutbound: false });
  const zone = new route53.PrivateHostedZone(stack, 'Zone', { zoneName: 'prod.rds-failover.internal', vpc });
  const writerParameter = new ssm.StringParameter(stack, 'WriterParam', { parameterName: '/rds-failover/prod/writer-instance-id', stringValue: 'prod-a' });
  const topologyParameter = new ssm.StringParameter(stack, 'TopologyParam', { parameterName: '/rds-failover/prod/topology', stringValue: '{}' });
  const topic = new sns.Topic(stack, 'Topic', { masterKey: key, enforceSSL: true });
  const monitoringRole = new iam.Role(stack, 'RdsMonitoringRole', { assumedBy: new iam.ServicePrincipal('monitoring.rds.amazonaws.com') });
  const runbook = new Runbook(stack, 'Runbook', {
    clusterId: 'prod',
    vpc,
    dbClientSecurityGroup: controller,
    dbCredentialsSecret: dbSecret,
    databaseName: 'app',
    fenceDatabases: ['app'],
    hostedZone: zone,
    writerRecordName: 'writer.prod.rds-failover.internal',
    writerParameter,
    topologyParameter,
    quarantineSecurityGroup: quarantine,
    notificationTopic: topic,
    key,
    logKey,
    dbStorageKey: key,
    monitoringRole,
    workers: { tagKey: 'rds-failover:role', tagValue: 'worker', bufferPath: '/data/buffer/outbox.db', configPath: '/etc/rds-failover/agent.json' },
    ...overrides,
  });
  if (options.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack, runbook, key, logKey, dbSecret, controller, quarantine, zone, writerParameter, topologyParameter, topic, monitoringRole };
}
