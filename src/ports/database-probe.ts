import type { Lsn } from '../core/lsn.js';

/** One row of pg_stat_replication on a primary: a standby streaming from it. */
export interface ReplicationPeer {
  /** application_name the standby connected with (the local cluster uses the node id). */
  readonly applicationName: string;
  readonly clientAddr: string | null;
  /** pg_stat_replication.state: streaming, catchup, startup, backup, stopping. */
  readonly state: string;
  readonly sentLsn: Lsn | null;
  readonly writeLsn: Lsn | null;
  readonly flushLsn: Lsn | null;
  readonly replayLsn: Lsn | null;
  readonly writeLagSeconds: number | null;
  readonly flushLagSeconds: number | null;
  readonly replayLagSeconds: number | null;
  /** pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn). */
  readonly replayLagBytes: number | null;
  readonly syncState: string;
}

interface ProbeBase {
  readonly nodeId: string;
  /** ISO-8601 time the sample was taken (the prober's clock). */
  readonly sampledAt: string;
}

export interface UnreachableProbe extends ProbeBase {
  readonly reachable: false;
  /** Why the node could not be read (connection refused, timeout, auth...). */
  readonly error: string;
}

export interface ReachableProbe extends ProbeBase {
  readonly reachable: true;
  /** pg_is_in_recovery(): true on a standby. */
  readonly inRecovery: boolean;
  readonly timelineId: number;
  /** pg_current_wal_lsn() on a primary; null on a standby. */
  readonly currentLsn: Lsn | null;
  /** pg_last_wal_receive_lsn() on a standby; null on a primary. */
  readonly receiveLsn: Lsn | null;
  /** pg_last_wal_replay_lsn() on a standby; null on a primary. */
  readonly replayLsn: Lsn | null;
  /** pg_is_wal_replay_paused() on a standby; false on a primary. */
  readonly replayPaused: boolean;
  /** now() - pg_last_xact_replay_timestamp() in seconds on a standby; null on a primary or before any replay. */
  readonly lastReplayAgeSeconds: number | null;
  /** Not in recovery and not default_transaction_read_only: a write would be accepted. */
  readonly acceptsWrites: boolean;
  /** pg_stat_replication rows (empty on a standby without cascading replicas). */
  readonly replication: readonly ReplicationPeer[];
}

export type NodeProbe = ReachableProbe | UnreachableProbe;

/** Reads one database node's replication state. Never throws for an unreachable node: it says so. */
export interface DatabaseProbe {
  probe(nodeId: string): Promise<NodeProbe>;
}
