/**
 * Findings of the line-by-line audit of the template against AWS's documentation (issue 11, defects 4 and 5),
 * checked on the synthesized FailoverStack; the IAM ones with a real policy evaluator (@cloud-copilot/iam-simulate).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DeployedTemplate, type CfnTemplate } from '../../src/local/aws-twin/cfn-template.js';
import { authorize, functionRole, rolePolicies, unsupportedConditionKeys, type NamedPolicy, type PolicyDocument } from '../../src/local/aws-twin/iam-policies.js';
import { logicalIdByPath, synthFailoverStack } from './helpers.js';

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
let deployed: DeployedTemplate;
let template: CfnTemplate;
let pathOf: (suffix: string) => string;

function roleOf(logicalId: string): { arn: string; policies: NamedPolicy[] } {
  return { arn: deployed.attribute(logicalId, 'Arn'), policies: rolePolicies(deployed, logicalId) };
}
function runbookRole(fn: string) {
  const id = deployed.ofType('AWS::Lambda::Function').find((f) => f.startsWith(`Runbook${fn[0]!.toUpperCase()}${fn.slice(1)}Function`));
  if (!id) throw new Error(`no runbook function ${fn}`);
  return roleOf(functionRole(deployed, id));
}
async function decision(role: { arn: string; policies: NamedPolicy[] }, action: string, resource: string, context: Record<string, string | string[]> = {}, resourcePolicy?: PolicyDocument) {
  const result = await authorize({ principal: role.arn, action, resource, context }, role.policies, resourcePolicy);
  return result.decision;
}

beforeAll(() => {
  const synth = synthFailoverStack({ nag: false });
  template = synth.template.toJSON() as CfnTemplate;
  deployed = new DeployedTemplate(template, { account: ACCOUNT, region: REGION, stackName: synth.stack.stackName });
  pathOf = (suffix) => logicalIdByPath(synth.template, suffix);
});

describe('DLM pre-script (defect 4)', () => {
  it('the DLM role may read the pre-script document (ssm:DescribeDocument, ssm:GetDocument), as AWS\'s managed policy for scripts grants', async () => {
    const role = roleOf(pathOf('Snapshots/Role/Resource'));
    const document = deployed.attribute(pathOf('Snapshots/PreScript'), 'Arn');
    expect(await decision(role, 'ssm:DescribeDocument', document)).toBe('Allowed');
    expect(await decision(role, 'ssm:GetDocument', document)).toBe('Allowed');
    expect(await decision(role, 'ssm:GetDocument', `arn:aws:ssm:${REGION}:${ACCOUNT}:document/AWS-RunShellScript`)).not.toBe('Allowed');
  });

  it('alarms on the policy\'s failed pre-scripts and failed snapshots (AWS/EBS, DLMPolicyId), to the alert topic', () => {
    const policyId = deployed.ref(pathOf('Snapshots/Policy'));
    const topic = deployed.ref(pathOf('Monitoring/Topic/Resource'));
    const alarms = deployed
      .ofType('AWS::CloudWatch::Alarm')
      .map((id) => deployed.resolve(template.Resources[id]!.Properties) as Record<string, any>)
      .filter((a) => a.Namespace === 'AWS/EBS');
    expect(alarms.map((a) => a.MetricName).sort()).toEqual(['PreScriptFailed', 'SnapshotsCreateFailed']);
    for (const a of alarms) {
      expect(a.Dimensions).toEqual([{ Name: 'DLMPolicyId', Value: policyId }]);
      expect(a).toMatchObject({ Statistic: 'Sum', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', TreatMissingData: 'notBreaching' });
      expect(a.AlarmActions).toEqual([topic]);
    }
  });
});

describe('smaller audit findings (defect 5)', () => {
  it('the rebuild may pass the Enhanced Monitoring role to RDS whichever service name RDS sends (iam:PassedToService)', async () => {
    const role = runbookRole('rebuild');
    const monitoringRole = deployed.attribute(pathOf('Database/MonitoringRole/Resource'), 'Arn');
    for (const service of ['monitoring.rds.amazonaws.com', 'rds.amazonaws.com']) {
      expect(await decision(role, 'iam:PassRole', monitoringRole, { 'iam:PassedToService': service }), service).toBe('Allowed');
    }
    expect(await decision(role, 'iam:PassRole', monitoringRole, { 'iam:PassedToService': 'lambda.amazonaws.com' })).not.toBe('Allowed');
  });

  it('every runbook function may DescribeKey the lock/journal table key (DynamoDB uses it with the caller\'s permissions)', async () => {
    const keyId = pathOf('/DataKey/Resource');
    const keyPolicy = deployed.property<PolicyDocument>(keyId, 'KeyPolicy');
    for (const fn of ['probe', 'fence', 'promote', 'repoint', 'drain', 'rebuild', 'finish']) {
      expect(await decision(runbookRole(fn), 'kms:DescribeKey', deployed.attribute(keyId, 'Arn'), {}, keyPolicy), fn).toBe('Allowed');
    }
  });

  it('the drain may send its document only to instances tagged as this cluster\'s workers (role tag and cluster tag)', async () => {
    const role = runbookRole('drain');
    const instance = `arn:aws:ec2:${REGION}:${ACCOUNT}:instance/i-0123456789abcdef0`;
    const worker = { 'ssm:resourceTag/rds-failover:cluster': 'orders', 'ssm:resourceTag/rds-failover:role': 'worker' };
    expect(await decision(role, 'ssm:SendCommand', instance, worker)).toBe('Allowed');
    // Every taggable resource of the stack carries the cluster tag: an instance with it alone is not a worker.
    expect(await decision(role, 'ssm:SendCommand', instance, { 'ssm:resourceTag/rds-failover:cluster': 'orders' })).not.toBe('Allowed');
    expect(await decision(role, 'ssm:SendCommand', instance, { ...worker, 'ssm:resourceTag/rds-failover:cluster': 'orders-eu' })).not.toBe('Allowed');
    const env = deployed.resolve((template.Resources[pathOf('Runbook/DrainFunction/Function/Resource')]!.Properties as any).Environment.Variables) as Record<string, string>;
    expect([env.WORKER_TAG_KEY, env.WORKER_TAG_VALUE]).toEqual(['rds-failover:cluster', 'orders']);
  });

  it('read replicas do not name a KMS key (a same-region replica inherits its source\'s); the original primary does', () => {
    const instances = deployed.ofType('AWS::RDS::DBInstance').map((id) => template.Resources[id]!.Properties as Record<string, unknown>);
    const replicas = instances.filter((p) => p.SourceDBInstanceIdentifier !== undefined);
    expect(replicas).toHaveLength(2);
    for (const r of replicas) expect(r.KmsKeyId).toBeUndefined();
    expect(instances.filter((p) => p.SourceDBInstanceIdentifier === undefined).map((p) => p.KmsKeyId !== undefined)).toEqual([true]);
  });

  it('the state machine logs to a log group under /aws/vendedlogs/ (AWS: avoids the CloudWatch Logs resource policy size limit)', () => {
    const machine = deployed.ofType('AWS::StepFunctions::StateMachine').map((id) => deployed.resolve(template.Resources[id]!.Properties) as any)[0];
    const arn: string = machine.LoggingConfiguration.Destinations[0].CloudWatchLogsLogGroup.LogGroupArn;
    expect(arn).toBe(`arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/vendedlogs/states/rds-failover-orders-runbook:*`);
  });
});

it('every condition key of every role of the stack is supported by the actions of its statement (Service Authorization Reference)', async () => {
  const found = [];
  for (const roleId of deployed.ofType('AWS::IAM::Role')) found.push(...(await unsupportedConditionKeys(rolePolicies(deployed, roleId))));
  expect(found).toEqual([]);
});
