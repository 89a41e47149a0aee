import * as path from 'node:path';
import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

const PROJECT_ROOT = path.join(__dirname, '..');

/**
 * Environment of a function that talks to RDS over TLS: Lambda's Node 20+ runtimes ship the Amazon CA bundle
 * (which holds the RDS CAs) at this path but load it only when asked.
 */
export const RDS_CA_ENVIRONMENT = { NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem' } as const;

export interface ControllerFunctionProps {
  /** Folder under lambda/ holding the handler's index.ts (e.g. 'lag-monitor'). */
  readonly handlerDir: string;
  readonly description: string;
  /** KMS key for the function's log group. */
  readonly logKey: kms.IKey;
  /**
   * VPC to run in (functions that talk to PostgreSQL).
   * @default - not in a VPC
   */
  readonly vpc?: ec2.IVpc;
  /**
   * Subnets inside `vpc`.
   * @default - the VPC's private isolated subnets
   */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /**
   * Security groups when in a VPC.
   * @default - CDK creates one
   */
  readonly securityGroups?: ec2.ISecurityGroup[];
  /**
   * Environment variables: names and ARNs only, never secrets.
   * @default - none
   */
  readonly environment?: Record<string, string>;
  /**
   * @default Duration.seconds(60)
   */
  readonly timeout?: Duration;
  /**
   * @default 256
   */
  readonly memorySize?: number;
  /**
   * Log retention.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * Every Lambda of the controller: NodejsFunction bundled by the local esbuild (no Docker), ARM64,
 * Node 22, X-Ray tracing, its own KMS-encrypted log group with JSON logs.
 */
export class ControllerFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: ControllerFunctionProps) {
    super(scope, id);
    if (!/^[a-z0-9-]+$/.test(props.handlerDir)) {
      throw new Error(`ControllerFunction ${id}: handlerDir '${props.handlerDir}' must be a folder name under lambda/ (lowercase, digits, dashes)`);
    }
    const memorySize = props.memorySize ?? 256;
    if (!Number.isInteger(memorySize) || memorySize < 128 || memorySize > 10240) {
      throw new Error(`ControllerFunction ${id}: memorySize must be an integer between 128 and 10240 MB, got ${memorySize}`);
    }
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      encryptionKey: props.logKey,
      retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.function = new NodejsFunction(this, 'Function', {
      entry: path.join(PROJECT_ROOT, 'lambda', props.handlerDir, 'index.ts'),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize,
      timeout: props.timeout ?? Duration.seconds(60),
      tracing: lambda.Tracing.ACTIVE,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.WARN,
      vpc: props.vpc,
      vpcSubnets: props.vpc ? (props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }) : undefined,
      securityGroups: props.securityGroups,
      environment: props.environment,
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.CJS,
        target: 'node22',
        minify: true,
        sourceMap: true,
        // pg optionally requires pg-native; we never use it.
        externalModules: ['pg-native', '@aws-sdk/*'],
      },
    });
  }

  /**
   * Acknowledges the cdk-nag findings every controller function has (the AWS-managed Lambda execution policies,
   * the pinned runtime) and the function's own (`extra`, on its role), each with its reason.
   */
  acknowledgeFindings(extra: readonly { id: string; reason: string }[]): void {
    Validations.of(this.function.role!).acknowledge(
      ...['AWSLambdaBasicExecutionRole', 'AWSLambdaVPCAccessExecutionRole'].map((policy) => ({
        id: `AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/${policy}]`,
        reason: `${policy} is the AWS-maintained minimum for a Lambda's logs and VPC network interfaces.`,
      })),
      ...extra,
    );
    Validations.of(this.function).acknowledge({ id: 'AwsSolutions-L1', reason: 'Node.js 22 is the runtime the project pins for every Lambda (DESIGN.md, ControllerFunction).' });
  }
}
