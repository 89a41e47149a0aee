/**
 * The AWS twin: a synthesized template "deployed" onto stateful in-process stand-ins of the AWS APIs the stack's
 * functions call (RDS over a LocalCluster, Route 53, SSM, DynamoDB, SNS, Secrets Manager, CloudWatch), reached
 * through the real AWS SDK v3 clients (aws-sdk-client-mock replaces their `send`, nothing else). The stack's Lambda
 * handlers run in-process with their environment from the template, as the role the template gives them: every
 * call is recorded with that principal, the action, the resource ARN and the condition context, and authorized at
 * once against the role's policies from the template with a real IAM evaluator (a denied call gets AccessDenied, as
 * in AWS, and is reported with the statement that is missing). Throttling is injected at a configurable rate.
 *
 * What it is not: AWS. IAM is evaluated from the policies alone (no SCPs, no session policies, AWS managed policies
 * not evaluated); timings are the twin's; only the operations the stack uses are modeled, and the twin refuses any other.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as cloudformationSdk from '@aws-sdk/client-cloudformation';
import * as cloudwatchSdk from '@aws-sdk/client-cloudwatch';
import * as dynamodbSdk from '@aws-sdk/client-dynamodb';
import * as rdsSdk from '@aws-sdk/client-rds';
import * as route53Sdk from '@aws-sdk/client-route-53';
import * as secretsSdk from '@aws-sdk/client-secrets-manager';
import * as sfnSdk from '@aws-sdk/client-sfn';
import * as snsSdk from '@aws-sdk/client-sns';
import * as ssmSdk from '@aws-sdk/client-ssm';
import { mockClient, type AwsStub } from 'aws-sdk-client-mock';
import { renameSync, writeFileSync } from 'node:fs';
import { seededRandom } from '../../core/stats.js';
import type { LocalCluster } from '../local-cluster.js';
import { DeployedTemplate, type CfnTemplate } from './cfn-template.js';
import { DynamoDbTwin } from './dynamodb-twin.js';
import { authorize, functionRole, rolePolicies, unsupportedConditionKeys, type NamedPolicy, type UnsupportedConditionKey } from './iam-policies.js';
import { RdsTwin } from './rds-twin.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { CloudWatchTwin, Route53Twin, SecretsManagerTwin, SnsTwin } from './small-twins.js';
import { SsmTwin, type TwinWorker } from './ssm-twin.js';
import { awsError, THROTTLING_ERROR } from './twin-errors.js';
import { CloudFormationTwin, StepFunctionsTwin } from './control-plane-twins.js';
import type { TwinExecutionOptions } from './twin-state-machine.js';

export type LambdaHandler = (event: unknown) => Promise<unknown>;

export interface AwsTwinOptions {
  readonly template: CfnTemplate;
  readonly account: string;
  readonly region: string;
  readonly stackName: string;
  readonly cluster: LocalCluster;
  /** DB instance id -> local node id, for the template's instances. */
  readonly nodes: Readonly<Record<string, string>>;
  /** Local nodes free for replicas the runbook creates. */
  readonly spareNodes: readonly string[];
  /** Local buffers bound to the template's worker instances, in order. */
  readonly workers: readonly TwinWorker[];
  readonly workerLayout: { readonly agentCommand: string; readonly bufferPath: string; readonly configPath?: string };
  readonly localAgentCommand: readonly string[];
  /** Secret logical id -> SecretString. */
  readonly secretValues: Readonly<Record<string, string>>;
  /** The writer file the local workers follow: rewritten when Route 53 points `writerRecordName` at an instance. */
  readonly writerFile: string;
  readonly writerRecordName: string;
  /** The URL the workers get for an instance's endpoint (user, password, database). */
  readonly workerUrl: (host: string, port: number) => string;
  /** Lambda logical id -> its handler (the real lambda/<name>/index.ts, loaded in-process). */
  readonly handlers: Readonly<Record<string, () => Promise<LambdaHandler>>>;
  /** Share of the functions' calls answered with the service's throttling error (as after the SDK's own retries). @default 0 */
  readonly throttleRate?: number;
  /** Seed of the throttling draw. @default 1 */
  readonly seed?: number;
  /** Duration of each RDS transitional state. @default 300 */
  readonly phaseMs?: number;
  /**
   * How long one second of SSM's timings lasts here: a command's TimeoutSeconds and execution timeout, the delay
   * before a cut-off instance is ConnectionLost. With the defaults a drain's total timeout (SendCommand TimeoutSeconds
   * 60 + the document's 600 s) lasts 66 s and a cut-off instance is listed Online for 60 s: a drain sent to a worker
   * cut off during the failover (the drain step starts 10-30 s after on a busy 2-core machine) is really sent, waits
   * Pending and ends DeliveryTimedOut, and its restart finds the instance ConnectionLost, as in AWS. @default 100
   */
  readonly ssmSecondMs?: number;
  /** How long SSM lists a cut-off instance Online before ConnectionLost, SSM seconds (SsmTwinOptions). @default 600 */
  readonly connectionLostAfterSeconds?: number;
  /** How executions started with StartExecution run (waits, retry intervals). */
  readonly execution?: TwinExecutionOptions;
  readonly workDir: string;
  readonly log?: (line: string) => void;
}

