/**
 * Wiring of the runbook Lambdas: environment -> AWS adapters -> runAction. Every runbook function gets the same
 * names and ARNs in its environment (never secrets); what it may actually call is decided by its IAM policy,
 * and ports it has no business with (no database access outside the VPC functions) are unavailable.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { Route53Client } from '@aws-sdk/client-route-53';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { Logger } from '@aws-lambda-powertools/logger';
import type pg from 'pg';
import { runAction, type RunbookAction } from '../core/runbook/actions.js';
import { unavailablePort, type RunbookEnv } from '../core/runbook/env.js';
import type { RunbookEvent } from '../core/runbook/events.js';
import { RunbookInputError } from '../core/runbook/errors.js';
import { RunbookEnvVar } from '../core/runbook/lambda-environment.js';
import { AWS_RUNBOOK_CONFIG, type RunbookConfig, type RunbookState } from '../core/runbook/state.js';
import { PgWriteFencer } from '../pg/fence.js';
import { PgLineageStore } from '../pg/lineage.js';
import type { LineageStore } from '../ports/lineage-store.js';
import { PowertoolsRunbookMetrics } from './powertools-metrics-sink.js';
import { NodeSessions } from '../pg/node-sessions.js';
import { PgDatabaseProbe } from '../pg/probe.js';
import { systemClock } from '../ports/clock.js';
import type { DatabaseProbe, NodeProbe } from '../ports/database-probe.js';
import type { WorkerControl } from '../ports/worker-control.js';
import { loadDbCredentials, type DbCredentials } from './db-credentials.js';
import { DynamoDbFailoverLock, DynamoDbRunbookJournal } from './dynamodb-failover-lock.js';
import { RdsClusterControl } from './rds-cluster-control.js';
import { SnsNotifier } from './sns-notifier.js';
import { SsmWorkerControl } from './ssm-worker-control.js';

export interface RunbookTaskEvent {
  readonly action: RunbookAction;
  readonly state: unknown;
}

type Env = Readonly<Record<string, string | undefined>>;

function required(env: Env, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`environment variable ${name} is not set: the Runbook construct sets it on every runbook function`);
  return value;
}

/** RUNBOOK_CONFIG (JSON) over the AWS defaults; every field validated. */
export function runbookConfigFromEnv(env: Env): RunbookConfig {
  const raw = env[RunbookEnvVar.Config];
  if (!raw) return AWS_RUNBOOK_CONFIG;
  let parsed: Partial<RunbookConfig>;
  try {
    parsed = JSON.parse(raw) as Partial<RunbookConfig>;
  } catch {
    throw new Error(`${RunbookEnvVar.Config} is not JSON: expected a partial RunbookConfig object`);
  }
  const config: RunbookConfig = {
    ...AWS_RUNBOOK_CONFIG,
    ...parsed,
    pollIntervalMs: { ...AWS_RUNBOOK_CONFIG.pollIntervalMs, ...parsed.pollIntervalMs },
    timeoutMs: { ...AWS_RUNBOOK_CONFIG.timeoutMs, ...parsed.timeoutMs },
    retry: { ...AWS_RUNBOOK_CONFIG.retry, ...parsed.retry },
  };
  const check = (path: string, v: unknown) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`${RunbookEnvVar.Config}.${path} must be a non-negative number, got ${JSON.stringify(v)}`);
  };
  for (const k of ['maxLagOnFailoverBytes', 'lockTtlSeconds', 'confirmUnreachableMs', 'drainAttempts', 'notifyTimeoutMs'] as const) check(k, config[k]);
  for (const [k, v] of Object.entries(config.pollIntervalMs)) check(`pollIntervalMs.${k}`, v);
  for (const [k, v] of Object.entries(config.timeoutMs)) check(`timeoutMs.${k}`, v);
  if (config.expectedWorkers !== undefined) check('expectedWorkers', config.expectedWorkers);
  return config;
}

/** Resolves DB instance endpoints (cached for the container's life: an instance keeps its endpoint). */
export class RdsEndpoints {
  private readonly cache = new Map<string, { host: string; port: number }>();
  constructor(private readonly rds: RDSClient) {}

  async resolve(nodeId: string): Promise<{ host: string; port: number }> {
    const cached = this.cache.get(nodeId);
    if (cached) return cached;
    const out = await this.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: nodeId }));
    const endpoint = out.DBInstances?.[0]?.Endpoint;
    if (!endpoint?.Address) throw new Error(`${nodeId} has no endpoint yet`);
    const value = { host: endpoint.Address, port: endpoint.Port ?? 5432 };
    this.cache.set(nodeId, value);
    return value;
  }

  cached(nodeId: string): { host: string; port: number } {
    const v = this.cache.get(nodeId);
    if (!v) throw new Error(`endpoint of ${nodeId} not resolved`);
    return v;
  }
}

/** DatabaseProbe for RDS: resolves the endpoint and credentials first, then the shared pg probe (never throws). */
export class RdsDatabaseProbe implements DatabaseProbe {
  private readonly resolved = new Map<string, pg.ClientConfig>();
  private readonly pgProbe: PgDatabaseProbe;

  constructor(
    private readonly connection: (nodeId: string) => Promise<pg.ClientConfig>,
    sessions?: NodeSessions,
  ) {
    this.pgProbe = new PgDatabaseProbe(
      (id) => {
        const config = this.resolved.get(id);
        if (!config) throw new Error(`connection of ${id} not resolved`);
        return config;
      },
      { sessions },
    );
  }

