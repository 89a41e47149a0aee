import { spawnSync } from 'node:child_process';
import { Match } from 'aws-cdk-lib/assertions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EVERY_BOOT_CLOUD_CONFIG } from '../../lib/buffered-workers.js';
import { DEFAULT_INTERFACE_ENDPOINTS } from '../../lib/config.js';
import { parseDailyWindow, parseWeeklyWindow, findCollisions, type NamedWindow } from '../../lib/maintenance-windows.js';
import { DEFAULT_DB_PARAMETERS } from '../../lib/postgres-cluster.js';
import { topologyDocument } from '../../lib/topology.js';
import { makeConfig, resourcesOfType, synthFailoverStack, type SynthResult } from './helpers.js';

type Json = Record<string, unknown>;

/** The text of an Fn::Join/Fn::Base64 value with every intrinsic replaced by a marker naming it. */
function flatten(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(flatten).join('');
  const v = value as Json;
  if (v['Fn::Base64'] !== undefined) return flatten(v['Fn::Base64']);
  if (v['Fn::Join'] !== undefined) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(flatten).join(sep);
  }
  if (v.Ref !== undefined) return `<Ref:${String(v.Ref)}>`;
  if (v['Fn::GetAtt'] !== undefined) return `<GetAtt:${(v['Fn::GetAtt'] as string[]).join('.')}>`;
  if (typeof v['Fn::Sub'] === 'string') return v['Fn::Sub'];
  return `<${Object.keys(v)[0]}>`;
}

function bashSyntaxErrors(script: string): string {
  const r = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  return r.status === 0 ? '' : r.stderr;
}

function statements(template: SynthResult['template']): Array<{ Action: string | string[]; Resource: unknown; Effect: string }> {
  const out: Array<{ Action: string | string[]; Resource: unknown; Effect: string }> = [];
  for (const r of Object.values(resourcesOfType(template, 'AWS::IAM::Policy'))) out.push(...((r.Properties.PolicyDocument as Json).Statement as typeof out));
  for (const r of Object.values(resourcesOfType(template, 'AWS::IAM::Role'))) {
    for (const p of (r.Properties.Policies as Array<{ PolicyDocument: Json }> | undefined) ?? []) out.push(...(p.PolicyDocument.Statement as typeof out));
  }
  return out;
}

