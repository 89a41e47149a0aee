import { Aws, Validations } from 'aws-cdk-lib';
import * as dlm from 'aws-cdk-lib/aws-dlm';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { ResourceTag } from '../src/core/resource-tags.js';

export interface BufferSnapshotsProps {
  readonly clusterId: string;
  /** Tag (key=value) carried by the worker instances; the policy targets instances with it. */
  readonly targetTag: { readonly key: string; readonly value: string };
  /** Key encrypting the worker volumes (DLM needs grants on it to snapshot them). */
  readonly volumeKey: kms.IKey;
  /** The pre-snapshot command run on each worker, e.g. `rds-failover-agent checkpoint --buffer ...`. */
  readonly checkpointCommand: string;
  /** Hourly schedule: every intervalHours (1, 2, 3, 4, 6, 8 or 12), keep `retain`. */
  readonly hourly: { readonly intervalHours: number; readonly retain: number };
  /** Daily schedule at `time` (hh:mm UTC), keep `retain`. */
  readonly daily: { readonly time: string; readonly retain: number };
  /**
   * Copy the daily snapshots to another region, encrypted (with `kmsKeyArn` there, or that region's default EBS key).
   * @default - no copy
   */
  readonly crossRegionCopy?: { readonly targetRegion: string; readonly retainDays: number; readonly kmsKeyArn?: string };
  /**
   * Fast snapshot restore of the newest daily snapshot in these availability zones.
   * @default - off
   */
  readonly fastSnapshotRestoreAzs?: readonly string[];
  /**
   * Seconds the pre-script may take (10 to 120).
   * @default 60
   */
  readonly preScriptTimeoutSeconds?: number;
}

const HOURLY_INTERVALS = [1, 2, 3, 4, 6, 8, 12];

/**
 * Data Lifecycle Manager policy over the workers' buffer volumes. Pre/post scripts only exist for policies that
 * target INSTANCES, so the policy targets the worker instances by tag and excludes their boot volumes: only the data
 * volume is snapshotted. Before each snapshot DLM runs the SSM document below on the worker, which checkpoints the
 * SQLite buffer (application-consistent); if that fails, DLM still takes a crash-consistent snapshot, and the
 * Monitoring construct's alarms on the policy (addSnapshotPolicy) say so.
 */
