/**
 * The AWS side of a command: which stack, cluster and state machine it acts on, and SDK clients configured like
 * the AWS CLI (--region and --profile win over AWS_REGION / AWS_PROFILE and the shared config files).
 * Everything is looked up lazily, once: `status` never needs the state machine, `plan` never needs the workers.
 */
import { drainDocumentName } from '../../core/drain-parameters.js';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { RDSClient } from '@aws-sdk/client-rds';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { topologyParameterName, writerParameterName } from '../../../lib/topology.js';
import { CliError, ExitCode } from '../options.js';
import { clusterStackName } from '../../core/topology-document.js';

/**
 * CloudFormation output keys the CLI reads (lib/failover-stack.ts addOutputs). StateMachineArn is the runbook's
 * output, added with the Runbook construct; --state-machine-arn skips the lookup.
 */
export const STACK_OUTPUT = {
  ClusterId: 'ClusterId',
  StateMachineArn: 'RunbookStateMachineArn',
  WriterParameterName: 'WriterParameterName',
  TopologyParameterName: 'TopologyParameterName',
  WorkerInstanceIds: 'WorkerInstanceIds',
  DrainDocumentName: 'DrainDocumentName',
} as const;

/** The stack name the stack itself uses (src/core, shared with lib/failover-stack.ts). */
export const defaultStackName = clusterStackName;

export const STACK_ENV = 'RDS_FAILOVER_STACK';

export interface AwsFlags {
  readonly region?: string;
  readonly profile?: string;
  readonly stack?: string;
  readonly clusterId?: string;
  readonly stateMachineArn?: string;
}

export interface AwsClientConfig {
  readonly region?: string;
  readonly profile?: string;
}

export class AwsTarget {
  private outputsPromise: Promise<Readonly<Record<string, string>>> | undefined;
  private readonly clients = new Map<string, unknown>();

  constructor(
    private readonly flags: AwsFlags,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** Region and profile as the AWS CLI takes them: flags first, then the SDK's own chain (env, ~/.aws/config). */
  clientConfig(): AwsClientConfig {
    return {
      ...(this.flags.region ? { region: this.flags.region } : {}),
      ...(this.flags.profile ? { profile: this.flags.profile } : {}),
    };
  }

  sfn(): SFNClient {
    return this.client('sfn', () => new SFNClient(this.clientConfig()));
  }
  ssm(): SSMClient {
    return this.client('ssm', () => new SSMClient(this.clientConfig()));
  }
  rds(): RDSClient {
    return this.client('rds', () => new RDSClient(this.clientConfig()));
  }
  cloudWatch(): CloudWatchClient {
    return this.client('cloudwatch', () => new CloudWatchClient(this.clientConfig()));
  }
  cloudFormation(): CloudFormationClient {
    return this.client('cloudformation', () => new CloudFormationClient(this.clientConfig()));
  }

  /** The stack named by --stack, $RDS_FAILOVER_STACK, or derived from --cluster-id. */
  stackName(): string | undefined {
    return this.flags.stack ?? (this.env[STACK_ENV] || undefined) ?? (this.flags.clusterId ? defaultStackName(this.flags.clusterId) : undefined);
  }

  async clusterId(): Promise<string> {
    if (this.flags.clusterId) return this.flags.clusterId;
    return this.output(STACK_OUTPUT.ClusterId);
  }

  async stateMachineArn(): Promise<string> {
    if (this.flags.stateMachineArn) return this.flags.stateMachineArn;
    return this.output(STACK_OUTPUT.StateMachineArn, '--state-machine-arn');
  }

  /** The SSM document that drains one worker (the only command the CLI sends to workers). */
  async drainDocumentName(): Promise<string> {
    return (await this.optionalOutput(STACK_OUTPUT.DrainDocumentName)) ?? drainDocumentName(await this.clusterId());
  }

  async topologyParameterName(): Promise<string> {
    return (await this.optionalOutput(STACK_OUTPUT.TopologyParameterName)) ?? topologyParameterName(await this.clusterId());
  }

  async writerParameterName(): Promise<string> {
    return (await this.optionalOutput(STACK_OUTPUT.WriterParameterName)) ?? writerParameterName(await this.clusterId());
  }

  /** EC2 instance ids of the workers (the stack output; empty when the stack has none). */
  async workerInstanceIds(): Promise<string[]> {
    const value = await this.output(STACK_OUTPUT.WorkerInstanceIds);
    return value.split(',').map((s) => s.trim()).filter(Boolean);
  }

  /** Only with --cluster-id and no stack, outputs are not read (so plain flags work without cloudformation:DescribeStacks). */
  private async optionalOutput(key: string): Promise<string | undefined> {
    if (this.flags.clusterId && !this.flags.stack && !this.env[STACK_ENV]) return undefined;
    return (await this.outputs())[key];
  }

  private async output(key: string, flag?: string): Promise<string> {
    const outputs = await this.outputs();
    const value = outputs[key];
    if (!value) {
      throw new CliError(
        `stack ${this.stackName()} has no output ${key} (outputs: ${Object.keys(outputs).join(', ') || 'none'})` +
          (flag ? `; pass ${flag} instead` : ''),
        ExitCode.Usage,
      );
    }
    return value;
  }

  private outputs(): Promise<Readonly<Record<string, string>>> {
    this.outputsPromise ??= this.describeOutputs();
    return this.outputsPromise;
  }

  private async describeOutputs(): Promise<Readonly<Record<string, string>>> {
    const stackName = this.stackName();
    if (!stackName) {
      throw new CliError(
        `no AWS target: pass --stack <name> (or set ${STACK_ENV}), or --cluster-id <id> (stack RdsFailover-<id>); use --local [dir] for the local cluster`,
        ExitCode.Usage,
      );
    }
    let out;
    try {
      out = await this.cloudFormation().send(new DescribeStacksCommand({ StackName: stackName }));
    } catch (error) {
      const e = error as Error;
      if (e.name === 'ValidationError') throw new CliError(`stack ${stackName} not found (${e.message}); check --stack, --region and --profile`, ExitCode.Usage);
      throw error;
    }
    const stack = out.Stacks?.[0];
    if (!stack) throw new CliError(`stack ${stackName} not found; check --stack, --region and --profile`, ExitCode.Usage);
    return Object.fromEntries((stack.Outputs ?? []).filter((o) => o.OutputKey && o.OutputValue).map((o) => [o.OutputKey!, o.OutputValue!]));
  }

  private client<T>(key: string, make: () => T): T {
    if (!this.clients.has(key)) this.clients.set(key, make());
    return this.clients.get(key) as T;
  }
}
