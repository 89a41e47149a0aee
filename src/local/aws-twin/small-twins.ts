/**
 * The smaller stand-ins of the twin: Route 53 (the template's zones and records; UPSERT of a record tells the twin,
 * which rewrites the writer file the local workers follow), SNS (what was published, by topic), Secrets Manager
 * (values the twin is given, by ARN or name) and CloudWatch (metric data kept; queries answered from it).
 */
import type { DeployedTemplate } from './cfn-template.js';
import type { PolicyDocument } from './iam-policies.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { awsError } from './twin-errors.js';

/** The key policy of a key of the template, by key ARN (KMS: the key policy must allow too). */
export function keyPolicyOf(deployed: DeployedTemplate, keyArn: string | undefined): PolicyDocument | undefined {
  if (!keyArn) return undefined;
  const id = deployed.ofType('AWS::KMS::Key').find((k) => deployed.attribute(k, 'Arn') === keyArn);
  return id ? deployed.property<PolicyDocument>(id, 'KeyPolicy') : undefined;
}

export interface RecordChange {
  readonly name: string;
  readonly type: string;
  readonly values: readonly string[];
}

export class Route53Twin implements ServiceTwin {
  readonly service = 'route53';
  private readonly zones = new Map<string, { name: string; records: Map<string, { type: string; ttl: number; values: string[] }> }>();
  private nextChange = 1;

  constructor(
    deployed: DeployedTemplate,
    private readonly onChange: (change: RecordChange) => void,
  ) {
    for (const id of deployed.ofType('AWS::Route53::HostedZone')) {
      this.zones.set(deployed.ref(id), { name: normalize(String(deployed.property(id, 'Name'))), records: new Map() });
    }
    for (const id of deployed.ofType('AWS::Route53::RecordSet')) {
      const zone = this.zones.get(String(deployed.property(id, 'HostedZoneId')));
      if (!zone) continue;
      zone.records.set(`${normalize(String(deployed.property(id, 'Name')))}/${deployed.property(id, 'Type')}`, {
        type: String(deployed.property(id, 'Type')),
        ttl: Number(deployed.property(id, 'TTL') ?? 300),
        values: (deployed.property<string[]>(id, 'ResourceRecords') ?? []).map(String),
      });
    }
  }

  record(zoneId: string, name: string, type: string): string[] | undefined {
    return this.zones.get(zoneId)?.records.get(`${normalize(name)}/${type}`)?.values;
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      ChangeResourceRecordSets: async (input: { HostedZoneId: string; ChangeBatch: { Changes: { Action: string; ResourceRecordSet: { Name: string; Type: string; TTL?: number; ResourceRecords?: { Value: string }[] } }[] } }) => {
        const zone = this.zones.get(input.HostedZoneId);
        if (!zone) throw awsError('NoSuchHostedZone', `No hosted zone found with ID: ${input.HostedZoneId}`, 404);
        const next = new Map(zone.records);
        for (const change of input.ChangeBatch.Changes) {
          const r = change.ResourceRecordSet;
          const name = normalize(r.Name);
          if (name !== zone.name && !name.endsWith(`.${zone.name}`)) throw awsError('InvalidChangeBatch', `RRSet with DNS name ${r.Name} is not permitted in zone ${zone.name}`);
          const key = `${name}/${r.Type}`;
          if (change.Action === 'DELETE') {
            if (!next.delete(key)) throw awsError('InvalidChangeBatch', `Tried to delete resource record set [name='${name}', type='${r.Type}'] but it was not found`);
          } else if (change.Action === 'CREATE' && next.has(key)) {
            throw awsError('InvalidChangeBatch', `Tried to create resource record set [name='${name}', type='${r.Type}'] but it already exists`);
          } else {
            next.set(key, { type: r.Type, ttl: r.TTL ?? 300, values: (r.ResourceRecords ?? []).map((v) => v.Value) });
          }
        }
        zone.records.clear();
        for (const [k, v] of next) zone.records.set(k, v);
        for (const change of input.ChangeBatch.Changes) {
          const r = change.ResourceRecordSet;
          if (change.Action !== 'DELETE') this.onChange({ name: normalize(r.Name), type: r.Type, values: (r.ResourceRecords ?? []).map((v) => v.Value) });
        }
        return { ChangeInfo: { Id: `/change/C${String(this.nextChange++).padStart(12, '0')}`, Status: 'PENDING', SubmittedAt: new Date() } };
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    if (operation !== 'ChangeResourceRecordSets') return [{ action: `route53:${operation}`, resource: '*' }];
    const changes = input.ChangeBatch.Changes as { Action: string; ResourceRecordSet: { Name: string; Type: string } }[];
    return [
      {
        action: 'route53:ChangeResourceRecordSets',
        resource: `arn:aws:route53:::hostedzone/${input.HostedZoneId}`,
        context: {
          'route53:ChangeResourceRecordSetsNormalizedRecordNames': changes.map((c) => normalize(c.ResourceRecordSet.Name)),
          'route53:ChangeResourceRecordSetsRecordTypes': changes.map((c) => c.ResourceRecordSet.Type),
          'route53:ChangeResourceRecordSetsActions': changes.map((c) => c.Action),
        },
      },
    ];
  }
}

function normalize(name: string): string {
  return name.trim().replace(/\.$/, '').toLowerCase();
}

export interface PublishedMessage {
  readonly topicArn: string;
  readonly subject?: string;
  readonly message: string;
  readonly attributes: Record<string, string>;
}

export class SnsTwin implements ServiceTwin {
  readonly service = 'sns';
  readonly published: PublishedMessage[] = [];
  private readonly topics = new Map<string, string | undefined>();
  private nextMessage = 1;

