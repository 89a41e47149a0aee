/**
 * The RDS-compatible write fence (src/pg/fence.ts) on real PostgreSQL, run as a NON-superuser role shaped like
 * the RDS master user (CREATEDB, CREATEROLE, pg_signal_backend, pg_monitor, owner of the app database).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLsn, isLsn } from '../../src/core/lsn.js';
import { clearDatabaseWriteFence, fenceDatabaseWrites, PgWriteFencer, writeFencedDatabases } from '../../src/pg/fence.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';
import { LocalCluster } from '../../src/local/local-cluster.js';

let cluster: LocalCluster;
const MASTER = { user: 'rds_master', password: 'master-pw' };
const APP = { user: 'app_user', password: 'app-pw' };

function config(nodeId: string, who: { user: string; password: string }, database = 'app'): pg.ClientConfig {
  return { ...cluster.clientConfig(nodeId, database), ...who };
}

async function connect(nodeId: string, who: { user: string; password: string }, database = 'app'): Promise<pg.Client> {
  const c = new pg.Client(config(nodeId, who, database));
  c.on('error', () => undefined);
  await c.connect();
  return c;
}

async function insertAs(nodeId: string, id: number): Promise<void> {
  const c = await connect(nodeId, APP);
  try {
    await c.query('INSERT INTO t (id) VALUES ($1)', [id]);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  cluster = await LocalCluster.start({ replicas: 1 });
  const su = new pg.Client(cluster.clientConfig('pg-0'));
  await su.connect();
  await su.query(`CREATE ROLE rds_master LOGIN PASSWORD '${MASTER.password}' CREATEDB CREATEROLE`);
  await su.query('GRANT pg_signal_backend, pg_monitor TO rds_master');
  await su.query(`CREATE ROLE app_user LOGIN PASSWORD '${APP.password}'`);
  await su.query('CREATE DATABASE app OWNER rds_master');
  await su.end();
  const master = await connect('pg-0', MASTER);
  await master.query('CREATE TABLE t (id int PRIMARY KEY)');
  await master.query('GRANT SELECT, INSERT ON t TO app_user');
  await master.end();
  await insertAs('pg-0', 1);
});

afterAll(async () => {
  await cluster?.stop();
});

describe('fenceDatabaseWrites without superuser', () => {
  it('makes new sessions read-only, terminates open ones (their uncommitted writes never land) and returns the final LSN', async () => {
    const idle = await connect('pg-0', APP);
    const inTx = await connect('pg-0', APP);
    await inTx.query('BEGIN');
    await inTx.query('INSERT INTO t (id) VALUES (2)');
    const master = await connect('pg-0', MASTER);
    const before = (await master.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;

    const fenced = await fenceDatabaseWrites(master);
    await master.end();

    expect(fenced.wasPrimary).toBe(true);
    expect(fenced.fencedDatabases).toEqual(['app']);
    expect(fenced.failures).toEqual([]);
    // postgres is owned by the superuser here (rdsadmin-like): left alone and reported, not a failure.
    expect(fenced.skipped).toEqual(['postgres']);
    expect(fenced.sessionsTerminated).toBe(2);
    expect(isLsn(fenced.lsn)).toBe(true);
    expect(compareLsn(fenced.lsn, before)).toBeGreaterThan(0);

    await expect(inTx.query('COMMIT')).rejects.toThrow();
    await expect(idle.query('SELECT 1')).rejects.toThrow();
    await idle.end().catch(() => undefined);
    await inTx.end().catch(() => undefined);

    await expect(insertAs('pg-0', 3)).rejects.toThrow('cannot execute INSERT in a read-only transaction');
    const reader = await connect('pg-0', APP);
    expect((await reader.query('SELECT id FROM t ORDER BY id')).rows).toEqual([{ id: 1 }]);
    await reader.end();

    const probe = await new PgDatabaseProbe(() => config('pg-0', MASTER)).probe('pg-0');
    expect(probe.reachable && probe.acceptsWrites).toBe(false);
  });

  it('the fence is WAL-logged: the replica inherits it; after promotion clearDatabaseWriteFence makes it writable', async () => {
    const lsn = (await (async () => {
      const m = await connect('pg-0', MASTER);
      try {
        return (await m.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]!.lsn;
      } finally {
        await m.end();
      }
    })());
    await cluster.waitForReplay('pg-1', lsn);

    // On a standby the fence is a no-op that reports the replay position.
    const standby = await connect('pg-1', MASTER);
    const onStandby = await fenceDatabaseWrites(standby);
    await standby.end();
    expect(onStandby).toMatchObject({ wasPrimary: false, fencedDatabases: [], sessionsTerminated: 0 });

    await cluster.promote('pg-1');
    await expect(insertAs('pg-1', 10)).rejects.toThrow('cannot execute INSERT in a read-only transaction');

    const fencer = new PgWriteFencer(async (id) => config(id, MASTER));
    const master = await connect('pg-1', MASTER);
    expect(await writeFencedDatabases(master)).toEqual(['app']);
    await master.end();
    expect(await fencer.clear('pg-1')).toEqual(['app']);
    await insertAs('pg-1', 10);
    const probe = await new PgDatabaseProbe(() => config('pg-1', MASTER)).probe('pg-1');
    expect(probe.reachable && probe.acceptsWrites).toBe(true);
    // Clearing again finds nothing to clear.
    const again = await connect('pg-1', MASTER);
    expect(await clearDatabaseWriteFence(again)).toEqual([]);
    await again.end();
  });

  it('unfencing the old primary gives it its writes back (failed switchover)', async () => {
    const fencer = new PgWriteFencer(async (id) => config(id, MASTER));
    expect(await fencer.clear('pg-0')).toEqual(['app']);
    await insertAs('pg-0', 4);
  });

  it('fencing again (a re-run) works from a session that starts read-only', async () => {
    const fencer = new PgWriteFencer(async (id) => config(id, MASTER));
    const first = await fencer.fence('pg-0');
    const second = await fencer.fence('pg-0');
    expect('unreachable' in first || first.fencedDatabases).toEqual(['app']);
    expect('unreachable' in second || second.failures).toEqual([]);
    await expect(insertAs('pg-0', 5)).rejects.toThrow('cannot execute INSERT in a read-only transaction');
    expect(await fencer.clear('pg-0')).toEqual(['app']);
    await insertAs('pg-0', 5);
  });

  it('an explicit database the role cannot alter is a failure, and an unreachable node says so', async () => {
    const master = await connect('pg-0', MASTER);
    const result = await fenceDatabaseWrites(master, { databases: ['app', 'postgres'] });
    await master.end();
    expect(result.fencedDatabases).toEqual(['app']);
    expect(result.failures).toEqual(['postgres: must be owner of database postgres']);
    const fencer = new PgWriteFencer(async () => ({ host: '127.0.0.1', port: 1, user: 'x', password: 'y', database: 'app' }), { connectTimeoutMs: 500 });
    const unreachable = await fencer.fence('nowhere');
    expect('unreachable' in unreachable && unreachable.unreachable).toMatch(/ECONNREFUSED/);
    await new PgWriteFencer(async (id) => config(id, MASTER)).clear('pg-0');
  });
});