export class BufferSnapshots extends Construct {
  readonly policy: dlm.CfnLifecyclePolicy;
  readonly preScriptDocument: ssm.CfnDocument;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: BufferSnapshotsProps) {
    super(scope, id);
    if (!HOURLY_INTERVALS.includes(props.hourly.intervalHours)) {
      throw new Error(`BufferSnapshots ${id}: hourly.intervalHours must be one of ${HOURLY_INTERVALS.join(', ')}, got ${props.hourly.intervalHours}`);
    }
    if (!/^([01]\d|2[0-3]):[0-5]\d$/.test(props.daily.time)) throw new Error(`BufferSnapshots ${id}: daily.time must be hh:mm (UTC), got '${props.daily.time}'`);
    const timeout = props.preScriptTimeoutSeconds ?? 60;
    if (!Number.isInteger(timeout) || timeout < 10 || timeout > 120) throw new Error(`BufferSnapshots ${id}: preScriptTimeoutSeconds must be 10 to 120, got ${timeout}`);

    this.preScriptDocument = new ssm.CfnDocument(this, 'PreScript', {
      documentType: 'Command',
      updateMethod: 'NewVersion',
      content: preScriptDocumentContent(props.checkpointCommand, timeout),
    });
    this.role = this.createRole(props);

    const scripts: dlm.CfnLifecyclePolicy.ScriptProperty[] = [
      {
        stages: ['PRE'],
        executionHandlerService: 'AWS_SYSTEMS_MANAGER',
        executionHandler: this.preScriptDocument.ref,
        executeOperationOnScriptFailure: true,
        executionTimeout: timeout,
        maximumRetryCount: 0,
      },
    ];
    const tagsToAdd = (schedule: string) => [
      { key: ResourceTag.Cluster, value: props.clusterId },
      { key: 'rds-failover:schedule', value: schedule },
    ];
    this.policy = new dlm.CfnLifecyclePolicy(this, 'Policy', {
      description: `rds-failover ${props.clusterId} worker buffer volumes`,
      state: 'ENABLED',
      executionRoleArn: this.role.roleArn,
      policyDetails: {
        policyType: 'EBS_SNAPSHOT_MANAGEMENT',
        resourceTypes: ['INSTANCE'],
        targetTags: [{ key: props.targetTag.key, value: props.targetTag.value }],
        parameters: { excludeBootVolume: true },
        schedules: [
          {
            name: 'hourly',
            copyTags: true,
            tagsToAdd: tagsToAdd('hourly'),
            createRule: { interval: props.hourly.intervalHours, intervalUnit: 'HOURS', scripts },
            retainRule: { count: props.hourly.retain },
          },
          {
            name: 'daily',
            copyTags: true,
            tagsToAdd: tagsToAdd('daily'),
            createRule: { interval: 24, intervalUnit: 'HOURS', times: [props.daily.time], scripts },
            retainRule: { count: props.daily.retain },
            crossRegionCopyRules: props.crossRegionCopy
              ? [
                  {
                    target: props.crossRegionCopy.targetRegion,
                    encrypted: true,
                    cmkArn: props.crossRegionCopy.kmsKeyArn,
                    copyTags: true,
                    retainRule: { interval: props.crossRegionCopy.retainDays, intervalUnit: 'DAYS' },
                  },
                ]
              : undefined,
            fastRestoreRule: props.fastSnapshotRestoreAzs ? { availabilityZones: [...props.fastSnapshotRestoreAzs], count: 1 } : undefined,
          },
        ],
      },
    });
  }

  private createRole(props: BufferSnapshotsProps): iam.Role {
    const arn = (service: string, resource: string, region: string = Aws.REGION, account: string = Aws.ACCOUNT_ID) =>
      `arn:${Aws.PARTITION}:${service}:${region}:${account}:${resource}`;
    const role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('dlm.amazonaws.com'),
      description: `rds-failover ${props.clusterId}: Data Lifecycle Manager snapshots of the worker buffer volumes`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CreateSnapshots',
        actions: ['ec2:CreateSnapshot', 'ec2:CreateSnapshots'],
        resources: [arn('ec2', 'instance/*'), arn('ec2', 'volume/*'), arn('ec2', 'snapshot/*', Aws.REGION, '')],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ManageSnapshots',
        actions: ['ec2:CreateTags', 'ec2:DeleteSnapshot', 'ec2:CopySnapshot', 'ec2:EnableFastSnapshotRestores', 'ec2:DisableFastSnapshotRestores'],
        resources: [arn('ec2', 'snapshot/*', '*', '')],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'Describe',
        actions: [
          'ec2:DescribeInstances', 'ec2:DescribeVolumes', 'ec2:DescribeSnapshots', 'ec2:DescribeFastSnapshotRestores',
          'ssm:DescribeInstanceInformation', 'ssm:ListCommands', 'ssm:GetCommandInvocation',
        ],
        resources: ['*'],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RunPreScriptDocument',
        actions: ['ssm:SendCommand'],
        resources: [arn('ssm', `document/${this.preScriptDocument.ref}`)],
      }),
    );
    // AWS's managed policy for DLM pre/post scripts (AWSDataLifecycleManagerSSMFullAccess) also lets DLM read the document.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadPreScriptDocument',
        actions: ['ssm:DescribeDocument', 'ssm:GetDocument'],
        resources: [arn('ssm', `document/${this.preScriptDocument.ref}`)],
      }),
    );
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'RunPreScriptOnWorkers',
        actions: ['ssm:SendCommand'],
        resources: [arn('ec2', 'instance/*')],
        conditions: { StringEquals: { [`ssm:resourceTag/${props.targetTag.key}`]: props.targetTag.value } },
      }),
    );
    // Snapshots of volumes encrypted with a customer key need grants on it (and on the copy's key in the target region).
    props.volumeKey.grant(role, 'kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo');
    if (props.crossRegionCopy?.kmsKeyArn) {
      role.addToPolicy(
        new iam.PolicyStatement({
          sid: 'CopyKey',
          actions: ['kms:CreateGrant', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptTo'],
          resources: [props.crossRegionCopy.kmsKeyArn],
        }),
      );
    }
    const wildcard = (resource: string, reason: string) => Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[Resource::${resource}]`, reason });
    wildcard('*', 'EC2 Describe* and ssm:DescribeInstanceInformation/ListCommands/GetCommandInvocation have no resource-level permissions (DLM polls them while it runs the pre-script).');
    wildcard('arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*', 'DLM picks the target instances by tag at run time; SendCommand on instances is limited to those carrying the cluster tag (ssm:resourceTag condition).');
    wildcard('arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:volume/*', 'CreateSnapshots covers the volumes attached to the tagged instances, which DLM discovers at run time.');
    wildcard('arn:<AWS::Partition>:ec2:<AWS::Region>::snapshot/*', 'Snapshot ids do not exist before DLM creates them.');
    wildcard('arn:<AWS::Partition>:ec2:*::snapshot/*', 'Snapshot ids do not exist before DLM creates them; copies land in the configured target region.');
    return role;
  }
}

/**
 * SSM Command document in the form DLM calls for pre/post scripts: parameters `executionId` and `command`
 * (`pre-script`, `post-script` or `dry-run`). Only the pre-script does work: checkpoint the buffer.
 */
export function preScriptDocumentContent(checkpointCommand: string, timeoutSeconds: number): Record<string, unknown> {
  return {
    schemaVersion: '2.2',
    description: 'rds-failover: checkpoint the worker write buffer before a Data Lifecycle Manager snapshot (application-consistent)',
    parameters: {
      executionId: { type: 'String', default: 'None', description: 'DLM execution id', allowedPattern: '^.{1,64}$' },
      command: { type: 'String', default: 'dry-run', description: 'DLM stage', allowedValues: ['pre-script', 'post-script', 'dry-run'] },
    },
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: 'checkpointBuffer',
        precondition: { StringEquals: ['platformType', 'Linux'] },
        inputs: {
          timeoutSeconds: String(timeoutSeconds),
          runCommand: [
            'case "{{ command }}" in',
            `  pre-script) ${checkpointCommand} ;;`,
            '  post-script) exit 0 ;;',
            `  dry-run) test -x ${checkpointCommand.split(' ')[0]} ;;`,
            '  *) echo "unknown DLM command {{ command }}" >&2; exit 1 ;;',
            'esac',
          ],
        },
      },
    ],
  };
}