describe('FailoverStack with config/default.json', () => {
  let synth: SynthResult;
  let dbs: Record<string, { Properties: Json; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;
  let primaryId: string;

  beforeAll(() => {
    synth = synthFailoverStack();
    dbs = resourcesOfType(synth.template, 'AWS::RDS::DBInstance');
    primaryId = Object.entries(dbs).find(([, r]) => r.Properties.DBInstanceIdentifier === 'orders-a')![0];
  });

  it('has no unacknowledged cdk-nag or CloudFormation validation finding', () => {
    expect(synth.findings).toEqual([]);
  });

  describe('database', () => {
    it('is one primary and two read replicas of it, named <clusterId>-<node>', () => {
      expect(Object.values(dbs).map((r) => r.Properties.DBInstanceIdentifier).sort()).toEqual(['orders-a', 'orders-b', 'orders-c']);
      const replicas = Object.values(dbs).filter((r) => r.Properties.SourceDBInstanceIdentifier !== undefined);
      expect(replicas.map((r) => r.Properties.DBInstanceIdentifier).sort()).toEqual(['orders-b', 'orders-c']);
      for (const r of replicas) expect(r.Properties.SourceDBInstanceIdentifier).toEqual({ Ref: primaryId });
    });

    it('every node: PostgreSQL 16 on gp3, CMK-encrypted, private, IAM auth, Enhanced Monitoring, Performance Insights, log exports, shared parameter group', () => {
      const keyArn = { 'Fn::GetAtt': [Match.stringLikeRegexp('^DataKey'), 'Arn'] };
      for (const id of Object.keys(dbs)) {
        synth.template.hasResource('AWS::RDS::DBInstance', {
          Properties: Match.objectLike({
            DBInstanceIdentifier: dbs[id].Properties.DBInstanceIdentifier,
            Engine: 'postgres',
            EngineVersion: '16',
            StorageType: 'gp3',
            AllocatedStorage: '100',
            // A same-region replica inherits its source's key (AWS: do not specify it): only the original primary names it.
            KmsKeyId: id === primaryId ? keyArn : Match.absent(),
            PubliclyAccessible: false,
            EnableIAMDatabaseAuthentication: true,
            MonitoringInterval: 30,
            MonitoringRoleArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DatabaseMonitoringRole'), 'Arn'] },
            EnablePerformanceInsights: true,
            PerformanceInsightsKMSKeyId: keyArn,
            EnableCloudwatchLogsExports: ['postgresql', 'upgrade'],
            DBParameterGroupName: { Ref: Match.stringLikeRegexp('^DatabaseParameters') },
            DBSubnetGroupName: { Ref: Match.stringLikeRegexp('^DatabaseSubnets') },
            VPCSecurityGroups: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^SecurityGroupsDatabase'), 'GroupId'] }],
            CACertificateIdentifier: 'rds-ca-rsa2048-g1',
            Port: '5432',
          }),
          DeletionPolicy: 'Snapshot',
          UpdateReplacePolicy: 'Snapshot',
        });
      }
    });

    it('the primary holds the encryption flag, master user, backups (PITR >= 7 days), Multi-AZ and deletion protection', () => {
      expect(dbs[primaryId].Properties).toMatchObject({
        StorageEncrypted: true,
        MasterUsername: 'failover_admin',
        DBName: 'app',
        BackupRetentionPeriod: 7,
        PreferredBackupWindow: '22:00-22:30',
        MultiAZ: true,
        DeletionProtection: true,
        DeleteAutomatedBackups: false,
      });
      expect(flatten(dbs[primaryId].Properties.MasterUserPassword)).toMatch(/^\{\{resolve:secretsmanager:<Ref:DatabaseCredentials[0-9A-F]+>:SecretString:password::\}\}$/);
    });

    it('replicas declare only what a replica may (no master user, database name, backups or encryption flag)', () => {
      for (const r of Object.values(dbs).filter((x) => x.Properties.SourceDBInstanceIdentifier)) {
        for (const forbidden of ['MasterUsername', 'MasterUserPassword', 'DBName', 'BackupRetentionPeriod', 'PreferredBackupWindow', 'StorageEncrypted']) {
          expect(r.Properties[forbidden], `${String(r.Properties.DBInstanceIdentifier)}.${forbidden}`).toBeUndefined();
        }
        expect(r.Properties).toMatchObject({ MultiAZ: false, DeletionProtection: false });
      }
    });

    it('the parameter group carries the WAL, replication, TLS and logging settings', () => {
      synth.template.resourceCountIs('AWS::RDS::DBParameterGroup', 1);
      synth.template.hasResourceProperties('AWS::RDS::DBParameterGroup', {
        Family: 'postgres16',
        Parameters: { ...DEFAULT_DB_PARAMETERS },
      });
      expect(DEFAULT_DB_PARAMETERS).toMatchObject({ 'rds.force_ssl': '1', hot_standby_feedback: '1', checkpoint_timeout: '900', max_wal_size: '8192', min_wal_size: '1024', wal_buffers: '2048' });
    });

    it('credentials live in a KMS-encrypted secret, attached to the primary and rotated every 30 days from inside the VPC', () => {
      synth.template.hasResourceProperties('AWS::SecretsManager::Secret', {
        KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DataKey'), 'Arn'] },
        GenerateSecretString: Match.objectLike({ SecretStringTemplate: '{"username":"failover_admin","dbname":"app"}', GenerateStringKey: 'password' }),
      });
      synth.template.hasResourceProperties('AWS::SecretsManager::SecretTargetAttachment', { TargetId: { Ref: primaryId }, TargetType: 'AWS::RDS::DBInstance' });
      synth.template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', {
        RotationRules: { ScheduleExpression: 'rate(30 days)' },
        HostedRotationLambda: Match.objectLike({
          RotationType: 'PostgreSQLSingleUser',
          VpcSecurityGroupIds: { 'Fn::GetAtt': [Match.stringLikeRegexp('^SecurityGroupsController'), 'GroupId'] },
        }),
      });
    });

    it('each node exports its logs to a KMS-encrypted log group named after the instance', () => {
      for (const node of ['a', 'b', 'c']) {
        for (const type of ['postgresql', 'upgrade']) {
          synth.template.hasResourceProperties('AWS::Logs::LogGroup', {
            LogGroupName: `/aws/rds/instance/orders-${node}/${type}`,
            KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LogKey'), 'Arn'] },
            RetentionInDays: 30,
          });
        }
      }
    });
  });

  describe('maintenance windows', () => {
    it('no two RDS maintenance windows overlap, no backup window overlaps one, the worker patch window overlaps none', () => {
      const windows: NamedWindow[] = Object.values(dbs).map((r) => ({
        name: `${String(r.Properties.DBInstanceIdentifier)} maintenance`,
        window: parseWeeklyWindow(String(r.Properties.PreferredMaintenanceWindow)),
      }));
      expect(windows.map((w) => w.window.text).sort()).toEqual(['sun:04:00-sun:04:30', 'sun:05:00-sun:05:30', 'sun:06:00-sun:06:30']);
      const backup: NamedWindow = { name: 'backup', window: parseDailyWindow(String(dbs[primaryId].Properties.PreferredBackupWindow)) };
      const mw = Object.values(resourcesOfType(synth.template, 'AWS::SSM::MaintenanceWindow'));
      expect(mw).toHaveLength(1);
      expect(mw[0].Properties).toMatchObject({ Schedule: 'cron(0 12 ? * SUN *)', ScheduleTimezone: 'UTC', Duration: 2, Cutoff: 1, AllowUnassociatedTargets: false });
      const workers: NamedWindow = { name: 'workers', window: parseWeeklyWindow('sun:12:00-sun:14:00') };
      expect(findCollisions([...windows, backup, workers])).toEqual([]);
    });

    it('patches the workers one at a time with AWS-RunPatchBaseline, targeting them by tag', () => {
      synth.template.hasResourceProperties('AWS::SSM::MaintenanceWindowTarget', {
        ResourceType: 'INSTANCE',
        Targets: [
          { Key: 'tag:rds-failover:cluster', Values: ['orders'] },
          { Key: 'tag:rds-failover:role', Values: ['worker'] },
        ],
      });
      synth.template.hasResourceProperties('AWS::SSM::MaintenanceWindowTask', {
        TaskType: 'RUN_COMMAND',
        TaskArn: 'AWS-RunPatchBaseline',
        MaxConcurrency: '1',
        MaxErrors: '0',
        Targets: [{ Key: 'WindowTargetIds', Values: [{ Ref: Match.stringLikeRegexp('^WorkerMaintenanceWorkers') }] }],
        TaskInvocationParameters: {
          MaintenanceWindowRunCommandParameters: Match.objectLike({ Parameters: { Operation: ['Install'], RebootOption: ['RebootIfNeeded'] } }),
        },
      });
    });
  });

  describe('writer endpoint', () => {
    it('is a private hosted zone with writer.<zone> CNAME to the primary, TTL 5 s', () => {
      synth.template.hasResourceProperties('AWS::Route53::HostedZone', {
        Name: 'orders.rds-failover.internal.',
        VPCs: [Match.objectLike({ VPCId: { Ref: Match.stringLikeRegexp('^NetworkVpc') } })],
      });
      synth.template.resourceCountIs('AWS::Route53::RecordSet', 1);
      synth.template.hasResourceProperties('AWS::Route53::RecordSet', {
        Name: 'writer.orders.rds-failover.internal.',
        Type: 'CNAME',
        TTL: '5',
        ResourceRecords: [{ 'Fn::GetAtt': [primaryId, 'Endpoint.Address'] }],
      });
    });

    it('has SSM parameters with the writer instance id and the topology document', () => {
      synth.template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/rds-failover/orders/writer-instance-id', Type: 'String', Value: 'orders-a' });
      const topology = Object.values(resourcesOfType(synth.template, 'AWS::SSM::Parameter')).find((p) => p.Properties.Name === '/rds-failover/orders/topology');
      expect(JSON.parse(String(topology!.Properties.Value))).toEqual({
        version: 1,
        clusterId: 'orders',
        primary: 'a',
        nodes: [
          { name: 'a', instanceId: 'orders-a', role: 'primary' },
          { name: 'b', instanceId: 'orders-b', role: 'replica' },
          { name: 'c', instanceId: 'orders-c', role: 'replica' },
        ],
      });
      expect(JSON.parse(String(topology!.Properties.Value))).toEqual(topologyDocument({ clusterId: 'orders', nodes: ['a', 'b', 'c'], primary: 'a', originalPrimary: 'a', retired: [] }));
    });
  });

  describe('network and security groups', () => {
    it('spreads isolated subnets over 2 AZs with no NAT, no internet gateway, and flow logs of ALL traffic to an encrypted group', () => {
      synth.template.resourceCountIs('AWS::EC2::Subnet', 4);
      synth.template.allResourcesProperties('AWS::EC2::Subnet', { MapPublicIpOnLaunch: false });
      synth.template.resourceCountIs('AWS::EC2::NatGateway', 0);
      synth.template.resourceCountIs('AWS::EC2::InternetGateway', 0);
      synth.template.hasResourceProperties('AWS::EC2::FlowLog', { ResourceType: 'VPC', TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
      synth.template.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^LogKey'), 'Arn'] }, RetentionInDays: 90 });
      // The VPC's default security group is stripped of its rules (nothing uses it).
      synth.template.hasResourceProperties('Custom::VpcRestrictDefaultSG', { DefaultSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^NetworkVpc'), 'DefaultSecurityGroup'] } });
    });

    it('reaches AWS APIs through gateway (S3, DynamoDB) and interface endpoints', () => {
      const endpoints = Object.values(resourcesOfType(synth.template, 'AWS::EC2::VPCEndpoint'));
      const names = endpoints.map((e) => flatten(e.Properties.ServiceName));
      expect(endpoints.filter((e) => e.Properties.VpcEndpointType === 'Gateway').map((e) => flatten(e.Properties.ServiceName).split('.').pop()).sort()).toEqual(['dynamodb', 's3']);
      for (const name of DEFAULT_INTERFACE_ENDPOINTS) expect(names.some((n) => n.endsWith(`.${name}`)), name).toBe(true);
      expect(endpoints.filter((e) => e.Properties.VpcEndpointType === 'Interface')).toHaveLength(DEFAULT_INTERFACE_ENDPOINTS.length);
      for (const e of endpoints.filter((x) => x.Properties.VpcEndpointType === 'Interface')) expect(e.Properties.PrivateDnsEnabled).toBe(true);
    });

    it('only the workers and controller security groups reach the database, on 5432', () => {
      const ingress = Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupIngress'));
      expect(ingress).toHaveLength(2);
      for (const rule of ingress) {
        expect(rule.Properties).toMatchObject({ IpProtocol: 'tcp', FromPort: 5432, ToPort: 5432, GroupId: { 'Fn::GetAtt': [expect.stringMatching(/^SecurityGroupsDatabase/), 'GroupId'] } });
      }
      const sources = ingress.map((r) => ((r.Properties.SourceSecurityGroupId as Json)['Fn::GetAtt'] as string[])[0].replace(/[0-9A-F]{8}$/, '')).sort();
      expect(sources).toEqual(['SecurityGroupsController', 'SecurityGroupsWorkers']);
      const dbGroup = Object.entries(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroup')).find(([id]) => id.startsWith('SecurityGroupsDatabase'))![1];
      expect(dbGroup.Properties.SecurityGroupIngress).toBeUndefined();
    });

    it('nothing admits 0.0.0.0/0 or ::/0', () => {
      const rules = [
        ...Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroup')).flatMap((g) => (g.Properties.SecurityGroupIngress as Json[] | undefined) ?? []),
        ...Object.values(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroupIngress')).map((r) => r.Properties),
      ];
      expect(rules.length).toBeGreaterThan(0);
      for (const rule of rules) {
        expect(rule.CidrIp).not.toBe('0.0.0.0/0');
        expect(rule.CidrIpv6).not.toBe('::/0');
      }
    });

    it('the quarantine group admits nothing and sends nothing', () => {
      const quarantine = Object.entries(resourcesOfType(synth.template, 'AWS::EC2::SecurityGroup')).find(([id]) => id.startsWith('SecurityGroupsQuarantine'))![1];
      expect(quarantine.Properties.SecurityGroupIngress).toBeUndefined();
      expect(quarantine.Properties.SecurityGroupEgress).toEqual([{ CidrIp: '255.255.255.255/32', Description: 'Disallow all traffic', FromPort: 252, IpProtocol: 'icmp', ToPort: 86 }]);
      const refs = JSON.stringify(synth.template.toJSON()).match(/SecurityGroupsQuarantine[0-9A-F]{8}/g) ?? [];
      expect(new Set(refs).size).toBe(1);
    });
  });

  describe('IAM', () => {
    it('no statement grants a wildcard action', () => {
      const all = statements(synth.template);
      expect(all.length).toBeGreaterThan(5);
      for (const s of all) {
        for (const action of ([] as string[]).concat(s.Action)) {
          expect(action === '*' || action.endsWith(':*'), `wildcard action ${action}`).toBe(false);
        }
      }
    });

    it('the workers read only their secret, their agent bundle and put metrics only in the RdsFailover namespace', () => {
      const workerPolicy = Object.entries(resourcesOfType(synth.template, 'AWS::IAM::Policy')).find(([id]) => id.startsWith('WorkersRole'))![1];
      const s = (workerPolicy.Properties.PolicyDocument as Json).Statement as Json[];
      expect(s).toEqual(
        expect.arrayContaining([
          // their own role's secret (rds_failover_agent), never the master user's
          expect.objectContaining({ Sid: 'DatabaseCredentials', Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'], Resource: { Ref: expect.stringMatching(/^DatabaseRolesAgentCredentialsAttachment/) } }),
          expect.objectContaining({ Sid: 'BufferMetrics', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'RdsFailover' } } }),
          expect.objectContaining({ Sid: 'AgentBundle', Action: 's3:GetObject' }),
        ]),
      );
      expect(flatten(s.find((x) => x.Sid === 'AgentBundle')!.Resource)).toMatch(/^arn:<Ref:AWS::Partition>:s3:::cdk-[^/]+\/[0-9a-f]{64}\.zip$/);
    });
  });

  describe('database roles', () => {
    const resources = () => synth.template.toJSON().Resources as Record<string, { Type: string; Properties: Json; DependsOn?: string[] }>;
    const idOf = (prefix: string, type: string) => Object.keys(resourcesOfType(synth.template, type)).find((id) => id.startsWith(prefix))!;

    it('a custom resource applies the agent and monitor roles with their own secrets and the stream tables', () => {
      const [resource] = Object.values(resourcesOfType(synth.template, 'Custom::RdsFailoverDatabaseRoles'));
      expect(resource!.Properties).toEqual({
        ServiceToken: expect.anything(),
        AgentSecretArn: { Ref: idOf('DatabaseRolesAgentCredentialsAttachment', 'AWS::SecretsManager::SecretTargetAttachment') },
        MonitorSecretArn: { Ref: idOf('DatabaseRolesMonitorCredentialsAttachment', 'AWS::SecretsManager::SecretTargetAttachment') },
        Tables: JSON.stringify(Object.values(synth.stack.config.workers.streams as Record<string, { table: string; key: string[] }>).map((st) => ({ table: st.table, keyColumns: st.key }))),
      });
      const secrets = Object.values(resourcesOfType(synth.template, 'AWS::SecretsManager::Secret'))
        .filter((x) => (x.Properties.GenerateSecretString as Json | undefined)?.SecretStringTemplate !== undefined)
        .map((x) => JSON.parse((x.Properties.GenerateSecretString as Json).SecretStringTemplate as string).username);
      expect(secrets).toEqual(expect.arrayContaining(['rds_failover_agent', 'rds_failover_monitor']));
    });

    it('the function runs in the VPC with the master secret; each role secret rotates itself, only after the roles exist', () => {
      const fnId = idOf('DatabaseRolesFunction', 'AWS::Lambda::Function');
      const fn = resources()[fnId]!.Properties;
      expect(fn.VpcConfig).toBeDefined();
      expect((fn.Environment as Json).Variables).toMatchObject({ DB_SECRET_ARN: { Ref: expect.stringMatching(/^DatabaseCredentials[0-9A-F]+$/) }, DB_NAME: 'app', NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem' });
      const resourceId = idOf('DatabaseRoles', 'Custom::RdsFailoverDatabaseRoles');
      // after the master secret's rotation is set up (its first rotation may still run: the function retries)
      expect(resources()[resourceId]!.DependsOn).toContain(Object.keys(resources()).find((id) => id.startsWith('DatabaseCredentialsAttachmentRotation'))!);
      const schedules = Object.entries(resources()).filter(([id, r]) => r.Type === 'AWS::SecretsManager::RotationSchedule' && id.startsWith('DatabaseRoles'));
      expect(schedules).toHaveLength(2);
      for (const [, schedule] of schedules) {
        expect(schedule.DependsOn).toContain(resourceId);
        expect((schedule.Properties.HostedRotationLambda as Json).RotationType).toBe('PostgreSQLSingleUser');
      }
    });

    it('the lag monitor logs in as the monitor role', () => {
      const monitor = Object.entries(resourcesOfType(synth.template, 'AWS::Lambda::Function')).find(([id]) => id.startsWith('MonitoringLagMonitor'))![1];
      expect(JSON.stringify((monitor.Properties.Environment as Json).Variables)).toContain(idOf('DatabaseRolesMonitorCredentialsAttachment', 'AWS::SecretsManager::SecretTargetAttachment'));
      expect(JSON.stringify((monitor.Properties.Environment as Json).Variables)).not.toMatch(/"DatabaseCredentialsAttachment/);
    });
  });

  describe('workers', () => {
    it('two instances: IMDSv2 only, detailed monitoring, termination protection, no key pair, encrypted gp3 root', () => {
      const instances = Object.values(resourcesOfType(synth.template, 'AWS::EC2::Instance'));
      expect(instances).toHaveLength(2);
      for (const i of instances) {
        expect(i.Properties).toMatchObject({ DisableApiTermination: true, Monitoring: true, InstanceType: 't4g.small' });
        expect(i.Properties.KeyName).toBeUndefined();
        expect(i.Properties.BlockDeviceMappings).toEqual([
          { DeviceName: '/dev/xvda', Ebs: { DeleteOnTermination: true, Encrypted: true, KmsKeyId: { 'Fn::GetAtt': [expect.stringMatching(/^DataKey/), 'Arn'] }, VolumeSize: 16, VolumeType: 'gp3' } },
        ]);
      }
      synth.template.resourceCountIs('AWS::EC2::LaunchTemplate', 2);
      synth.template.allResourcesProperties('AWS::EC2::LaunchTemplate', { LaunchTemplateData: { MetadataOptions: { HttpTokens: 'required' } } });
    });

    it('each worker has its own encrypted gp3 data volume, retained, in its AZ, attached at /dev/sdf', () => {
      const instances = resourcesOfType(synth.template, 'AWS::EC2::Instance');
      const volumes = synth.template.findResources('AWS::EC2::Volume') as Record<string, { Properties: Json; DeletionPolicy: string }>;
      const attachments = Object.values(resourcesOfType(synth.template, 'AWS::EC2::VolumeAttachment'));
      expect(Object.keys(volumes)).toHaveLength(2);
      expect(attachments).toHaveLength(2);
      for (const v of Object.values(volumes)) {
        expect(v.Properties).toMatchObject({ Encrypted: true, VolumeType: 'gp3', Size: 20, KmsKeyId: { 'Fn::GetAtt': [expect.stringMatching(/^DataKey/), 'Arn'] } });
        expect(v.DeletionPolicy).toBe('Retain');
      }
      const pairs = attachments.map((a) => [(a.Properties.InstanceId as Json).Ref as string, (a.Properties.VolumeId as Json).Ref as string]);
      expect(new Set(pairs.map((p) => p[0])).size).toBe(2);
      expect(new Set(pairs.map((p) => p[1])).size).toBe(2);
      for (const [instanceId, volumeId] of pairs) {
        expect(instances[instanceId].Properties.AvailabilityZone).toEqual(volumes[volumeId].Properties.AvailabilityZone);
      }
      for (const a of attachments) expect(a.Properties.Device).toBe('/dev/sdf');
      const azs = Object.values(instances).map((i) => JSON.stringify(i.Properties.AvailabilityZone));
      expect(new Set(azs).size).toBe(2);
    });

    it('are tagged for the runbook and the snapshot policy', () => {
      for (const type of ['AWS::EC2::Instance', 'AWS::EC2::Volume']) {
        synth.template.allResourcesProperties(type, {
          Tags: Match.arrayWith([
            { Key: 'rds-failover:cluster', Value: 'orders' },
            { Key: 'rds-failover:role', Value: 'worker' },
          ]),
        });
      }
    });

    it('user data installs the agent with its own Node 22, mounts the data volume without reformatting it, writes the agent config and runs the agent under systemd', () => {
      const instances = Object.entries(resourcesOfType(synth.template, 'AWS::EC2::Instance'));
      const volumes = synth.template.findResources('AWS::EC2::Volume');
      const attachmentOf = (instanceId: string) =>
        Object.values(resourcesOfType(synth.template, 'AWS::EC2::VolumeAttachment')).find((a) => (a.Properties.InstanceId as Json).Ref === instanceId)!;
      for (const [instanceId, instance] of instances) {
        // MIME multipart: a cloud-config part that makes cloud-init run the script part at every boot
        const userData = flatten(instance.Properties.UserData);
        const boundary = /boundary="([^"]+)"/.exec(userData)![1]!;
        const parts = userData.split(`--${boundary}`).slice(1, -1).map((p) => ({ type: /Content-Type: ([^;\n]+)/.exec(p)![1], body: p.slice(p.indexOf('\n\n') + 2) }));
        expect(parts.map((p) => p.type)).toEqual(['text/cloud-config', 'text/x-shellscript']);
        expect(parts[0]!.body.trim()).toBe(EVERY_BOOT_CLOUD_CONFIG.trim());
        const script = parts[1]!.body;
        const volumeId = (attachmentOf(instanceId).Properties.VolumeId as Json).Ref as string;
        expect(Object.keys(volumes)).toContain(volumeId);
        expect(script.startsWith('#!/bin/bash\n')).toBe(true);
        expect(bashSyntaxErrors(script)).toBe('');
        expect(script).not.toContain('dnf install'); // no package repository needed: Node.js 22 comes in the asset
        expect(script).toContain('chmod 0755 /opt/rds-failover-agent/node\n');
        expect(script).toContain('exec /opt/rds-failover-agent/node --disable-warning=ExperimentalWarning /opt/rds-failover-agent/rds-failover-agent.cjs "\\$@"\n');
        expect(script).toContain(`VOLUME_ID='<Ref:${volumeId}>'`);
        expect(script).toMatch(/if \[ "\$status" -eq 2 \]; then\n {2}mkfs\.xfs -L rdsfailover "\$DEVICE"\n/);
        expect(script).toContain('/var/lib/rds-failover xfs defaults,nofail,noatime 0 2');
        expect(script).toMatch(/aws s3 cp --region <Ref:AWS::Region> "s3:\/\/cdk-[a-z0-9]+-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}\/[0-9a-f]{64}\.zip" \/opt\/rds-failover-agent\/agent\.zip/);
        expect(script).toContain('[Service]\nType=simple\nUser=rds-failover\nEnvironment=AWS_REGION=<Ref:AWS::Region>\nExecStart=/usr/local/bin/rds-failover-agent run --buffer /var/lib/rds-failover/outbox.sqlite --config /etc/rds-failover/agent.json\nRestart=always\n');
        expect(script).toContain('systemctl enable rds-failover-agent.service\n');
        expect(script).toContain('systemctl restart rds-failover-agent.service\n'); // at every boot: the new agent and config take effect
        const config = /<<'AGENT_CONFIG'\n(.*)\nAGENT_CONFIG/.exec(script)![1];
        expect(JSON.parse(config)).toEqual({
          writerHost: 'writer.orders.rds-failover.internal',
          writerPort: 5432,
          database: 'app',
          secretArn: expect.stringMatching(/^<Ref:DatabaseRolesAgentCredentialsAttachment[0-9A-F]+>$/),
          tlsCaFile: '/opt/rds-failover-agent/rds-ca-bundle.pem',
          bufferPath: '/var/lib/rds-failover/outbox.sqlite',
          streams: synth.stack.config.workers.streams,
          metrics: { enabled: true, namespace: 'RdsFailover', dimensions: { ClusterId: 'orders', WorkerId: '__INSTANCE_ID__' } },
        });
      }
    });
  });

  describe('snapshots', () => {
    it('DLM targets the worker instances by tag, skips boot volumes, hourly kept 24, daily kept 14, with a pre-script', () => {
      const policies = Object.values(resourcesOfType(synth.template, 'AWS::DLM::LifecyclePolicy'));
      expect(policies).toHaveLength(1);
      const p = policies[0].Properties;
      expect(p.State).toBe('ENABLED');
      const details = p.PolicyDetails as Json;
      expect(details).toMatchObject({
        PolicyType: 'EBS_SNAPSHOT_MANAGEMENT',
        ResourceTypes: ['INSTANCE'],
        TargetTags: [{ Key: 'rds-failover:cluster', Value: 'orders' }],
        Parameters: { ExcludeBootVolume: true },
      });
      const preScript = [
        {
          Stages: ['PRE'],
          ExecutionHandlerService: 'AWS_SYSTEMS_MANAGER',
          ExecutionHandler: { Ref: expect.stringMatching(/^SnapshotsPreScript/) },
          ExecuteOperationOnScriptFailure: true,
          ExecutionTimeout: 60,
          MaximumRetryCount: 0,
        },
      ];
      const [hourly, daily] = details.Schedules as Json[];
      expect(hourly).toMatchObject({ Name: 'hourly', CreateRule: { Interval: 1, IntervalUnit: 'HOURS', Scripts: preScript }, RetainRule: { Count: 24 } });
      expect(daily).toMatchObject({ Name: 'daily', CreateRule: { Interval: 24, IntervalUnit: 'HOURS', Times: ['03:00'], Scripts: preScript }, RetainRule: { Count: 14 } });
      expect(daily.CrossRegionCopyRules).toBeUndefined();
      expect(daily.FastRestoreRule).toBeUndefined();
    });

    it("the pre-script document runs the agent's checkpoint and answers DLM's dry-run", () => {
      // the other document is the runbook's drain document (test/infra/drain-document.test.ts)
      const all = Object.values(resourcesOfType(synth.template, 'AWS::SSM::Document'));
      expect(all.map((d) => d.Properties.Name ?? null).sort()).toEqual([null, 'rds-failover-orders-drain']);
      const docs = all.filter((d) => d.Properties.Name === undefined);
      const content = docs[0].Properties.Content as Json;
      expect(docs[0].Properties.DocumentType).toBe('Command');
      expect(content.parameters).toMatchObject({ command: { allowedValues: ['pre-script', 'post-script', 'dry-run'] }, executionId: { type: 'String' } });
      const step = (content.mainSteps as Json[])[0];
      const script = ((step.inputs as Json).runCommand as string[]).join('\n');
      expect(script).toContain('pre-script) /usr/local/bin/rds-failover-agent checkpoint --buffer /var/lib/rds-failover/outbox.sqlite ;;');
      expect(bashSyntaxErrors(script.replaceAll('{{ command }}', 'pre-script'))).toBe('');
    });

    it('the DLM role may run the pre-script only on instances carrying the cluster tag', () => {
      synth.template.hasResourceProperties('AWS::IAM::Role', {
        AssumeRolePolicyDocument: { Statement: [Match.objectLike({ Principal: { Service: 'dlm.amazonaws.com' } })] },
      });
      const dlmPolicy = Object.entries(resourcesOfType(synth.template, 'AWS::IAM::Policy')).find(([id]) => id.startsWith('SnapshotsRole'))![1];
      const s = (dlmPolicy.Properties.PolicyDocument as Json).Statement as Json[];
      expect(s.find((x) => x.Sid === 'RunPreScriptOnWorkers')).toMatchObject({ Action: 'ssm:SendCommand', Condition: { StringEquals: { 'ssm:resourceTag/rds-failover:cluster': 'orders' } } });
    });
  });

  describe('what the Monitoring and Runbook constructs get from the stack', () => {
    it('exposes the topology, groups, secret, endpoint, parameters and workers', () => {
      const s = synth.stack;
      expect(s.dbInstanceIds).toEqual({ a: 'orders-a', b: 'orders-b', c: 'orders-c' });
      expect(s.primaryNode).toBe('a');
      expect(s.writerRecordName).toBe('writer.orders.rds-failover.internal');
      expect(s.workerInstanceIds).toHaveLength(2);
      expect(s.workerTargetTags).toEqual({ 'rds-failover:cluster': 'orders', 'rds-failover:role': 'worker' });
      expect(s.writerParameterName).toBe('/rds-failover/orders/writer-instance-id');
      expect(s.topologyParameterName).toBe('/rds-failover/orders/topology');
      expect([s.dbSecurityGroup, s.controllerSecurityGroup, s.quarantineSecurityGroup, s.workersSecurityGroup].map((g) => g.node.path)).toEqual([
        `${s.stackName}/SecurityGroups/Database`,
        `${s.stackName}/SecurityGroups/Controller`,
        `${s.stackName}/SecurityGroups/Quarantine`,
        `${s.stackName}/SecurityGroups/Workers`,
      ]);
      expect(s.dbCredentialsSecret.node.path).toBe(`${s.stackName}/Database/Credentials`);
      expect(Object.keys(s.database.instances)).toEqual(['a', 'b', 'c']);
      expect(s.key.node.id).toBe('DataKey');
      expect(s.logKey.node.id).toBe('LogKey');
      expect(Object.keys(synth.template.toJSON().Outputs as Json).sort()).toEqual(
        [
          'AgentTablesMissing', 'AgentTablesNotGranted', 'AlertTopicArn', 'ClusterId', 'DashboardName', 'DatabaseSecretArn', 'DrainDocumentName', 'PrimaryInstanceId', 'RunbookStateMachineArn', 'SlackWebhookSecretArn',
          'TopologyParameterName', 'WorkerInstanceIds', 'WriterEndpointName', 'WriterParameterName',
        ],
      );
    });

    it('wires the monitor and the runbook: one state machine reading the writer parameters, alerts through one topic', () => {
      synth.template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
      // The auto-failover rule exists but is off until runbook.autoFailover.enabled.
      synth.template.hasResourceProperties('AWS::Events::Rule', { State: 'DISABLED', EventPattern: Match.objectLike({ source: ['aws.rds'] }) });
      synth.template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(1 minute)', State: 'ENABLED' });
      const stack = synth.stack;
      const ref = (c: { node: { defaultChild?: unknown } }) => ({ Ref: stack.getLogicalId(c.node.defaultChild as never) });
      // The runbook reads and repoints exactly the stack's writer parameter, topology parameter and writer record.
      synth.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: {
          Variables: Match.objectLike({
            WRITER_PARAMETER_NAME: ref(stack.writerParameter),
            TOPOLOGY_PARAMETER_NAME: ref(stack.topologyParameter),
            WRITER_RECORD_NAME: 'writer.orders.rds-failover.internal',
            TOPIC_ARN: ref(stack.monitoring.topic),
          }),
        },
      });
      // The drain must find every worker of the stack.
      const runbookConfig = Object.values(synth.template.findResources('AWS::Lambda::Function') as Record<string, { Properties: { Environment?: { Variables?: Record<string, unknown> } } }>)
        .map((f) => f.Properties.Environment?.Variables?.RUNBOOK_CONFIG)
        .find((v): v is string => typeof v === 'string');
      expect(JSON.parse(runbookConfig!)).toMatchObject({ expectedWorkers: 2, maxLagOnFailoverBytes: 1048576, timeoutMs: { confirmations: 300_000 }, pollIntervalMs: { confirmations: 5_000 } });
      // One alarm per worker on WorkerUnconfirmed: raised by a failover it has not confirmed, kept while no data comes,
      // cleared when its agent reports 0.
      const unconfirmed = Object.values(synth.template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'WorkerUnconfirmed' } }));
      expect(unconfirmed).toHaveLength(2);
      for (const alarm of unconfirmed) {
        expect(alarm.Properties).toMatchObject({ Namespace: 'RdsFailover', Statistic: 'Maximum', Threshold: 1, TreatMissingData: 'ignore', ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
        expect(alarm.Properties.Dimensions).toEqual([
          { Name: 'ClusterId', Value: 'orders' },
          { Name: 'WorkerId', Value: { Ref: expect.stringMatching(/^WorkersWorker/) } },
        ]);
      }
      // The lineage's root epoch is named after the primary instance the custom resource creates it on.
      synth.template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ DB_INSTANCE_ID: { Ref: Match.stringLikeRegexp('^DatabaseNodea') } }) } });
      // Drains target this cluster's workers by the cluster tag, through SSM Run Command.
      synth.template.hasResourceProperties('AWS::Lambda::Function', {
        Environment: { Variables: Match.objectLike({ WORKER_TAG_KEY: 'rds-failover:cluster', WORKER_TAG_VALUE: 'orders' }) },
      });
      synth.template.resourceCountIs('AWS::SNS::Topic', 1);
      expect(synth.stack.runbook.stateMachine.node.path).toBe(`${synth.stack.stackName}/Runbook/StateMachine`);
    });

    it('tags DB instances with the configured promotion preferences', () => {
      const variant = synthFailoverStack({ config: makeConfig({ database: { failover: { b: { priority: 5 }, c: { noFailover: true } } } }) });
      const tagsOf = (id: string) =>
        Object.values(variant.template.findResources('AWS::RDS::DBInstance') as Record<string, { Properties: { DBInstanceIdentifier: string; Tags: { Key: string; Value: string }[] } }>)
          .find((r) => r.Properties.DBInstanceIdentifier === id)!
          .Properties.Tags.filter((t) => t.Key === 'rds-failover:priority' || t.Key === 'rds-failover:nofailover');
      expect(tagsOf('orders-a')).toEqual([]);
      expect(tagsOf('orders-b')).toEqual(expect.arrayContaining([{ Key: 'rds-failover:priority', Value: '5' }, { Key: 'rds-failover:nofailover', Value: 'false' }]));
      expect(tagsOf('orders-c')).toEqual(expect.arrayContaining([{ Key: 'rds-failover:nofailover', Value: 'true' }]));
      expect(variant.findings).toEqual([]);
    });

    it('both KMS keys rotate, and CloudWatch Logs may use the log key only for this account', () => {
      synth.template.resourceCountIs('AWS::KMS::Key', 2);
      synth.template.allResourcesProperties('AWS::KMS::Key', { EnableKeyRotation: true });
      synth.template.hasResourceProperties('AWS::KMS::Key', {
        KeyPolicy: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Sid: 'CloudWatchLogs',
              Principal: { Service: { 'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } },
              Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': Match.anyValue() } },
            }),
          ]),
        },
      });
    });
  });
});

