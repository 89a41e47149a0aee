import * as path from 'node:path';
import { AssetHashType, Aws, RemovalPolicy, Size, Stack, Tags, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { Dimension, METRIC_NAMESPACE } from '../src/core/metric-names.js';
import { agentAssetBundling } from './agent-bundle.js';
import { AGENT, workerUserData } from './worker-user-data.js';
import { ResourceTag, WORKER_ROLE } from '../src/core/resource-tags.js';

/** Tags the runbook (SSM SendCommand), the patch window and the snapshot policy target the workers by. */
export const WORKER_TAGS = { cluster: ResourceTag.Cluster, role: ResourceTag.Role, roleValue: WORKER_ROLE } as const;
export const DATA_VOLUME_DEVICE = '/dev/sdf';
/** Makes cloud-init run the bootstrap script (the shell part) at every boot, not only the first. */
export const EVERY_BOOT_CLOUD_CONFIG = '#cloud-config\ncloud_final_modules:\n  - [scripts-user, always]\n';

/** Only names the asset's source: the content is built at synth (agentAssetBundling). */
const AGENT_ASSET_SOURCE_DIR = path.join(__dirname, 'assets', 'agent');

export interface BufferedWorkersProps {
  readonly clusterId: string;
  readonly vpc: ec2.IVpc;
  /** Subnets the workers are spread over (one per AZ, round-robin). */
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroup: ec2.ISecurityGroup;
  /** Encrypts the root and data volumes. */
  readonly key: kms.IKey;
  /** Number of workers (1 to 20). */
  readonly count: number;
  readonly instanceType: ec2.InstanceType;
  /**
   * Pinned AMI id.
   * @default - latest Amazon Linux 2023 for the instance type's architecture, resolved at deploy time
   */
  readonly amiId?: string;
  /**
   * @default 16
   */
  readonly rootVolumeGiB?: number;
  /** Size of the buffer's data volume, GiB. */
  readonly dataVolumeGiB: number;
  /** DNS name of the writer endpoint. */
  readonly writerHost: string;
  readonly writerPort: number;
  readonly databaseName: string;
  /** Database credentials; the workers may read it. */
  readonly secret: secretsmanager.ISecret;
  /**
   * The agent's stream -> table mapping, copied into its config (validated by the CDK config with the agent's parser).
   */
  readonly streams: Readonly<Record<string, unknown>>;
  /**
   * Folder shipped to the workers as the agent bundle instead of the one built at synth: it must hold
   * `rds-failover-agent.cjs`, a Node.js 22.16+ `node` for the instance type's CPU and `rds-ca-bundle.pem`.
   * @default - built at synth (lib/agent-bundle.ts)
   */
  readonly agentAssetDir?: string;
  /** PEM of the RDS CAs shipped in the built asset (workers.rdsCaBundleFile). @default - the packaged bundle */
  readonly rdsCaBundleFile?: string;
}

/**
 * N EC2 workers running the write-buffer agent: private subnets, IMDSv2 only, SSM-managed (no key pair, no inbound
 * rule), detailed monitoring, termination protection, and an encrypted gp3 data volume per worker that is its own
 * resource (retained) attached at /dev/sdf, so the buffer outlives the instance.
 */
export class BufferedWorkers extends Construct {
  readonly instances: ec2.Instance[] = [];
  readonly dataVolumes: ec2.Volume[] = [];
  readonly role: iam.Role;
  readonly agentAsset: s3assets.Asset;
  /** The availability zones the workers run in, each once. */
  readonly availabilityZones: string[];

  constructor(scope: Construct, id: string, props: BufferedWorkersProps) {
    super(scope, id);
    if (!Number.isInteger(props.count) || props.count < 1 || props.count > 20) throw new Error(`BufferedWorkers ${id}: count must be 1 to 20, got ${props.count}`);
    if (Object.keys(props.streams).length === 0) throw new Error(`BufferedWorkers ${id}: streams must map at least one stream to its table: an agent without streams accepts no write`);
    if (!Number.isInteger(props.dataVolumeGiB) || props.dataVolumeGiB < 1) throw new Error(`BufferedWorkers ${id}: dataVolumeGiB must be a positive integer, got ${props.dataVolumeGiB}`);
    const rootVolumeGiB = props.rootVolumeGiB ?? 16;
    if (!Number.isInteger(rootVolumeGiB) || rootVolumeGiB < 8) throw new Error(`BufferedWorkers ${id}: rootVolumeGiB must be an integer of at least 8, got ${rootVolumeGiB}`);
    const subnets = props.vpc.selectSubnets(props.subnets).subnets;
    if (subnets.length === 0) throw new Error(`BufferedWorkers ${id}: the subnet selection matches no subnet`);
    this.availabilityZones = subnets.slice(0, props.count).map((s) => s.availabilityZone);

    const arch = props.instanceType.architecture === ec2.InstanceArchitecture.ARM_64 ? 'arm64' : 'x64';
    this.agentAsset = new s3assets.Asset(
      this,
      'AgentBundle',
      props.agentAssetDir
        ? { path: props.agentAssetDir }
        : { path: AGENT_ASSET_SOURCE_DIR, assetHashType: AssetHashType.OUTPUT, bundling: agentAssetBundling(arch, props.rdsCaBundleFile) },
    );
    this.role = this.createRole(props);
    const machineImage = props.amiId
      ? pinnedImage(props.amiId)
      : ec2.MachineImage.latestAmazonLinux2023({
          cpuType: arch === 'arm64' ? ec2.AmazonLinuxCpuType.ARM_64 : ec2.AmazonLinuxCpuType.X86_64,
        });

    for (let i = 0; i < props.count; i++) {
      const subnet = subnets[i % subnets.length];
      const volume = new ec2.Volume(this, `Data${i}`, {
        availabilityZone: subnet.availabilityZone,
        size: Size.gibibytes(props.dataVolumeGiB),
        volumeType: ec2.EbsDeviceVolumeType.GP3,
        encrypted: true,
        encryptionKey: props.key,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      const bootstrap = ec2.UserData.forLinux();
      bootstrap.addCommands(
        ...workerUserData({
          region: Aws.REGION,
          agentBucket: this.agentAsset.s3BucketName,
          agentKey: this.agentAsset.s3ObjectKey,
          dataVolumeId: volume.volumeId,
          agentConfigJson: Stack.of(this).toJsonString(this.agentConfig(props)),
        }),
      );
      // cloud-init runs user-data scripts once per instance; on every boot instead, a changed agent or config
      // (which stops and starts the instance) is installed when it comes back. The script is idempotent.
      const userData = new ec2.MultipartUserData();
      userData.addPart(ec2.MultipartBody.fromRawBody({ contentType: 'text/cloud-config; charset="utf8"', body: EVERY_BOOT_CLOUD_CONFIG }));
      userData.addUserDataPart(bootstrap, ec2.MultipartBody.SHELL_SCRIPT, false);
      const instance = new ec2.Instance(this, `Worker${i}`, {
        vpc: props.vpc,
        vpcSubnets: { subnets: [subnet] },
        securityGroup: props.securityGroup,
        instanceType: props.instanceType,
        machineImage,
        role: this.role,
        userData,
        requireImdsv2: true,
        detailedMonitoring: true,
        disableApiTermination: true,
        ssmSessionPermissions: false,
        propagateTagsToVolumeOnCreation: true,
        blockDevices: [
          {
            deviceName: '/dev/xvda',
            volume: ec2.BlockDeviceVolume.ebs(rootVolumeGiB, { volumeType: ec2.EbsDeviceVolumeType.GP3, encrypted: true, kmsKey: props.key, deleteOnTermination: true }),
          },
        ],
      });
      new ec2.CfnVolumeAttachment(this, `DataAttachment${i}`, {
        instanceId: instance.instanceId,
        volumeId: volume.volumeId,
        device: DATA_VOLUME_DEVICE,
      });
      for (const resource of [instance, volume]) {
        Tags.of(resource).add(WORKER_TAGS.cluster, props.clusterId);
        Tags.of(resource).add(WORKER_TAGS.role, WORKER_TAGS.roleValue);
        Tags.of(resource).add('Name', `${props.clusterId}-worker-${i}`);
      }
      this.instances.push(instance);
      this.dataVolumes.push(volume);
    }
  }

  get instanceIds(): string[] {
    return this.instances.map((i) => i.instanceId);
  }

  private agentConfig(props: BufferedWorkersProps): Record<string, unknown> {
    return {
      writerHost: props.writerHost,
      writerPort: props.writerPort,
      database: props.databaseName,
      secretArn: props.secret.secretArn,
      tlsCaFile: AGENT.rdsCaFile,
      bufferPath: AGENT.bufferPath,
      streams: props.streams,
      metrics: {
        enabled: true,
        namespace: METRIC_NAMESPACE,
        dimensions: { [Dimension.Cluster]: props.clusterId, [Dimension.Worker]: AGENT.instanceIdPlaceholder },
      },
    };
  }

  private createRole(props: BufferedWorkersProps): iam.Role {
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: `rds-failover ${props.clusterId} workers: SSM agent, DB credentials, buffer metrics, agent bundle`,
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DatabaseCredentials',
        actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
        resources: [props.secret.secretArn],
      }),
    );
    props.key.grantDecrypt(role);
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'AgentBundle',
        actions: ['s3:GetObject'],
        resources: [`arn:${Aws.PARTITION}:s3:::${this.agentAsset.s3BucketName}/${this.agentAsset.s3ObjectKey}`],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'BufferMetrics',
        actions: ['cloudwatch:PutMetricData'],
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
      }),
    );
    Validations.of(role).acknowledge(
      {
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
        reason: 'The AWS-maintained minimum for the SSM Agent (Run Command for drain and checkpoint, Session Manager instead of SSH, patching); AWS updates it with the agent.',
      },
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: 'cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the RdsFailover namespace by the cloudwatch:namespace condition.',
      },
    );
    return role;
  }
}

function pinnedImage(amiId: string): ec2.IMachineImage {
  return {
    getImage: () => ({ imageId: amiId, osType: ec2.OperatingSystemType.LINUX, userData: ec2.UserData.forLinux() }),
  };
}