  constructor(private readonly deployed: DeployedTemplate) {
    for (const id of deployed.ofType('AWS::SNS::Topic')) this.topics.set(deployed.ref(id), deployed.property<string>(id, 'KmsMasterKeyId'));
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      Publish: async (input: { TopicArn: string; Subject?: string; Message: string; MessageAttributes?: Record<string, { StringValue?: string }> }) => {
        if (!this.topics.has(input.TopicArn)) throw awsError('NotFoundException', 'Topic does not exist', 404);
        if (input.Subject !== undefined && (input.Subject.length > 100 || /[\r\n]/.test(input.Subject))) throw awsError('InvalidParameterException', 'Invalid parameter: Subject');
        if (Buffer.byteLength(input.Message) > 256 * 1024) throw awsError('InvalidParameterException', 'Invalid parameter: Message too long');
        const attributes = Object.fromEntries(Object.entries(input.MessageAttributes ?? {}).map(([k, v]) => [k, v.StringValue ?? '']));
        this.published.push({ topicArn: input.TopicArn, ...(input.Subject !== undefined ? { subject: input.Subject } : {}), message: input.Message, attributes });
        return { MessageId: `twin-msg-${this.nextMessage++}` };
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    const calls: TwinAuthorization[] = [{ action: `sns:${operation}`, resource: input.TopicArn }];
    // Publishing to an SSE-KMS topic: SNS uses the key with the publisher's permissions (AWS: GenerateDataKey*, Decrypt).
    const key = this.topics.get(input.TopicArn);
    const keyArn = key && this.deployed.ofType('AWS::KMS::Key').map((k) => this.deployed.attribute(k, 'Arn')).find((a) => a === key || a.endsWith(`/${key}`));
    if (keyArn) {
      const resourcePolicy = keyPolicyOf(this.deployed, keyArn);
      const context = { 'kms:ViaService': `sns.${this.deployed.region}.amazonaws.com` };
      calls.push({ action: 'kms:GenerateDataKey', resource: keyArn, context, resourcePolicy }, { action: 'kms:Decrypt', resource: keyArn, context, resourcePolicy });
    }
    return calls;
  }
}

export class SecretsManagerTwin implements ServiceTwin {
  readonly service = 'secretsmanager';
  private readonly secrets = new Map<string, { name: string; keyArn?: string; value?: string }>();

  constructor(
    private readonly deployed: DeployedTemplate,
    values: Readonly<Record<string, string>>,
  ) {
    for (const id of deployed.ofType('AWS::SecretsManager::Secret')) {
      const arn = deployed.ref(id);
      this.secrets.set(arn, { name: deployed.name(id), keyArn: deployed.property<string>(id, 'KmsKeyId'), value: values[id] });
    }
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      GetSecretValue: async (input: { SecretId: string }) => {
        const [arn, s] = this.find(input.SecretId);
        if (s.value === undefined) throw awsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT");
        return { ARN: arn, Name: s.name, SecretString: s.value, VersionStages: ['AWSCURRENT'] };
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    const [arn, s] = this.find(input.SecretId);
    const calls: TwinAuthorization[] = [{ action: `secretsmanager:${operation}`, resource: arn }];
    if (s.keyArn) {
      calls.push({ action: 'kms:Decrypt', resource: s.keyArn, context: { 'kms:ViaService': `secretsmanager.${this.deployed.region}.amazonaws.com` }, resourcePolicy: keyPolicyOf(this.deployed, s.keyArn) });
    }
    return calls;
  }

  private find(id: string): [string, { name: string; keyArn?: string; value?: string }] {
    for (const [arn, s] of this.secrets) if (arn === id || s.name === id) return [arn, s];
    throw awsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
  }
}

export class CloudWatchTwin implements ServiceTwin {
  readonly service = 'cloudwatch';
  readonly data: { namespace: string; name: string; dimensions: Record<string, string>; value: number; at: number }[] = [];

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      PutMetricData: async (input: { Namespace: string; MetricData: { MetricName: string; Dimensions?: { Name: string; Value: string }[]; Value?: number }[] }) => {
        for (const d of input.MetricData) {
          this.data.push({ namespace: input.Namespace, name: d.MetricName, dimensions: Object.fromEntries((d.Dimensions ?? []).map((x) => [x.Name, x.Value])), value: d.Value ?? 0, at: Date.now() });
        }
        return {};
      },
      GetMetricData: async (input: { MetricDataQueries: { Id: string; MetricStat?: { Metric: { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: string }[] } } }[] }) => ({
        MetricDataResults: input.MetricDataQueries.map((q) => {
          const m = q.MetricStat?.Metric;
          const points = m
            ? this.data.filter((d) => d.namespace === m.Namespace && d.name === m.MetricName && (m.Dimensions ?? []).every((x) => d.dimensions[x.Name] === x.Value))
            : [];
          return { Id: q.Id, StatusCode: 'Complete', Timestamps: points.map((p) => new Date(p.at)), Values: points.map((p) => p.value) };
        }),
      }),
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    return [{ action: `cloudwatch:${operation}`, resource: '*', ...(operation === 'PutMetricData' ? { context: { 'cloudwatch:namespace': input.Namespace } } : {}) }];
  }
}
