import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Lsn } from '../core/lsn.js';

export interface WritesFenced {
  readonly sessionsTerminated: number;
  /** pg_current_wal_lsn() after the last client session was gone: every commit the node acknowledged is at or below it. */
  readonly lsn: Lsn;
}

const RELOAD_TIMEOUT_MS = 5_000;
/** pg_terminate_backend(pid, timeout) waits this long for each session to be gone (PostgreSQL 14+). */
const TERMINATE_WAIT_MS = 5_000;

/**
 * Stop a self-managed primary from accepting writes, over an open superuser connection:
 * default_transaction_read_only=on (ALTER SYSTEM + reload, so it survives a restart), wait until the
 * reload took effect, then terminate every other client session (an open transaction would otherwise
 * still commit; replication connections are not client backends and keep streaming).
 * Not for RDS: ALTER SYSTEM is refused there (see fence.ts for the RDS way). Unlike ALTER DATABASE, ALTER SYSTEM
 * is not WAL-logged, so the replicas (and the node promoted from them) do not inherit the read-only setting.
 */
export async function fenceWritesSystemWide(client: pg.Client): Promise<WritesFenced> {
  await client.query('ALTER SYSTEM SET default_transaction_read_only = on');
  await reloadAndWait(client, 'on');
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n
       FROM (SELECT pg_terminate_backend(pid, ${TERMINATE_WAIT_MS}) AS gone
               FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) t
      WHERE gone`,
  );
  const lsn = await client.query<{ lsn: Lsn }>('SELECT pg_current_wal_lsn()::text AS lsn');
  return { sessionsTerminated: rows[0]!.n, lsn: lsn.rows[0]!.lsn };
}

/** Undo fenceWritesSystemWide (a switchover that failed before promotion gives the primary its writes back). */
export async function unfenceWritesSystemWide(client: pg.Client): Promise<void> {
  await client.query('ALTER SYSTEM RESET default_transaction_read_only');
  await reloadAndWait(client, 'off');
}

/**
 * pg_reload_conf() only signals the postmaster; our own session re-reads the configuration at its next
 * command after the postmaster did, so once it shows the new value every later session will too.
 */
async function reloadAndWait(client: pg.Client, expected: 'on' | 'off'): Promise<void> {
  await client.query('SELECT pg_reload_conf()');
  const deadline = Date.now() + RELOAD_TIMEOUT_MS;
  for (;;) {
    const { rows } = await client.query<{ value: string }>("SELECT current_setting('default_transaction_read_only') AS value");
    if (rows[0]!.value === expected) return;
    if (Date.now() > deadline) throw new Error(`default_transaction_read_only still '${rows[0]!.value}' ${RELOAD_TIMEOUT_MS} ms after pg_reload_conf()`);
    await sleep(10);
  }
}