export interface TwinCall {
  readonly seq: number;
  /** Lambda logical id, or 'operator' (the CLI, the test). */
  readonly principal: string;
  readonly roleArn?: string;
  readonly service: string;
  readonly operation: string;
  readonly authorizations: readonly TwinAuthorization[];
  outcome: 'ok' | 'throttled' | 'denied' | 'error';
  error?: string;
}

export interface TwinDenial {
  readonly principal: string;
  readonly action: string;
  readonly resource: string;
  readonly explanation: string;
}

interface Principal {
  readonly functionId: string;
  readonly roleArn: string;
  readonly policies: readonly NamedPolicy[];
}

const CLIENTS = {
  rds: { client: rdsSdk.RDSClient, sdk: rdsSdk },
  route53: { client: route53Sdk.Route53Client, sdk: route53Sdk },
  ssm: { client: ssmSdk.SSMClient, sdk: ssmSdk },
  dynamodb: { client: dynamodbSdk.DynamoDBClient, sdk: dynamodbSdk },
  sns: { client: snsSdk.SNSClient, sdk: snsSdk },
  secretsmanager: { client: secretsSdk.SecretsManagerClient, sdk: secretsSdk },
  cloudwatch: { client: cloudwatchSdk.CloudWatchClient, sdk: cloudwatchSdk },
  cloudformation: { client: cloudformationSdk.CloudFormationClient, sdk: cloudformationSdk },
  states: { client: sfnSdk.SFNClient, sdk: sfnSdk },
} as const;

export class AwsTwin {
  readonly deployed: DeployedTemplate;
  readonly rds: RdsTwin;
  ssm!: SsmTwin;
  dynamodb!: DynamoDbTwin;
  route53!: Route53Twin;
  sns!: SnsTwin;
  secrets!: SecretsManagerTwin;
  cloudwatch!: CloudWatchTwin;
  cloudformation!: CloudFormationTwin;
  stepFunctions!: StepFunctionsTwin;
  readonly calls: TwinCall[] = [];
  readonly denials: TwinDenial[] = [];
  /** Authorizations evaluated with the IAM evaluator (every one of a function principal). */
  evaluated = 0;
  private readonly principal = new AsyncLocalStorage<Principal>();
  private readonly stubs: AwsStub<any, any, any>[] = [];
  private readonly principals = new Map<string, Principal>();
  private readonly loaded = new Map<string, LambdaHandler>();
  private invocationChain: Promise<unknown> = Promise.resolve();
  private random: () => number;
  private readonly functionEnvKeys = new Set<string>();

