/**
 * A synthesized CloudFormation template "deployed" into the twin: every resource gets the physical id, ARN and
 * attributes CloudFormation would give it (its explicit name where the template sets one, a generated name
 * otherwise), and every intrinsic (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::FindInMap,
 * pseudo parameters) resolves to the same strings the twin's stand-ins use. So a function's environment, an IAM
 * policy's resources and the twin's state name the same things, as they would in one AWS account.
 */
import { createHash } from 'node:crypto';

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
}

export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Mappings?: Record<string, Record<string, Record<string, unknown>>>;
  readonly Outputs?: Record<string, { Value: unknown }>;
}

export interface DeploymentTarget {
  readonly account: string;
  readonly region: string;
  readonly stackName: string;
  /** Attributes the template cannot know (e.g. an RDS endpoint): logical id -> attribute -> value. */
  readonly attributes?: (logicalId: string, resource: CfnResource, attribute: string) => string | undefined;
}

const PARTITION = 'aws';

export class DeployedTemplate {
  readonly account: string;
  readonly region: string;
  private readonly names = new Map<string, string>();

  constructor(
    readonly template: CfnTemplate,
    private readonly target: DeploymentTarget,
  ) {
    if (!/^\d{12}$/.test(target.account)) throw new Error(`DeployedTemplate: account must be 12 digits, got '${target.account}'`);
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(target.region)) throw new Error(`DeployedTemplate: region must look like eu-west-1, got '${target.region}'`);
    this.account = target.account;
    this.region = target.region;
  }

  resource(logicalId: string): CfnResource {
    const r = this.template.Resources[logicalId];
    if (!r) throw new Error(`the template has no resource '${logicalId}'`);
    return r;
  }

  /** Logical ids of every resource of `type`, in template order. */
  ofType(type: string): string[] {
    return Object.entries(this.template.Resources)
      .filter(([, r]) => r.Type === type)
      .map(([id]) => id);
  }

  /** A resource property with every intrinsic resolved. */
  property<T = unknown>(logicalId: string, name: string): T | undefined {
    const value = this.resource(logicalId).Properties?.[name];
    return value === undefined ? undefined : (this.resolve(value) as T);
  }

  /** What `Ref` returns for the resource. */
  ref(logicalId: string): string {
    const r = this.resource(logicalId);
    switch (r.Type) {
      case 'AWS::SNS::Topic':
      case 'AWS::SecretsManager::Secret':
      case 'AWS::StepFunctions::StateMachine':
        return this.attribute(logicalId, 'Arn');
      case 'AWS::SQS::Queue':
        return `https://sqs.${this.region}.amazonaws.com/${this.account}/${this.name(logicalId)}`;
      default:
        return this.name(logicalId);
    }
  }

  /** What `Fn::GetAtt [logicalId, attribute]` returns. */
  attribute(logicalId: string, attribute: string): string {
    const r = this.resource(logicalId);
    const given = this.target.attributes?.(logicalId, r, attribute);
    if (given !== undefined) return given;
    const name = this.name(logicalId);
    const arn = (service: string, resource: string, region = this.region, account = this.account) => `arn:${PARTITION}:${service}:${region}:${account}:${resource}`;
    const arns: Record<string, () => string> = {
      'AWS::DynamoDB::Table': () => arn('dynamodb', `table/${name}`),
      'AWS::SNS::Topic': () => arn('sns', name),
      'AWS::SQS::Queue': () => arn('sqs', name),
      'AWS::KMS::Key': () => arn('kms', `key/${name}`),
      'AWS::SecretsManager::Secret': () => arn('secretsmanager', `secret:${name}-${suffix(name)}`),
      'AWS::Lambda::Function': () => arn('lambda', `function:${name}`),
      'AWS::IAM::Role': () => `arn:${PARTITION}:iam::${this.account}:role/${name}`,
      'AWS::Logs::LogGroup': () => arn('logs', `log-group:${name}:*`),
      'AWS::StepFunctions::StateMachine': () => arn('states', `stateMachine:${name}`),
      'AWS::SSM::Parameter': () => arn('ssm', `parameter/${name.replace(/^\//, '')}`),
      'AWS::SSM::Document': () => arn('ssm', `document/${name}`),
      'AWS::RDS::DBInstance': () => arn('rds', `db:${name}`),
      'AWS::Route53::HostedZone': () => `arn:${PARTITION}:route53:::hostedzone/${name}`,
      'AWS::Events::Rule': () => arn('events', `rule/${name}`),
      'AWS::CloudWatch::Alarm': () => arn('cloudwatch', `alarm:${name}`),
      'AWS::EC2::Instance': () => arn('ec2', `instance/${name}`),
    };
    if (attribute === 'Arn' && arns[r.Type]) return arns[r.Type]!();
    if (r.Type === 'AWS::SNS::Topic' && attribute === 'TopicArn') return arns[r.Type]!();
    if (r.Type === 'AWS::SNS::Topic' && attribute === 'TopicName') return name;
    if (r.Type === 'AWS::SQS::Queue' && attribute === 'QueueName') return name;
    if (r.Type === 'AWS::SQS::Queue' && attribute === 'QueueUrl') return this.ref(logicalId);
    if (r.Type === 'AWS::EC2::SecurityGroup' && attribute === 'GroupId') return name;
    if (r.Type === 'AWS::KMS::Key' && attribute === 'KeyId') return name;
    if (r.Type === 'AWS::Route53::HostedZone' && attribute === 'Id') return name;
    if (r.Type === 'AWS::IAM::Role' && attribute === 'RoleId') return `AROA${suffix(name, 17).toUpperCase()}`;
    if (r.Type === 'AWS::StepFunctions::StateMachine' && attribute === 'Name') return name;
    // Anything else (VPC CIDRs, subnet ids...) gets a stable placeholder: the twin never calls AWS with it.
    return `${logicalId}.${attribute}`;
  }

  /** The physical name of a resource: its explicit name property, or one CloudFormation-like generated name. */
  name(logicalId: string): string {
    const cached = this.names.get(logicalId);
    if (cached) return cached;
    const r = this.resource(logicalId);
    const explicit = EXPLICIT_NAME[r.Type]?.find((p) => r.Properties?.[p] !== undefined);
    let name: string;
    if (explicit) {
      name = String(this.resolve(r.Properties![explicit]));
    } else if (r.Type === 'AWS::KMS::Key') {
      name = uuidFrom(`${this.target.stackName}/${logicalId}`);
    } else if (r.Type === 'AWS::EC2::SecurityGroup') {
      name = `sg-${suffix(logicalId, 17)}`;
    } else if (r.Type === 'AWS::EC2::Instance') {
      name = `i-${suffix(logicalId, 17)}`;
    } else if (r.Type === 'AWS::Route53::HostedZone') {
      name = `Z${suffix(logicalId, 20).toUpperCase()}`;
    } else {
      name = `${this.target.stackName}-${logicalId}-${suffix(logicalId, 12).toUpperCase()}`.slice(0, 64);
    }
    this.names.set(logicalId, name);
    return name;
  }

  /** Resolves every intrinsic inside `value` (objects and arrays deeply). */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (value === null || typeof value !== 'object') return value;
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      const [fn] = keys;
      const arg = o[fn!];
      switch (fn) {
        case 'Ref':
          return this.refOrPseudo(String(arg));
        case 'Fn::GetAtt': {
          const [id, attr] = Array.isArray(arg) ? (arg as string[]) : String(arg).split(/\.(.*)/s);
          return this.attribute(id!, attr!);
        }
        case 'Fn::Join': {
          const [sep, parts] = arg as [string, unknown[]];
          return (this.resolve(parts) as unknown[]).map(String).join(sep);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [unknown, unknown];
          return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
        }
        case 'Fn::Split': {
          const [sep, source] = arg as [string, unknown];
          return String(this.resolve(source)).split(sep);
        }
        case 'Fn::FindInMap': {
          const [map, top, second] = this.resolve(arg) as string[];
          const found = this.template.Mappings?.[map!]?.[top!]?.[second!];
          if (found === undefined) throw new Error(`Fn::FindInMap: no ${map}.${top}.${second} in the template's Mappings`);
          return found;
        }
        case 'Fn::Sub':
          return this.sub(arg);
        case 'Fn::GetAZs':
          return [`${this.region}a`, `${this.region}b`, `${this.region}c`];
        case 'Fn::Base64':
          return Buffer.from(String(this.resolve(arg))).toString('base64');
        default:
          if (fn!.startsWith('Fn::')) throw new Error(`the twin cannot resolve ${fn} (${JSON.stringify(arg).slice(0, 200)})`);
      }
    }
    return Object.fromEntries(keys.map((k) => [k, this.resolve(o[k])]));
  }

  private refOrPseudo(name: string): string {
    switch (name) {
      case 'AWS::Region':
        return this.region;
      case 'AWS::AccountId':
        return this.account;
      case 'AWS::Partition':
        return PARTITION;
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return this.target.stackName;
      case 'AWS::StackId':
        return `arn:${PARTITION}:cloudformation:${this.region}:${this.account}:stack/${this.target.stackName}/${uuidFrom(this.target.stackName)}`;
      case 'AWS::NoValue':
        return '';
      default:
        return this.ref(name);
    }
  }

  private sub(arg: unknown): string {
    const [text, vars] = Array.isArray(arg) ? (arg as [string, Record<string, unknown>]) : [String(arg), {}];
    return text.replace(/\$\{([^}!]+)\}/g, (_, name: string) => {
      if (vars[name] !== undefined) return String(this.resolve(vars[name]));
      const [id, attr] = name.split(/\.(.*)/s);
      return attr ? this.attribute(id!, attr) : this.refOrPseudo(id!);
    });
  }
}

/** Properties that name a resource, by type (the first one present wins). */
const EXPLICIT_NAME: Record<string, string[]> = {
  'AWS::DynamoDB::Table': ['TableName'],
  'AWS::SNS::Topic': ['TopicName'],
  'AWS::SQS::Queue': ['QueueName'],
  'AWS::SecretsManager::Secret': ['Name'],
  'AWS::Lambda::Function': ['FunctionName'],
  'AWS::IAM::Role': ['RoleName'],
  'AWS::Logs::LogGroup': ['LogGroupName'],
  'AWS::StepFunctions::StateMachine': ['StateMachineName'],
  'AWS::SSM::Parameter': ['Name'],
  'AWS::SSM::Document': ['Name'],
  'AWS::RDS::DBInstance': ['DBInstanceIdentifier'],
  'AWS::Route53::HostedZone': [],
  'AWS::CloudWatch::Alarm': ['AlarmName'],
  'AWS::Events::Rule': ['Name'],
};

function suffix(seed: string, length = 6): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, length);
}

function uuidFrom(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
