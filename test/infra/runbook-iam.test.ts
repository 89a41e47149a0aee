/**
 * The runbook roles' policies from the synthesized template, evaluated with a real IAM policy evaluator
 * (@cloud-copilot/iam-simulate): what each function must be able to do is allowed, what would let it reach
 * another cluster is denied, and every condition key is one its actions support.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DeployedTemplate, type CfnTemplate } from '../../src/local/aws-twin/cfn-template.js';
import { authorize, functionRole, rolePolicies, unsupportedConditionKeys, type NamedPolicy } from '../../src/local/aws-twin/iam-policies.js';
import { buildRunbookStack } from './runbook-fixture.js';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
const CLUSTER = 'rds-failover:cluster';
const db = (id: string) => `arn:aws:rds:${REGION}:${ACCOUNT}:db:${id}`;

let deployed: DeployedTemplate;
const roles = new Map<string, { arn: string; policies: NamedPolicy[] }>();

function role(fn: string) {
  const r = roles.get(fn);
  if (!r) throw new Error(`no runbook function ${fn}`);
  return r;
}

async function decision(fn: string, action: string, resource: string, context: Record<string, string | string[]> = {}) {
  const r = role(fn);
  return (await authorize({ principal: r.arn, action, resource, context }, r.policies)).decision;
}

beforeAll(() => {
  const { stack } = buildRunbookStack();
  deployed = new DeployedTemplate(Template.fromStack(stack).toJSON() as CfnTemplate, { account: ACCOUNT, region: REGION, stackName: 'RunbookTest' });
  for (const id of deployed.ofType('AWS::Lambda::Function')) {
    const m = /^Runbook([A-Z][a-z]+)Function/.exec(id);
    if (!m) continue;
    const roleId = functionRole(deployed, id);
    roles.set(m[1]!.toLowerCase(), { arn: deployed.attribute(roleId, 'Arn'), policies: rolePolicies(deployed, roleId) });
  }
});

describe('rebuild role: the cluster-tag guard holds for tags and sources (issue 11, defect 3)', () => {
  const ours = { [`aws:RequestTag/${CLUSTER}`]: 'prod', 'aws:TagKeys': [CLUSTER, 'rds-failover:rebuilt-from'] };

  it('may create a replica of its own primary, tagged as its own, and tag it on creation', async () => {
    expect(await decision('rebuild', 'rds:CreateDBInstanceReadReplica', db('prod-cr2'), ours)).toBe('Allowed');
    expect(await decision('rebuild', 'rds:CreateDBInstanceReadReplica', db('prod-b'), { ...ours, [`aws:ResourceTag/${CLUSTER}`]: 'prod' })).toBe('Allowed');
    expect(await decision('rebuild', 'rds:AddTagsToResource', db('prod-cr2'), ours)).toBe('Allowed');
  });

  it('may not put its cluster tag on another cluster\'s instance whose id starts with its own (prod-eu-a)', async () => {
    expect(await decision('rebuild', 'rds:AddTagsToResource', db('prod-eu-a'), { ...ours, [`aws:ResourceTag/${CLUSTER}`]: 'prod-eu' })).not.toBe('Allowed');
  });

  it('may not use another cluster\'s instance as the source, nor create an instance that is not tagged as its own', async () => {
    expect(await decision('rebuild', 'rds:CreateDBInstanceReadReplica', db('prod-eu-a'), { ...ours, [`aws:ResourceTag/${CLUSTER}`]: 'prod-eu' })).not.toBe('Allowed');
    expect(await decision('rebuild', 'rds:CreateDBInstanceReadReplica', db('prod-cr2'), { 'aws:TagKeys': ['team'], 'aws:RequestTag/team': 'x' })).not.toBe('Allowed');
    expect(await decision('rebuild', 'rds:CreateDBInstanceReadReplica', db('prod-cr2'), { [`aws:RequestTag/${CLUSTER}`]: 'prod-eu', 'aws:TagKeys': [CLUSTER] })).not.toBe('Allowed');
  });
});

it('every condition key of every runbook role is supported by the actions of its statement (Service Authorization Reference)', async () => {
  const unsupported = [];
  for (const r of roles.values()) unsupported.push(...(await unsupportedConditionKeys(r.policies)));
  expect(unsupported).toEqual([]);
});