  private constructor(private readonly o: AwsTwinOptions) {
    const rds = (): RdsTwin => this.rds;
    this.deployed = new DeployedTemplate(o.template, {
      account: o.account,
      region: o.region,
      stackName: o.stackName,
      attributes: (logicalId, resource, attribute) => {
        if (resource.Type !== 'AWS::RDS::DBInstance' || !attribute.startsWith('Endpoint.')) return undefined;
        const id = String(this.deployed.property(logicalId, 'DBInstanceIdentifier'));
        const endpoint = rds().endpoint(id);
        return attribute === 'Endpoint.Port' ? String(endpoint.port) : endpoint.address;
      },
    });
    this.rds = new RdsTwin(this.deployed, { cluster: o.cluster, nodes: o.nodes, spareNodes: o.spareNodes, openSecurityGroups: openSecurityGroups(this.deployed), phaseMs: o.phaseMs, log: o.log });
    this.random = seededRandom(o.seed ?? 1);
    const rate = o.throttleRate ?? 0;
    if (!(rate >= 0 && rate < 1)) throw new Error(`AwsTwin: throttleRate must be from 0 to below 1, got ${rate}`);
  }

  /** Deploys the template into the twin (RDS instances open their endpoints) and intercepts the SDK clients. */
  static async start(o: AwsTwinOptions): Promise<AwsTwin> {
    const twin = new AwsTwin(o);
    // The DB instances first: other resources name their endpoints (the writer record, the topology parameter).
    await twin.rds.deploy();
    twin.ssm = new SsmTwin(twin.deployed, {
      workers: o.workers,
      workerLayout: o.workerLayout,
      localAgentCommand: o.localAgentCommand,
      workDir: o.workDir,
      secondMs: o.ssmSecondMs ?? 100,
      ...(o.connectionLostAfterSeconds !== undefined ? { connectionLostAfterSeconds: o.connectionLostAfterSeconds } : {}),
    });
    twin.dynamodb = new DynamoDbTwin(twin.deployed);
    twin.route53 = new Route53Twin(twin.deployed, (change) => twin.onRecordChange(change.name, change.type, change.values));
    twin.sns = new SnsTwin(twin.deployed);
    twin.secrets = new SecretsManagerTwin(twin.deployed, o.secretValues);
    twin.cloudwatch = new CloudWatchTwin();
    twin.cloudformation = new CloudFormationTwin(twin.deployed, o.stackName);
    twin.stepFunctions = new StepFunctionsTwin(twin, o.execution);
    twin.install();
    const writer = twin.route53Record(o.writerRecordName);
    if (writer) twin.onRecordChange(o.writerRecordName, 'CNAME', writer);
    return twin;
  }

  /** Invokes a Lambda of the template in-process: its environment, its role, one invocation at a time. */
  invoke(functionId: string, event: unknown): Promise<unknown> {
    const run = async () => {
      const principal = this.principalOf(functionId);
      this.setEnvironment(functionId);
      const handler = await this.handler(functionId);
      return this.principal.run(principal, () => handler(event));
    };
    const result = this.invocationChain.then(run, run);
    this.invocationChain = result.catch(() => undefined);
    return result;
  }

  /** The function logical id whose physical name (or ARN) this is. */
  functionByName(nameOrArn: string): string {
    const name = nameOrArn.includes(':function:') ? nameOrArn.split(':function:')[1]!.split(':')[0]! : nameOrArn;
    const id = this.deployed.ofType('AWS::Lambda::Function').find((f) => this.deployed.name(f) === name);
    if (!id) throw new Error(`the template has no Lambda function named ${name}`);
    return id;
  }

  /** Condition keys of the deployed roles' statements that their actions do not support. */
  async unsupportedConditionKeys(): Promise<UnsupportedConditionKey[]> {
    const found: UnsupportedConditionKey[] = [];
    for (const roleId of this.deployed.ofType('AWS::IAM::Role')) found.push(...(await unsupportedConditionKeys(rolePolicies(this.deployed, roleId))));
    return found;
  }

  /** Waits for RDS transitions and SSM commands under way. */
  async settle(): Promise<void> {
    await Promise.all([this.stepFunctions.settle(), this.rds.settle(), this.ssm.settle()]);
  }

