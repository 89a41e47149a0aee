import type { Lsn } from '../core/lsn.js';

/**
 * Replication-state SQL that runs unchanged on RDS PostgreSQL 16 with a pg_monitor member (rds_superuser is one).
 * Avoided on purpose: pg_read_file / pg_ls_waldir (superuser or pg_read_server_files, not on RDS) and
 * pg_control_* for the current timeline on a primary (its checkpoint lags a promotion).
 * Functions that raise on the wrong role (pg_current_wal_lsn on a standby, pg_is_wal_replay_paused on a primary)
 * sit inside CASE so one query works on both.
 */

/**
 * Timeline of a primary: the first 8 hex digits of its current WAL file name. Exact right after a promotion,
 * unlike pg_control_checkpoint().timeline_id, which only moves at the next checkpoint.
 */
export const PRIMARY_TIMELINE_SQL = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int";

/**
 * Timeline of a standby: received_tli of its WAL receiver (needs pg_read_all_stats, part of pg_monitor),
 * else, while disconnected, the timeline of its last restartpoint from pg_control_checkpoint() (readable by
 * anyone; may trail a timeline switch it has not checkpointed yet). pg_walfile_name() cannot be used during recovery.
 */
export const STANDBY_TIMELINE_SQL =
  'COALESCE((SELECT NULLIF(received_tli, 0) FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))';

export interface NodeStateRow {
  in_recovery: boolean;
  timeline_id: number;
  current_lsn: Lsn | null;
  receive_lsn: Lsn | null;
  replay_lsn: Lsn | null;
  replay_paused: boolean;
  last_replay_age: number | null;
  default_read_only: string;
}

export const NODE_STATE_SQL = `
SELECT r.in_recovery,
       CASE WHEN r.in_recovery THEN ${STANDBY_TIMELINE_SQL} ELSE ${PRIMARY_TIMELINE_SQL} END AS timeline_id,
       CASE WHEN r.in_recovery THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN r.in_recovery THEN pg_last_wal_receive_lsn()::text END AS receive_lsn,
       CASE WHEN r.in_recovery THEN pg_last_wal_replay_lsn()::text END AS replay_lsn,
       CASE WHEN r.in_recovery THEN pg_is_wal_replay_paused() ELSE false END AS replay_paused,
       CASE WHEN r.in_recovery THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END AS last_replay_age,
       current_setting('default_transaction_read_only') AS default_read_only
FROM (SELECT pg_is_in_recovery() AS in_recovery) r`;

export interface ReplicationPeerRow {
  application_name: string;
  client_addr: string | null;
  state: string;
  sent_lsn: Lsn | null;
  write_lsn: Lsn | null;
  flush_lsn: Lsn | null;
  replay_lsn: Lsn | null;
  write_lag: number | null;
  flush_lag: number | null;
  replay_lag: number | null;
  replay_lag_bytes: number | null;
  sync_state: string;
}

/**
 * pg_stat_replication with lags in seconds and bytes (columns other than pid are NULL without
 * pg_read_all_stats). Byte lag is measured from this node's newest WAL: current on a primary, received on a
 * cascading standby.
 */
export const REPLICATION_PEERS_SQL = `
SELECT s.application_name,
       host(s.client_addr) AS client_addr,
       s.state,
       s.sent_lsn::text AS sent_lsn,
       s.write_lsn::text AS write_lsn,
       s.flush_lsn::text AS flush_lsn,
       s.replay_lsn::text AS replay_lsn,
       extract(epoch FROM s.write_lag)::float8 AS write_lag,
       extract(epoch FROM s.flush_lag)::float8 AS flush_lag,
       extract(epoch FROM s.replay_lag)::float8 AS replay_lag,
       pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, s.replay_lsn)::float8
         AS replay_lag_bytes,
       s.sync_state
FROM pg_stat_replication s
ORDER BY s.application_name`;
