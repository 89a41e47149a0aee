/**
 * After a failover from a to b, `rds-failover reconcile` flips the config's primary. This checks, with the same diff
 * engine `cdk diff` uses (the pinned aws-cdk CLI's), that the promoted node b is modified in place, never replaced, and
 * shows what happens to the other nodes (documented in docs/configuration.md, "After a failover").
 */
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT, logicalIdByPath, makeConfig, synthFailoverStack } from './helpers.js';

type Json = Record<string, unknown>;
type Impact = 'WILL_UPDATE' | 'WILL_CREATE' | 'WILL_REPLACE' | 'MAY_REPLACE' | 'WILL_DESTROY' | 'WILL_ORPHAN' | 'WILL_IMPORT' | 'NO_CHANGE';
interface PropertyDifference { readonly changeImpact: Impact; readonly oldValue: unknown; readonly newValue: unknown }
interface ResourceDifference {
  readonly changeImpact: Impact;
  readonly propertyUpdates: Record<string, PropertyDifference>;
  readonly isAddition: boolean;
  readonly isRemoval: boolean;
}
interface TemplateDiff { readonly resources: { get(id: string): ResourceDifference | undefined; forEachDifference(cb: (id: string, d: ResourceDifference) => void): void } }

// The CLI bundles @aws-cdk/cloudformation-diff and its resource specification (db.json.gz); its package exports
// hide lib/, so load the bundle by path. Pinned by package-lock.json (aws-cdk 2.1148.x).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cli = require(path.join(PROJECT_ROOT, 'node_modules', 'aws-cdk', 'lib', 'index.js')) as {
  DiffFormatter: new (props: { templateInfo: { oldTemplate: Json; newTemplate: { stackName: string; template: Json } } }) => {
    computeDiff(stackName: string, oldTemplate: Json, newTemplate: Json, changeSet: undefined, mappings: Record<string, string>): TemplateDiff;
  };
};

function cdkDiff(oldTemplate: Json, newTemplate: Json): TemplateDiff {
  const formatter = new cli.DiffFormatter({ templateInfo: { oldTemplate, newTemplate: { stackName: 'flip', template: newTemplate } } });
  return formatter.computeDiff('flip', oldTemplate, newTemplate, undefined, {});
}

function replacements(diff: TemplateDiff): Record<string, Impact> {
  const out: Record<string, Impact> = {};
  diff.resources.forEachDifference((id, d) => {
    if (d.changeImpact === 'WILL_REPLACE' || d.changeImpact === 'MAY_REPLACE') out[id] = d.changeImpact;
  });
  return out;
}

/**
 * Properties the resource specification marks "conditionally create-only" that the CloudFormation RDS handler
 * (aws-cloudformation-resource-providers-rds, ImmutabilityHelper.isChangeMutable) changes in place here:
 * - SourceDBInstanceIdentifier: removing it is a read-replica promotion (PromoteReadReplica with the template's
 *   BackupRetentionPeriod and PreferredBackupWindow), not a replacement;
 * - BackupRetentionPeriod, MultiAZ: create-only only for instances of an Aurora DB cluster.
 */
const IN_PLACE_FOR_A_STANDALONE_INSTANCE = ['SourceDBInstanceIdentifier', 'BackupRetentionPeriod', 'MultiAZ'];