  async stop(): Promise<void> {
    for (const stub of this.stubs) stub.restore();
    this.stubs.length = 0;
    this.ssm.stop();
    await this.ssm.settle();
    await this.rds.close();
  }

  private route53Record(name: string): string[] | undefined {
    for (const zoneId of this.deployed.ofType('AWS::Route53::HostedZone').map((z) => this.deployed.ref(z))) {
      const values = this.route53.record(zoneId, name, 'CNAME');
      if (values) return values;
    }
    return undefined;
  }

  private onRecordChange(name: string, type: string, values: readonly string[]): void {
    if (type !== 'CNAME' || name !== this.o.writerRecordName.toLowerCase().replace(/\.$/, '')) return;
    const target = this.rds.instanceAt(values[0] ?? '');
    if (!target) {
      this.o.log?.(`aws twin: ${name} -> ${values.join(', ')}, which is no DB instance endpoint: the workers' writer file is left as it is`);
      return;
    }
    const tmp = `${this.o.writerFile}.${process.pid}.tmp`;
    writeFileSync(tmp, `${this.o.workerUrl(values[0]!, target.port)}\n`, { mode: 0o600 });
    renameSync(tmp, this.o.writerFile);
    this.o.log?.(`aws twin: ${name} -> ${target.id} (${values[0]}:${target.port})`);
  }

  private install(): void {
    const twins: ServiceTwin[] = [this.rds, this.route53, this.ssm, this.dynamodb, this.sns, this.secrets, this.cloudwatch, this.cloudformation, this.stepFunctions];
    for (const twin of twins) {
      const { client, sdk } = CLIENTS[twin.service as keyof typeof CLIENTS];
      const stub = mockClient(client as never) as AwsStub<any, any, any>;
      const handlers = twin.handlers();
      for (const [name, command] of Object.entries(sdk as Record<string, unknown>)) {
        if (!name.endsWith('Command') || typeof command !== 'function' || handlers[name.slice(0, -'Command'.length)]) continue;
        stub.on(command as never).callsFake(() => {
          throw new Error(`the AWS twin does not model ${twin.service} ${name.slice(0, -'Command'.length)}: add it to the ${twin.service} stand-in (src/local/aws-twin)`);
        });
      }
      for (const [operation, handler] of Object.entries(handlers)) {
        const command = (sdk as Record<string, unknown>)[`${operation}Command`];
        if (typeof command !== 'function') throw new Error(`the ${twin.service} SDK has no ${operation}Command`);
        stub.on(command as never).callsFake((input: unknown) => this.dispatch(twin, operation, handler, input));
      }
      this.stubs.push(stub);
    }
  }

  private async dispatch(twin: ServiceTwin, operation: string, handler: (input: any) => Promise<unknown>, input: unknown): Promise<unknown> {
    const principal = this.principal.getStore();
    let authorizations: TwinAuthorization[] = [];
    try {
      authorizations = twin.authorizations(operation, input);
    } catch {
      // an unknown resource: the operation itself reports it below
    }
    const call: TwinCall = {
      seq: this.calls.length + 1,
      principal: principal?.functionId ?? 'operator',
      ...(principal ? { roleArn: principal.roleArn } : {}),
      service: twin.service,
      operation,
      authorizations,
      outcome: 'ok',
    };
    this.calls.push(call);
    if (principal) {
      for (const a of authorizations) {
        this.evaluated++;
        const result = await authorize({ principal: principal.roleArn, action: a.action, resource: a.resource, context: a.context ?? {} }, principal.policies, a.resourcePolicy);
        if (!result.allowed) {
          this.denials.push({ principal: principal.functionId, action: a.action, resource: a.resource, explanation: result.explanation ?? result.decision });
          call.outcome = 'denied';
          call.error = 'AccessDenied';
          const session = principal.roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/');
          throw awsError('AccessDenied', `User: ${session}/${this.deployed.name(principal.functionId)} is not authorized to perform: ${a.action} on resource: ${a.resource} because no identity-based policy allows the ${a.action} action`, 403);
        }
      }
    }
    // Throttling reaches the functions (whose SDK retries are assumed spent); the operator's CLI is left alone.
    if (principal && (this.o.throttleRate ?? 0) > 0 && this.random() < this.o.throttleRate!) {
      call.outcome = 'throttled';
      call.error = THROTTLING_ERROR[twin.service];
      throw awsError(THROTTLING_ERROR[twin.service]!, 'Rate exceeded', 400, true);
    }
    try {
      return await handler(input);
    } catch (error) {
      call.outcome = 'error';
      call.error = (error as Error).name;
      throw asSdkException(twin.service, error);
    }
  }

