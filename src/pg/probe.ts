import pg from 'pg';
import { systemClock, type Clock } from '../ports/clock.js';
import type { DatabaseProbe, NodeProbe, ReplicationPeer } from '../ports/database-probe.js';
import type { NodeSessions } from './node-sessions.js';
import { NODE_STATE_SQL, REPLICATION_PEERS_SQL, type NodeStateRow, type ReplicationPeerRow } from './replication-queries.js';

export interface PgDatabaseProbeOptions {
  /** Give up connecting after this long. @default 3000 */
  connectTimeoutMs?: number;
  /** statement_timeout for the probe's queries (server side; also enforced client side). @default 3000 */
  statementTimeoutMs?: number;
  /** Source of `sampledAt`. @default systemClock */
  clock?: Clock;
  /** Within a runbook action, a probe's session is kept there for the action's other queries to that node. */
  sessions?: NodeSessions;
}

/**
 * DatabaseProbe over `pg`: one short connection per probe (kept until the end of the runbook action when given
 * `sessions`), two read-only queries, never throws.
 * Needs only pg_monitor (RDS: rds_superuser has it): no superuser-only function is called.
 */
export class PgDatabaseProbe implements DatabaseProbe {
  private readonly connectTimeoutMs: number;
  private readonly statementTimeoutMs: number;
  private readonly clock: Clock;
  private readonly sessions: NodeSessions | undefined;

  constructor(
    private readonly resolve: (nodeId: string) => pg.ClientConfig,
    options: PgDatabaseProbeOptions = {},
  ) {
    this.connectTimeoutMs = positive(options.connectTimeoutMs ?? 3_000, 'connectTimeoutMs');
    this.statementTimeoutMs = positive(options.statementTimeoutMs ?? 3_000, 'statementTimeoutMs');
    this.clock = options.clock ?? systemClock;
    this.sessions = options.sessions;
  }

  async probe(nodeId: string): Promise<NodeProbe> {
    const sampledAt = new Date(this.clock.now()).toISOString();
    let client: pg.Client | undefined;
    try {
      const config = this.resolve(nodeId);
      client = new pg.Client({
        ...config,
        application_name: config.application_name ?? 'rds-failover-probe',
        connectionTimeoutMillis: this.connectTimeoutMs,
        statement_timeout: this.statementTimeoutMs,
        query_timeout: this.statementTimeoutMs + 1_000,
      });
      // A dropped connection after connect() surfaces here; the failed query reports it.
      client.on('error', () => undefined);
      await client.connect();
      const state = (await client.query<NodeStateRow>(NODE_STATE_SQL)).rows[0]!;
      const peers = (await client.query<ReplicationPeerRow>(REPLICATION_PEERS_SQL)).rows;
      if (this.sessions?.keep(nodeId, client)) client = undefined;
      return {
        nodeId,
        sampledAt,
        reachable: true,
        inRecovery: state.in_recovery,
        timelineId: state.timeline_id,
        currentLsn: state.current_lsn,
        receiveLsn: state.receive_lsn,
        replayLsn: state.replay_lsn,
        replayPaused: state.replay_paused,
        lastReplayAgeSeconds: state.last_replay_age,
        acceptsWrites: !state.in_recovery && state.default_read_only !== 'on',
        replication: peers.map(toPeer),
      };
    } catch (error) {
      return { nodeId, sampledAt, reachable: false, error: describe(error) };
    } finally {
      await client?.end().catch(() => undefined);
    }
  }
}

function toPeer(row: ReplicationPeerRow): ReplicationPeer {
  return {
    applicationName: row.application_name,
    clientAddr: row.client_addr,
    state: row.state,
    sentLsn: row.sent_lsn,
    writeLsn: row.write_lsn,
    flushLsn: row.flush_lsn,
    replayLsn: row.replay_lsn,
    writeLagSeconds: row.write_lag,
    flushLagSeconds: row.flush_lag,
    replayLagSeconds: row.replay_lag,
    replayLagBytes: row.replay_lag_bytes,
    syncState: row.sync_state,
  };
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    return code && !error.message.includes(code) ? `${error.message} (${code})` : error.message;
  }
  return String(error);
}

function positive(value: number, field: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${field} must be a positive number of milliseconds, got ${value}`);
  return value;
}
