import { describe, expect, it } from 'vitest';
import { localNodeName, reconcileConfig, type LiveTopology } from '../../../src/cli/commands/reconcile.js';
import { CliError } from '../../../src/cli/options.js';
import { parseConfig } from '../../../lib/config.js';

const live = (primary: string, nodes: string[]): LiveTopology => ({ clusterId: 'orders', primary, nodes, source: 'test' });
const workers = { streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } };
const base = { clusterId: 'orders', workers, database: { nodes: ['a', 'b', 'c'] } };

function errorOf(fn: () => unknown): CliError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CliError) return error;
    throw error;
  }
  throw new Error('expected a CliError');
}

describe('reconcileConfig', () => {
  it('changes nothing when the config matches the live topology', () => {
    const result = reconcileConfig(base, 'c.json', live('a', ['a', 'b', 'c']), { checkClusterId: true });
    expect(result.changed).toBe(false);
    expect(result.changes).toEqual([]);
    expect(result.after).toEqual(base.database);
  });

  it('a failover a -> b: b becomes primary, a is retired, originalPrimary stays a, c keeps its window', () => {
    const result = reconcileConfig(base, 'c.json', live('b', ['b', 'c']), { checkClusterId: true });
    expect(result.changed).toBe(true);
    const after = parseConfig(result.next);
    const before = parseConfig(base);
    expect(after.database).toMatchObject({ primary: 'b', nodes: ['b', 'c'], retired: ['a'], originalPrimary: 'a' });
    expect(after.database.windows).toEqual(before.database.windows);
    expect(result.changes).toEqual([
      'primary: a -> b (the promoted instance stays in place)',
      'originalPrimary pinned to a (it was implied by primary; it is create-only and must not follow it)',
      'node a is retired: the fenced former primary keeps running in the quarantine group, deletion protection off, until you remove it from database.retired',
      'maintenance and backup windows pinned to their current values (defaults go by position, which changed)',
    ]);
  });

  it('an explicit originalPrimary is kept as written, and a second failover b -> c retires b too', () => {
    const afterFirst = {
      clusterId: 'orders',
      workers,
      database: { nodes: ['b', 'c'], primary: 'b', originalPrimary: 'a', retired: ['a'] },
    };
    const result = reconcileConfig(afterFirst, 'c.json', live('c', ['c', 'd']), { checkClusterId: true });
    expect(result.after).toMatchObject({ nodes: ['c', 'd'], primary: 'c', originalPrimary: 'a', retired: ['a', 'b'] });
    expect(result.changes).toContain('node d joins the topology: the runbook\'s rebuild created orders-d outside CloudFormation, so the stack must adopt it (cdk import), not create it');
    // Everyone keeps their window; d gets a free one.
    const before = parseConfig(afterFirst).database.windows;
    const after = parseConfig(result.next).database.windows;
    for (const n of ['a', 'b', 'c']) expect(after[n]).toEqual(before[n]);
    expect(after.d).toBeDefined();
    expect(result.changes.some((c) => c.startsWith('originalPrimary'))).toBe(false);
  });

  it('a replica that left the topology is dropped (cdk deploy deletes it); its explicit window goes with it', () => {
    const config = {
      clusterId: 'orders',
      workers,
      database: { nodes: ['a', 'b', 'c'], windows: { c: { maintenance: 'sat:03:00-sat:03:30', backup: '20:00-20:30' } } },
    };
    const result = reconcileConfig(config, 'c.json', live('a', ['a', 'b']), { checkClusterId: true });
    expect(result.after).toMatchObject({ nodes: ['a', 'b'] });
    expect(result.after.primary).toBeUndefined();
    expect(result.after.retired).toBeUndefined();
    expect(Object.keys(result.after.windows as object)).toEqual(['a', 'b']);
    expect(result.changes).toContain('node c leaves the topology: it was a replica, cdk deploy deletes orders-c');
  });

  it('a node the runbook rebuilt under a name the config cannot hold is refused with the config errors (exit 1), nothing written', () => {
    const error = errorOf(() => reconcileConfig(base, 'c.json', live('b', ['b', 'c-g2']), { checkClusterId: true }));
    expect(error.exitCode).toBe(1);
    expect(error.message).toContain('the live topology (test) cannot be written into c.json as is');
    expect(error.message).toContain("database.nodes[1]: expected a node name");
  });

  it('refuses a config that is invalid already (exit 2) and a live primary outside its nodes (exit 1)', () => {
    const invalid = errorOf(() => reconcileConfig({ clusterId: 'orders', workers, database: { nodes: ['a'] } }, 'c.json', live('a', ['a']), { checkClusterId: true }));
    expect(invalid.exitCode).toBe(2);
    expect(invalid.message).toContain('c.json is not a valid config already (fix it first)');
    expect(invalid.message).toContain('database.nodes: expected 2 to 6 node names');
    const broken = errorOf(() => reconcileConfig(base, 'c.json', live('z', ['a', 'b']), { checkClusterId: true }));
    expect(broken.exitCode).toBe(1);
    expect(broken.message).toContain("names primary 'z', which is not one of its nodes (a, b)");
  });

  it('the cluster id check can be left out (the local cluster has its own id)', () => {
    expect(() => reconcileConfig(base, 'c.json', { ...live('a', ['a', 'b', 'c']), clusterId: 'local-1' }, { checkClusterId: true })).toThrow(/is the config of cluster 'orders'/);
    expect(reconcileConfig(base, 'c.json', { ...live('a', ['a', 'b', 'c']), clusterId: 'local-1' }, { checkClusterId: false }).changed).toBe(false);
  });

  it('local node ids become config node names', () => {
    expect(localNodeName('pg-1')).toBe('pg1');
    expect(localNodeName('pg-10')).toBe('pg10');
  });
});