  private principalOf(functionId: string): Principal {
    let p = this.principals.get(functionId);
    if (!p) {
      const roleId = functionRole(this.deployed, functionId);
      p = { functionId, roleArn: this.deployed.attribute(roleId, 'Arn'), policies: rolePolicies(this.deployed, roleId) };
      this.principals.set(functionId, p);
    }
    return p;
  }

  private async handler(functionId: string): Promise<LambdaHandler> {
    let h = this.loaded.get(functionId);
    if (!h) {
      const load = this.o.handlers[functionId];
      if (!load) throw new Error(`the AWS twin has no handler for function ${functionId}: give it in options.handlers`);
      h = await load();
      this.loaded.set(functionId, h);
    }
    return h;
  }

  /** process.env as Lambda gives it to this function: the template's variables and the runtime's own. */
  private setEnvironment(functionId: string): void {
    const vars = (this.deployed.resolve((this.deployed.resource(functionId).Properties?.Environment as { Variables?: unknown } | undefined)?.Variables ?? {}) ?? {}) as Record<string, string>;
    const env: Record<string, string> = {
      ...Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, String(v)])),
      AWS_REGION: this.o.region,
      AWS_DEFAULT_REGION: this.o.region,
      AWS_LAMBDA_FUNCTION_NAME: this.deployed.name(functionId),
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(this.deployed.property(functionId, 'MemorySize') ?? 128),
      POWERTOOLS_LOG_LEVEL: process.env.AWS_TWIN_LOG_LEVEL ?? 'WARN',
    };
    for (const k of this.functionEnvKeys) delete process.env[k];
    for (const [k, v] of Object.entries(env)) {
      if (k === 'NODE_EXTRA_CA_CERTS') continue; // read at process start only: the twin's runner sets its own
      this.functionEnvKeys.add(k);
      process.env[k] = v;
    }
  }
}

/**
 * The error as the SDK would throw it: an instance of the service's modeled exception class where it has one
 * (callers test `instanceof ConditionalCheckFailedException`), with the same name, message and extra fields.
 */
function asSdkException(service: string, error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const Exception = (CLIENTS[service as keyof typeof CLIENTS]?.sdk as Record<string, unknown> | undefined)?.[error.name];
  if (typeof Exception !== "function" || error instanceof (Exception as unknown as typeof Error)) return error;
  const extra: Record<string, unknown> = { ...(error as unknown as Record<string, unknown>) };
  delete extra.name;
  delete extra.stack;
  const typed = new (Exception as new (o: Record<string, unknown>) => Error)({ message: (error as Error).message, $metadata: extra.$metadata ?? {} });
  return Object.assign(typed, extra);
}

/** Security groups of the template that admit any client (an ingress rule of their own or a separate one). */
function openSecurityGroups(deployed: DeployedTemplate): Set<string> {
  const open = new Set<string>();
  for (const id of deployed.ofType('AWS::EC2::SecurityGroup')) {
    if ((deployed.resource(id).Properties?.SecurityGroupIngress as unknown[] | undefined)?.length) open.add(deployed.ref(id));
  }
  for (const id of deployed.ofType('AWS::EC2::SecurityGroupIngress')) open.add(String(deployed.property(id, 'GroupId')));
  return open;
}