describe('flipping the primary from a to b (what reconcile writes after a failover)', () => {
  let before: ReturnType<typeof synthFailoverStack>;
  let after: ReturnType<typeof synthFailoverStack>;
  let diff: TemplateDiff;
  const id = (s: typeof before, node: string) => logicalIdByPath(s.template, `/Database/Node-${node}`);
  const props = (s: typeof before, node: string) => (s.template.toJSON().Resources as Record<string, { Properties: Json }>)[id(s, node)].Properties;

  beforeAll(() => {
    before = synthFailoverStack();
    after = synthFailoverStack({ config: makeConfig({ database: { nodes: ['b', 'c'], primary: 'b', originalPrimary: 'a', retired: ['a'] } }) });
    diff = cdkDiff(before.template.toJSON() as Json, after.template.toJSON() as Json);
  });

  it('both configurations are cdk-nag clean', () => {
    expect(before.findings).toEqual([]);
    expect(after.findings).toEqual([]);
  });

  it('node b keeps its logical id (construct id from the node name, not the role)', () => {
    expect(id(after, 'b')).toBe(id(before, 'b'));
    expect(id(after, 'a')).toBe(id(before, 'a'));
    expect(id(before, 'b')).toMatch(/^DatabaseNodeb[0-9A-F]{8}$/);
  });

  it('node b is modified, not replaced: no create-only property changes, SourceDBInstanceIdentifier is only removed', () => {
    const b = diff.resources.get(id(before, 'b'))!;
    expect(b.changeImpact).not.toBe('WILL_REPLACE');
    const updates = Object.entries(b.propertyUpdates).filter(([, u]) => u.changeImpact !== 'NO_CHANGE');
    expect(updates.filter(([, u]) => u.changeImpact === 'WILL_REPLACE').map(([name]) => name)).toEqual([]);
    const maybe = updates.filter(([, u]) => u.changeImpact === 'MAY_REPLACE').map(([name]) => name);
    expect(maybe.every((name) => IN_PLACE_FOR_A_STANDALONE_INSTANCE.includes(name)), `may-replace properties: ${maybe.join(', ')}`).toBe(true);
    expect(b.propertyUpdates.SourceDBInstanceIdentifier.oldValue).toEqual({ Ref: id(before, 'a') });
    expect(b.propertyUpdates.SourceDBInstanceIdentifier.newValue).toBeUndefined();
    expect(updates.map(([name]) => name).sort()).toEqual(['BackupRetentionPeriod', 'DeletionProtection', 'MultiAZ', 'PreferredBackupWindow', 'SourceDBInstanceIdentifier']);
    for (const createOnly of ['DBInstanceIdentifier', 'MasterUsername', 'DBName', 'StorageEncrypted', 'KmsKeyId', 'Port', 'DBSubnetGroupName', 'Engine']) {
      expect(props(after, 'b')[createOnly], createOnly).toEqual(props(before, 'b')[createOnly]);
    }
  });

  it('promoted b gets the primary settings: backups, Multi-AZ, deletion protection', () => {
    expect(props(after, 'b')).toMatchObject({ BackupRetentionPeriod: 7, PreferredBackupWindow: '22:35-23:05', MultiAZ: true, DeletionProtection: true });
    expect(props(after, 'b').SourceDBInstanceIdentifier).toBeUndefined();
  });

  it('retired a stays in place, fenced in the quarantine group, deletion protection off', () => {
    const a = diff.resources.get(id(before, 'a'))!;
    expect(a.changeImpact).toBe('WILL_UPDATE');
    expect(Object.entries(a.propertyUpdates).filter(([, u]) => u.changeImpact !== 'NO_CHANGE').map(([n]) => n).sort()).toEqual(['DeletionProtection', 'VPCSecurityGroups']);
    expect(props(after, 'a').VPCSecurityGroups).toEqual([{ 'Fn::GetAtt': [expect.stringMatching(/^SecurityGroupsQuarantine/), 'GroupId'] }]);
    expect(props(after, 'a')).toMatchObject({ DeletionProtection: false, MasterUsername: 'failover_admin', StorageEncrypted: true });
  });

  it('replica c, still following a, would need a new source (rename it, see the next test); b is only "may be replaced" through its in-place properties', () => {
    // `cdk diff` prints both as "may be replaced": b because of the conditionally create-only properties checked above,
    // which the RDS handler changes in place for a standalone instance; c because a new source means a new instance.
    expect(replacements(diff)).toEqual({ [id(before, 'b')]: 'MAY_REPLACE', [id(before, 'c')]: 'MAY_REPLACE' });
    const c = diff.resources.get(id(before, 'c'))!;
    expect(c.propertyUpdates.SourceDBInstanceIdentifier).toMatchObject({ oldValue: { Ref: id(before, 'a') }, newValue: { Ref: id(before, 'b') } });
  });

  it('the writer record, writer parameter, topology and credentials attachment follow b in place', () => {
    const writer = logicalIdByPath(after.template, '/WriterEndpoint/Writer/Resource');
    expect(diff.resources.get(writer)!.changeImpact).toBe('WILL_UPDATE');
    after.template.hasResourceProperties('AWS::Route53::RecordSet', { ResourceRecords: [{ 'Fn::GetAtt': [id(before, 'b'), 'Endpoint.Address'] }] });
    after.template.hasResourceProperties('AWS::SSM::Parameter', { Name: '/rds-failover/orders/writer-instance-id', Value: 'orders-b' });
    after.template.hasResourceProperties('AWS::SecretsManager::SecretTargetAttachment', { TargetId: { Ref: id(before, 'b') } });
    const topology = Object.values(after.template.findResources('AWS::SSM::Parameter')).find((p) => p.Properties.Name === '/rds-failover/orders/topology')!;
    expect(JSON.parse(String(topology.Properties.Value))).toEqual({
      version: 1,
      clusterId: 'orders',
      primary: 'b',
      nodes: [
        { name: 'b', instanceId: 'orders-b', role: 'primary' },
        { name: 'c', instanceId: 'orders-c', role: 'replica' },
      ],
    });
    const attachment = logicalIdByPath(after.template, '/Database/Credentials/Attachment/Resource');
    expect(diff.resources.get(attachment)!.changeImpact).toBe('WILL_UPDATE');
  });

  it('renaming the stale replica (c -> d) deletes c and creates d as a replica of b: nothing is replaced', () => {
    const renamed = synthFailoverStack({
      config: makeConfig({
        database: {
          nodes: ['b', 'd'],
          primary: 'b',
          originalPrimary: 'a',
          retired: ['a'],
          windows: { d: { maintenance: 'sun:06:00-sun:06:30', backup: '23:10-23:40' }, c: undefined },
        },
      }),
    });
    expect(renamed.findings).toEqual([]);
    const d2 = cdkDiff(before.template.toJSON() as Json, renamed.template.toJSON() as Json);
    expect(replacements(d2)).toEqual({ [id(before, 'b')]: 'MAY_REPLACE' });
    expect(d2.resources.get(id(before, 'c'))!.isRemoval).toBe(true);
    const d = id(renamed, 'd');
    expect(d2.resources.get(d)!.isAddition).toBe(true);
    expect(props(renamed, 'd')).toMatchObject({ DBInstanceIdentifier: 'orders-d', SourceDBInstanceIdentifier: { Ref: id(before, 'b') } });
    expect(d2.resources.get(id(before, 'b'))!.changeImpact).not.toBe('WILL_REPLACE');
  });

  it('removing the retired node from the config deletes it with a final snapshot', () => {
    const done = synthFailoverStack({ config: makeConfig({ database: { nodes: ['b', 'c'], primary: 'b', originalPrimary: 'a', retired: [], windows: { a: undefined } } }), nag: false });
    const d3 = cdkDiff(after.template.toJSON() as Json, done.template.toJSON() as Json);
    expect(d3.resources.get(id(before, 'a'))!.isRemoval).toBe(true);
    expect((after.template.toJSON().Resources as Record<string, Json>)[id(before, 'a')].DeletionPolicy).toBe('Snapshot');
    expect(replacements(d3)).toEqual({});
  });
});