  async probe(nodeId: string): Promise<NodeProbe> {
    try {
      this.resolved.set(nodeId, await this.connection(nodeId));
    } catch (error) {
      return { nodeId, sampledAt: new Date().toISOString(), reachable: false, error: `cannot resolve ${nodeId}: ${(error as Error).message}` };
    }
    return this.pgProbe.probe(nodeId);
  }
}

/** Builds the runbook environment for one Lambda from its environment variables. */
export function buildAwsRunbookEnv(env: Env, onEvent?: (event: RunbookEvent) => void): RunbookEnv {
  const clusterId = required(env, RunbookEnvVar.ClusterId);
  const where = `runbook function of ${clusterId}`;
  const rds = new RDSClient({});
  const ssm = new SSMClient({});
  const dynamo = new DynamoDBClient({});
  const table = required(env, RunbookEnvVar.LockTable);
  const endpoints = new RdsEndpoints(rds);

  let credentials: Promise<DbCredentials> | undefined;
  const secretArn = env[RunbookEnvVar.DbSecretArn];
  const connection = async (nodeId: string): Promise<pg.ClientConfig> => {
    // A failed read (throttled, say) must not be cached for the container's life: the next connection reads again.
    credentials ??= loadDbCredentials(secretArn!).catch((error: unknown) => {
      credentials = undefined;
      throw error;
    });
    const [{ host, port }, creds] = await Promise.all([endpoints.resolve(nodeId), credentials]);
    return {
      host,
      port,
      user: creds.username,
      password: creds.password,
      database: env[RunbookEnvVar.DbName] ?? creds.dbname ?? 'postgres',
      // RDS CAs come from NODE_EXTRA_CA_CERTS=/var/runtime/ca-cert.pem (set by the construct).
      ssl: { rejectUnauthorized: true },
    };
  };
  const sessions = new NodeSessions();
  const probe: DatabaseProbe = secretArn ? new RdsDatabaseProbe(connection, sessions) : unavailablePort<DatabaseProbe>('probe', where);
  const fenceDatabases = env[RunbookEnvVar.DbFenceDatabases]?.split(',').map((d) => d.trim()).filter(Boolean);
  const writeFencer = secretArn ? new PgWriteFencer(connection, fenceDatabases?.length ? { databases: fenceDatabases } : {}) : undefined;

  const cluster = new RdsClusterControl({
    clusterId,
    rds,
    route53: new Route53Client({}),
    ssm,
    writerParameterName: required(env, RunbookEnvVar.WriterParameter),
    topologyParameterName: required(env, RunbookEnvVar.TopologyParameter),
    hostedZoneId: required(env, RunbookEnvVar.HostedZoneId),
    writerRecordName: required(env, RunbookEnvVar.WriterRecordName),
    writerRecordTtlSeconds: env[RunbookEnvVar.WriterRecordTtl] ? Number(env[RunbookEnvVar.WriterRecordTtl]) : undefined,
    quarantineSecurityGroupId: required(env, RunbookEnvVar.QuarantineSecurityGroup),
    writeFencer,
    ...(secretArn ? { probe } : {}),
    backupRetentionDays: env[RunbookEnvVar.BackupRetentionDays] ? Number(env[RunbookEnvVar.BackupRetentionDays]) : undefined,
  });
  const workers: WorkerControl = env[RunbookEnvVar.WorkerTagKey]
    ? new SsmWorkerControl({
        ssm,
        tagKey: required(env, RunbookEnvVar.WorkerTagKey),
        tagValue: required(env, RunbookEnvVar.WorkerTagValue),
        documentName: required(env, RunbookEnvVar.DrainDocument),
      })
    : unavailablePort<WorkerControl>('workers', where);

  return {
    clusterId,
    config: runbookConfigFromEnv(env),
    onEvent,
    onNotifyError: (error) => logger.warn('runbook notification not delivered', { error: String(error) }),
    ports: {
      cluster,
      probe,
      workers,
      lineage: secretArn ? new PgLineageStore(connection, { sessions }) : unavailablePort<LineageStore>('lineage', where),
      metrics: new PowertoolsRunbookMetrics(),
      notifier: new SnsNotifier(required(env, RunbookEnvVar.TopicArn), new SNSClient({})),
      lock: new DynamoDbFailoverLock(dynamo, table),
      journal: new DynamoDbRunbookJournal(dynamo, table),
      clock: systemClock,
      actionScope: (run) => sessions.within(run),
    },
  };
}

/**
 * The handler of one runbook Lambda: it runs only the actions its IAM policy was written for.
 * The state machine calls it with { action, state } and gets the next state back.
 */
export function runbookHandler(actions: readonly RunbookAction[], makeEnv: () => RunbookEnv = () => buildAwsRunbookEnv(process.env, logEvent)) {
  let runbookEnv: RunbookEnv | undefined;
  return async (event: RunbookTaskEvent): Promise<RunbookState> => {
    if (!event || !actions.includes(event.action)) {
      throw new RunbookInputError(`this function runs the runbook actions ${actions.join(', ')}; got ${JSON.stringify(event?.action)}`);
    }
    runbookEnv ??= makeEnv();
    return runAction(event.action, event.state, runbookEnv);
  };
}

const logger = new Logger({ serviceName: 'rds-failover-runbook' });

function logEvent(event: RunbookEvent): void {
  const log = event.phase === 'failed' ? logger.error.bind(logger) : event.phase === 'warning' ? logger.warn.bind(logger) : logger.info.bind(logger);
  log(`runbook ${event.step} ${event.phase}`, { ...event });
}

export { RunbookEnvVar };
