import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { applyLoginRoles, type TableGrant } from '../pg/database-roles.js';
import { grantLineageToAgent, grantLineageToMonitor, initLineage } from '../pg/lineage.js';
import { loadDbCredentials } from './db-credentials.js';

/** The custom resource's properties (lib/database-roles.ts): secret ARNs, and the agent's tables as JSON. */
export interface DatabaseRolesProperties {
  readonly AgentSecretArn: string;
  readonly MonitorSecretArn: string;
  /** JSON array of {table, keyColumns}. */
  readonly Tables: string;
}

/** What the Provider framework passes to onEvent (the fields used here). */
export interface DatabaseRolesEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: DatabaseRolesProperties & { readonly ServiceToken?: string };
}

export interface DatabaseRolesTarget {
  readonly masterSecretArn: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** The primary's DB instance identifier: names the root epoch of the lineage. */
  readonly primaryInstanceId: string;
  /** TLS options for the session (the Lambda verifies the RDS certificate; tests pass false). */
  readonly ssl: pg.ClientConfig['ssl'];
  /** Wait before reading the master secret again after a refused password. @default 10000 */
  readonly retryDelayMs?: number;
}

export const AGENT_ROLE_MEMBER_OF = ['pg_read_all_stats'] as const; // prune reads replicas' replay_lsn in pg_stat_replication
export const MONITOR_ROLE_MEMBER_OF = ['pg_monitor'] as const;

/**
 * Create/Update: applies the login roles named by the agent and monitor secrets (their usernames, with the
 * passwords they hold now) as the master user, and grants the agent its tables; the tables that do not exist
 * yet come back in Data.MissingTables. Creates the lineage (schema rds_failover) with the root epoch of the
 * primary when it has none (an existing lineage is kept: after a failover it holds every epoch since), and grants
 * the agent and monitor roles their part of it. Delete: changes nothing (the roles stay: dropping one that holds
 * privileges would fail, and the workers may still be draining).
 */
export async function onDatabaseRolesEvent(event: DatabaseRolesEvent, target: DatabaseRolesTarget, secrets: SecretsManagerClient): Promise<{ PhysicalResourceId: string; Data?: Record<string, string> }> {
  const physicalResourceId = event.PhysicalResourceId ?? `rds-failover-roles-${target.database}`;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalResourceId };
  const tables = parseTables(event.ResourceProperties.Tables);
  const [agent, monitor] = await Promise.all([event.ResourceProperties.AgentSecretArn, event.ResourceProperties.MonitorSecretArn].map((arn) => loadDbCredentials(arn, secrets)));
  const client = await connectAsMaster(target, secrets);
  try {
    const applied = await applyLoginRoles(
      client,
      [
        { name: agent!.username, password: agent!.password, memberOf: AGENT_ROLE_MEMBER_OF },
        { name: monitor!.username, password: monitor!.password, memberOf: MONITOR_ROLE_MEMBER_OF },
      ],
      { role: agent!.username, tables },
    );
    const epochs = await initLineage(client, { nodeId: target.primaryInstanceId, rootId: randomUUID() });
    await grantLineageToAgent(client, agent!.username);
    await grantLineageToMonitor(client, monitor!.username);
    const list = (tables: readonly string[]) => (tables.length === 0 ? 'none' : tables.join(','));
    return {
      PhysicalResourceId: physicalResourceId,
      Data: {
        Roles: applied.roles.join(','),
        GrantedTables: list(applied.granted),
        MissingTables: list(applied.missing),
        NotGrantedTables: list(applied.notGranted),
        LineageEpochs: String(epochs.length),
      },
    };
  } finally {
    await client.end();
  }
}

/**
 * A session of the master user. The master secret may be mid-rotation (its first rotation starts right after the
 * stack creates it): a refused password is retried with the secret read again.
 */
async function connectAsMaster(target: DatabaseRolesTarget, secrets: SecretsManagerClient): Promise<pg.Client> {
  const attempts = 6;
  for (let attempt = 1; ; attempt++) {
    const master = await loadDbCredentials(target.masterSecretArn, secrets);
    const client = new pg.Client({
      host: target.host,
      port: target.port,
      database: target.database,
      user: master.username,
      password: master.password,
      ssl: target.ssl,
      connectionTimeoutMillis: 10_000,
      application_name: 'rds-failover-database-roles',
    });
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => undefined);
      if ((error as { code?: unknown }).code !== '28P01' || attempt === attempts) throw error; // invalid_password
      await sleep(target.retryDelayMs ?? 10_000);
    }
  }
}

function parseTables(json: string): TableGrant[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new Error('Tables: expected a JSON array of {"table": ..., "keyColumns": [...]}');
  }
  if (!Array.isArray(value)) throw new Error('Tables: expected a JSON array of {"table": ..., "keyColumns": [...]}');
  return value.map((t: { table?: unknown; keyColumns?: unknown }, i) => {
    if (typeof t?.table !== 'string' || !Array.isArray(t.keyColumns) || t.keyColumns.length === 0 || !t.keyColumns.every((c) => typeof c === 'string')) {
      throw new Error(`Tables[${i}]: expected {"table": "schema.table", "keyColumns": ["id", ...]}`);
    }
    return { table: t.table, keyColumns: t.keyColumns as string[] };
  });
}
