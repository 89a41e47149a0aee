import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onDatabaseRolesEvent } from '../../src/aws/database-roles-resource.js';
import { applyLoginRoles, type LoginRole } from '../../src/pg/database-roles.js';
import { confirmEpoch, readConfirmations, readLineage } from '../../src/pg/lineage.js';
import { scramSha256Verifier } from '../../src/pg/scram.js';
import { LocalCluster } from '../../src/local/local-cluster.js';

let cluster: LocalCluster;

/** A session as `user` (password auth), or the error it got. */
async function as<T>(user: string, password: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ ...cluster.clientConfig('pg-0'), user, password });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

const roles = (agentPassword: string): LoginRole[] => [
  { name: 'rds_failover_agent', password: agentPassword, memberOf: ['pg_read_all_stats'] },
  { name: 'rds_failover_monitor', password: 'monitor-pw-1', memberOf: ['pg_monitor'] },
];
const agent = {
  role: 'rds_failover_agent',
  tables: [
    { table: 'app.events', keyColumns: ['id'] },
    { table: 'pairs', keyColumns: ['a', 'b'] },
    { table: 'app.not_created_yet', keyColumns: ['id'] },
    { table: 'app_owned', keyColumns: ['id'] },
  ],
};

beforeAll(async () => {
  cluster = await LocalCluster.start({ replicas: 0 });
  // Like the RDS master user: not a superuser, CREATEROLE, may grant pg_monitor, owns the application's tables.
  const setup = new pg.Client(cluster.clientConfig('pg-0'));
  await setup.connect();
  await setup.query(`CREATE ROLE master LOGIN CREATEROLE PASSWORD 'master-pw';
    GRANT pg_monitor, pg_read_all_stats TO master WITH ADMIN OPTION;
    CREATE ROLE app_owner;
    GRANT CREATE ON DATABASE postgres TO master;
    GRANT CREATE ON SCHEMA public TO master;
    DROP SCHEMA rds_failover CASCADE`); // the local cluster's own lineage: on RDS the custom resource creates it, as the master
  await setup.end();
  await as('master', 'master-pw', (c) =>
    c.query(`CREATE SCHEMA app;
      CREATE TABLE app.events (id text PRIMARY KEY, body text NOT NULL);
      CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b));
      CREATE TABLE secrets (v text)`),
  );
  // A table the master does not own and may not grant on (another role created it).
  const other = new pg.Client(cluster.clientConfig('pg-0'));
  await other.connect();
  await other.query('CREATE TABLE app_owned (id text PRIMARY KEY); ALTER TABLE app_owned OWNER TO app_owner; GRANT SELECT ON app_owned TO master');
  await other.end();
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('applyLoginRoles (the stack\'s least-privilege roles, applied by the RDS master user)', () => {
  it('creates login roles that can do their job and nothing more, and reports tables not created yet', async () => {
    const applied = await as('master', 'master-pw', (c) => applyLoginRoles(c, roles('agent-pw-1'), agent));
    // app_owned: PostgreSQL only warns that no privileges were granted; the check after the GRANT reports it
    expect(applied).toEqual({ roles: ['rds_failover_agent', 'rds_failover_monitor'], granted: ['app.events', 'pairs'], missing: ['app.not_created_yet'], notGranted: ['app_owned'] });

    await as('rds_failover_agent', 'agent-pw-1', async (c) => {
      // what the sink runs: COPY, INSERT ... ON CONFLICT on the key, the marker; and what prune reads
      await c.query(`INSERT INTO app.events (id, body) VALUES ('a', 'x') ON CONFLICT (id) DO NOTHING`);
      await c.query(`INSERT INTO app.events (id, body) VALUES ('a', 'y') ON CONFLICT (id) DO NOTHING`);
      await c.query(`INSERT INTO pairs (a, b, v) SELECT a, b, v FROM json_populate_recordset(NULL::pairs, '[{"a":1,"b":2,"v":"z"}]') ON CONFLICT (a, b) DO NOTHING`);
      await c.query('SELECT pg_current_wal_insert_lsn(), pg_walfile_name(pg_current_wal_insert_lsn())');
      expect((await c.query("SELECT pg_has_role('pg_read_all_stats', 'USAGE') AS m")).rows[0].m).toBe(true);
      await c.query('SELECT application_name, replay_lsn FROM pg_stat_replication');
      await expect(c.query('SELECT body FROM app.events')).rejects.toThrow(/permission denied/);
      await expect(c.query('SELECT * FROM secrets')).rejects.toThrow(/permission denied/);
      await expect(c.query('DELETE FROM app.events')).rejects.toThrow(/permission denied/);
      await expect(c.query('CREATE TABLE mine (x int)')).rejects.toThrow(/permission denied/);
      await expect(c.query('CREATE ROLE other')).rejects.toThrow(/permission denied/);
    });
    await as('rds_failover_monitor', 'monitor-pw-1', async (c) => {
      await c.query('SELECT application_name, replay_lsn, replay_lag FROM pg_stat_replication');
      await expect(c.query(`INSERT INTO app.events (id, body) VALUES ('m', 'x')`)).rejects.toThrow(/permission denied/);
    });
  });

  it('sends PostgreSQL only a SCRAM verifier, never the password (stored as it is; the password logs in)', async () => {
    const superuser = new pg.Client(cluster.clientConfig('pg-0'));
    await superuser.connect();
    const { rows: stored } = await superuser.query<{ rolpassword: string }>("SELECT rolpassword FROM pg_authid WHERE rolname = 'rds_failover_agent'");
    await superuser.end();
    expect(stored[0]!.rolpassword).toMatch(/^SCRAM-SHA-256\$4096:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/);
    expect(stored[0]!.rolpassword).not.toContain('agent-pw-1');
    // the same verifier computed here for a known salt is what PostgreSQL would check a login against
    const salt = Buffer.from(stored[0]!.rolpassword.split('$')[1]!.split(':')[1]!, 'base64');
    expect(scramSha256Verifier('agent-pw-1', salt)).toBe(stored[0]!.rolpassword);
  });

  it('is idempotent and follows a rotated password (a re-run sets what the secret holds now)', async () => {
    await as('master', 'master-pw', (c) => applyLoginRoles(c, roles('agent-pw-1'), agent));
    await as('master', 'master-pw', (c) => applyLoginRoles(c, roles('agent-pw-2'), agent));
    await expect(as('rds_failover_agent', 'agent-pw-1', (c) => c.query('SELECT 1'))).rejects.toThrow(/password authentication failed/);
    expect((await as('rds_failover_agent', 'agent-pw-2', (c) => c.query('SELECT 1 AS one'))).rows[0].one).toBe(1);
  });

  it('grants a table once it exists', async () => {
    await as('master', 'master-pw', (c) => c.query('CREATE TABLE app.not_created_yet (id text PRIMARY KEY)'));
    const applied = await as('master', 'master-pw', (c) => applyLoginRoles(c, roles('agent-pw-2'), agent));
    expect(applied.missing).toEqual([]);
    await as('rds_failover_agent', 'agent-pw-2', (c) => c.query(`INSERT INTO app.not_created_yet VALUES ('n') ON CONFLICT (id) DO NOTHING`));
  });
});

describe('the database-roles custom resource (Secrets Manager stood in, PostgreSQL real)', () => {
  const secrets = mockClient(SecretsManagerClient);
  const secretValues: Record<string, object> = {
    'arn:master': { username: 'master', password: 'master-pw', engine: 'postgres' },
    'arn:agent': { username: 'orders_agent', password: 'agent-secret-pw' },
    'arn:monitor': { username: 'orders_monitor', password: 'monitor-secret-pw' },
  };
  const target = () => ({
    masterSecretArn: 'arn:master',
    host: '127.0.0.1',
    port: Number(cluster.clientConfig('pg-0').port),
    database: 'postgres',
    primaryInstanceId: 'orders-a',
    ssl: false as const,
  });
  const properties = { AgentSecretArn: 'arn:agent', MonitorSecretArn: 'arn:monitor', Tables: JSON.stringify([{ table: 'app.events', keyColumns: ['id'] }, { table: 'later', keyColumns: ['id'] }]) };

  it('Create applies the roles the secrets name, with their passwords, and reports tables still missing', async () => {
    secrets.reset();
    secrets.on(GetSecretValueCommand).callsFake(({ SecretId }: { SecretId: string }) => ({ SecretString: JSON.stringify(secretValues[SecretId]) }));
    const result = await onDatabaseRolesEvent({ RequestType: 'Create', ResourceProperties: properties }, target(), new SecretsManagerClient({}));
    expect(result).toEqual({
      PhysicalResourceId: 'rds-failover-roles-postgres',
      Data: { Roles: 'orders_agent,orders_monitor', GrantedTables: 'app.events', MissingTables: 'later', NotGrantedTables: 'none', LineageEpochs: '1' },
    });
    expect(secrets.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input.SecretId).sort()).toEqual(['arn:agent', 'arn:master', 'arn:monitor']);
    await as('orders_agent', 'agent-secret-pw', (c) => c.query(`INSERT INTO app.events (id, body) VALUES ('cr', 'x') ON CONFLICT (id) DO NOTHING`));
    await as('orders_monitor', 'monitor-secret-pw', (c) => c.query('SELECT replay_lsn FROM pg_stat_replication'));

    // The lineage: the primary's root epoch, owned by the master (who records the epochs of later promotions).
    const [root] = (await as('master', 'master-pw', (c) => readLineage(c)))!;
    expect(root).toMatchObject({ parentId: null, generation: 1, forkLsn: null, timelineId: 1, nodeId: 'orders-a', executionId: null });
    await as('orders_agent', 'agent-secret-pw', async (c) => {
      // what the agent does with it: read it, confirm an epoch (twice: an upsert), nothing else
      expect((await readLineage(c))!.map((e) => e.id)).toEqual([root!.id]);
      await confirmEpoch(c, 'i-0abc', root!.id, 12);
      await confirmEpoch(c, 'i-0abc', root!.id, 13);
      await expect(c.query(`INSERT INTO rds_failover.lineage (epoch, generation, timeline_id, node_id) VALUES (gen_random_uuid(), 9, 1, 'x')`)).rejects.toThrow(/permission denied/);
      await expect(c.query('DELETE FROM rds_failover.worker_epochs')).rejects.toThrow(/permission denied/);
    });
    await as('orders_monitor', 'monitor-secret-pw', async (c) => {
      expect((await readConfirmations(c)).map((w) => [w.workerId, w.rowsResent])).toEqual([['i-0abc', 13]]);
      await expect(confirmEpoch(c, 'i-0abc', root!.id, 1)).rejects.toThrow(/permission denied/);
    });
  });

  it('a master secret caught mid-rotation (password refused) is read again until it works', async () => {
    secrets.reset();
    let masterReads = 0;
    secrets.on(GetSecretValueCommand).callsFake(({ SecretId }: { SecretId: string }) => {
      if (SecretId === 'arn:master' && (masterReads += 1) <= 2) return { SecretString: JSON.stringify({ username: 'master', password: 'the-old-one' }) };
      return { SecretString: JSON.stringify(secretValues[SecretId]) };
    });
    const result = await onDatabaseRolesEvent({ RequestType: 'Update', PhysicalResourceId: 'p-1', ResourceProperties: properties }, { ...target(), retryDelayMs: 10 }, new SecretsManagerClient({}));
    expect(result.Data?.Roles).toBe('orders_agent,orders_monitor');
    expect(result.Data?.LineageEpochs).toBe('1'); // kept as it was: never a second root
    expect(masterReads).toBe(3);
  });

  it('Delete changes nothing and reads no secret; a bad Tables property fails naming it, before any change', async () => {
    secrets.reset();
    expect(await onDatabaseRolesEvent({ RequestType: 'Delete', PhysicalResourceId: 'p-1', ResourceProperties: properties }, target(), new SecretsManagerClient({}))).toEqual({ PhysicalResourceId: 'p-1' });
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    for (const Tables of ['not json', '{"table":"x"}', '[{"table":"x","keyColumns":[]}]']) {
      await expect(onDatabaseRolesEvent({ RequestType: 'Update', ResourceProperties: { ...properties, Tables } }, target(), new SecretsManagerClient({}))).rejects.toThrow(/^Tables/);
    }
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});