describe('FailoverStack variants', () => {
  it('N replicas from config: 4 nodes give 1 primary and 3 replicas, all cdk-nag clean', () => {
    const { template, findings } = synthFailoverStack({ config: makeConfig({ database: { nodes: ['a', 'b', 'c', 'd'], windows: { d: { maintenance: 'sun:07:00-sun:07:30', backup: '23:45-00:15' } } } }) });
    expect(findings).toEqual([]);
    const dbs = Object.values(resourcesOfType(template, 'AWS::RDS::DBInstance'));
    expect(dbs).toHaveLength(4);
    expect(dbs.filter((d) => d.Properties.SourceDBInstanceIdentifier)).toHaveLength(3);
  });

  it('optional cross-region copy and fast snapshot restore on the daily schedule', () => {
    const { template, findings } = synthFailoverStack({
      config: makeConfig({
        snapshots: {
          crossRegionCopy: { targetRegion: 'eu-central-1', retainDays: 30, kmsKeyArn: 'arn:aws:kms:eu-central-1:123456789012:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab' },
          fastSnapshotRestore: {},
        },
      }),
    });
    expect(findings).toEqual([]);
    const details = Object.values(resourcesOfType(template, 'AWS::DLM::LifecyclePolicy'))[0].Properties.PolicyDetails as Json;
    const daily = (details.Schedules as Json[])[1];
    expect(daily.CrossRegionCopyRules).toEqual([
      { Target: 'eu-central-1', Encrypted: true, CmkArn: 'arn:aws:kms:eu-central-1:123456789012:key/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab', CopyTags: true, RetainRule: { Interval: 30, IntervalUnit: 'DAYS' } },
    ]);
    // Defaults to the AZs the workers run in (their subnets'), each once.
    expect(daily.FastRestoreRule).toEqual({ AvailabilityZones: [{ 'Fn::Select': [0, { 'Fn::GetAZs': '' }] }, { 'Fn::Select': [1, { 'Fn::GetAZs': '' }] }], Count: 1 });
    expect((details.Schedules as Json[])[0].CrossRegionCopyRules).toBeUndefined();
  });

  it('a pinned env with 3 AZs from context synthesizes without lookups', () => {
    const { template, stack, findings } = synthFailoverStack({
      config: makeConfig({ env: { account: '123456789012', region: 'eu-west-1' }, network: { maxAzs: 3 } }),
      context: { 'availability-zones:account=123456789012:region=eu-west-1': ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'] },
    });
    expect(findings).toEqual([]);
    expect(stack.account).toBe('123456789012');
    expect(stack.region).toBe('eu-west-1');
    template.resourceCountIs('AWS::EC2::Subnet', 6);
    expect(JSON.stringify(template.toJSON())).not.toContain('Fn::GetAZs');
  });

  it('natGateways: 1 adds public subnets and gives the workers egress, still no public database', () => {
    const { template, findings } = synthFailoverStack({ config: makeConfig({ network: { natGateways: 1 } }) });
    expect(findings).toEqual([]);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.resourceCountIs('AWS::EC2::Subnet', 6);
    template.allResourcesProperties('AWS::RDS::DBInstance', { PubliclyAccessible: false });
  });

  it('the cdk-nag check is live: a queue added without TLS enforcement is reported', () => {
    const { findings } = synthFailoverStack({ configure: (stack) => new sqs.Queue(stack, 'Unsafe', { encryption: sqs.QueueEncryption.SQS_MANAGED }) });
    expect(findings).toEqual(expect.arrayContaining([expect.stringMatching(/^AwsSolutions-SQS4 RdsFailover-orders\/Unsafe\/Resource: /)]));
    expect(findings.every((f) => f.includes('/Unsafe/'))).toBe(true);
  });

  it('a pinned AMI is used as is', () => {
    const { template } = synthFailoverStack({ config: makeConfig({ workers: { amiId: 'ami-0123456789abcdef0' } }), nag: false });
    template.allResourcesProperties('AWS::EC2::Instance', { ImageId: 'ami-0123456789abcdef0' });
  });
});
