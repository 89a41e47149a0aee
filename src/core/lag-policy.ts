/**
 * Replication lag policy: from one round of probes (every node of the cluster, probed at the same time),
 * work out which node is the primary, how far behind each replica is in seconds and in bytes, and which
 * state that lag means.
 *
 * Idle primary. `now() - pg_last_xact_replay_timestamp()` keeps growing on a replica when nothing is
 * written, although the replica is fully caught up. So the timestamp is never the first source:
 *  1. bytes = primary's pg_current_wal_lsn() - replica's pg_last_wal_replay_lsn() (from the replica itself,
 *     which is exact; pg_stat_replication's replay_lsn is only as fresh as the standby's last status message).
 *  2. bytes <= 0: the replica replayed everything the primary has: lag is 0 s whatever the timestamp says.
 *  3. bytes > 0: seconds = pg_stat_replication.replay_lag (the walsender measures it from when the WAL was
 *     flushed on the primary, so an idle period before a burst does not inflate it, and it keeps growing while
 *     replay is stuck); only when the primary has no figure for that standby, the replay timestamp age.
 */
import { lsnDiff } from './lsn.js';
import type { HealthLevel } from './health-level.js';
import type { LagThresholds } from './monitor-config.js';
import type { NodeProbe, ReachableProbe, ReplicationPeer } from '../ports/database-probe.js';

export interface MonitoredNode {
  readonly id: string;
  /** application_name the node has in the primary's pg_stat_replication; defaults to id. */
  readonly replicationName?: string;
}

export type LagSecondsSource = 'caught-up' | 'walsender' | 'replay-timestamp' | 'unknown';

export interface ReplicaLag {
  readonly nodeId: string;
  readonly reachable: boolean;
  /** Why the node could not be read. */
  readonly error?: string;
  /**
   * Seen in the primary's pg_stat_replication. null when it cannot be told: no primary, or standbys connect
   * under a name that is not configured (e.g. every standby reports the same application_name).
   */
  readonly streaming: boolean | null;
  /** pg_stat_replication.state (streaming, catchup, ...), when the standby was found there. */
  readonly walSenderState: string | null;
  readonly replayPaused: boolean;
  readonly lagSeconds: number | null;
  readonly lagBytes: number | null;
  readonly secondsSource: LagSecondsSource;
}

export type ClusterFinding =
  | { readonly kind: 'ok'; readonly primaryId: string }
  | { readonly kind: 'no-primary'; readonly unreachable: readonly string[] }
  | { readonly kind: 'split-brain'; readonly writable: readonly string[] };

export interface ClusterLagView {
  /** The one reachable node out of recovery; null when there is none or more than one. */
  readonly primaryId: string | null;
  readonly finding: ClusterFinding;
  /** Every node but the primary, in the order of `nodes`. */
  readonly replicas: readonly ReplicaLag[];
}

/** Combines one probe per node into the lag of every replica. `probes` must hold one probe per node id. */
export function measureCluster(nodes: readonly MonitoredNode[], probes: readonly NodeProbe[]): ClusterLagView {
  const byId = new Map(probes.map((p) => [p.nodeId, p]));
  const missing = nodes.filter((n) => !byId.has(n.id)).map((n) => n.id);
  if (missing.length > 0) throw new Error(`measureCluster: no probe for node(s) ${missing.join(', ')}`);

  const writable = nodes.map((n) => byId.get(n.id)!).filter((p): p is ReachableProbe => p.reachable && !p.inRecovery);
  const primary = writable.length === 1 ? writable[0]! : null;
  const finding: ClusterFinding = primary
    ? { kind: 'ok', primaryId: primary.nodeId }
    : writable.length > 1
      ? { kind: 'split-brain', writable: writable.map((p) => p.nodeId) }
      : { kind: 'no-primary', unreachable: probes.filter((p) => !p.reachable).map((p) => p.nodeId) };

  const replicaNodes = nodes.filter((n) => n.id !== primary?.nodeId);
  const peers = primary ? matchPeers(replicaNodes, primary.replication) : new Map<string, PeerMatch>();
  const replicas = replicaNodes.map((node) => replicaLag(node, byId.get(node.id)!, primary, peers.get(node.id) ?? { streaming: null }));
  return { primaryId: primary?.nodeId ?? null, finding, replicas };
}

type PeerMatch = { readonly streaming: true; readonly peer: ReplicationPeer } | { readonly streaming: boolean | null; readonly peer?: undefined };

/**
 * Pairs replicas with pg_stat_replication rows by application_name. A replica with no row is reported as
 * not streaming only when no unmatched row is left that could be it; otherwise whether it streams is unknown.
 */
function matchPeers(replicas: readonly MonitoredNode[], rows: readonly ReplicationPeer[]): Map<string, PeerMatch> {
  const result = new Map<string, PeerMatch>();
  const used = new Set<ReplicationPeer>();
  for (const node of replicas) {
    const name = node.replicationName ?? node.id;
    const row = rows.find((r) => r.applicationName === name && !used.has(r));
    if (row) {
      used.add(row);
      result.set(node.id, { streaming: true, peer: row });
    }
  }
  const unmatchedRows = rows.filter((r) => !used.has(r)).length;
  for (const node of replicas) {
    if (!result.has(node.id)) result.set(node.id, { streaming: unmatchedRows > 0 ? null : false });
  }
  return result;
}

function replicaLag(node: MonitoredNode, probe: NodeProbe, primary: ReachableProbe | null, match: PeerMatch): ReplicaLag {
  const peer = match.peer;
  const base = {
    nodeId: node.id,
    streaming: primary ? match.streaming : null,
    walSenderState: peer?.state ?? null,
  };
  if (!probe.reachable) {
    // The standby cannot be read, but the primary may still tell how far behind it is.
    const lagBytes = peer?.replayLagBytes ?? null;
    return { ...base, reachable: false, error: probe.error, replayPaused: false, ...seconds(lagBytes, peer, null) };
  }
  const lagBytes = bytesBehind(probe, primary, peer);
  return { ...base, reachable: true, replayPaused: probe.replayPaused, ...seconds(lagBytes, peer, probe.lastReplayAgeSeconds) };
}

function bytesBehind(replica: ReachableProbe, primary: ReachableProbe | null, peer: ReplicationPeer | undefined): number | null {
  if (primary?.currentLsn && replica.replayLsn) return Math.max(0, lsnDiff(primary.currentLsn, replica.replayLsn));
  return peer?.replayLagBytes ?? null;
}

function seconds(
  lagBytes: number | null,
  peer: ReplicationPeer | undefined,
  replayAgeSeconds: number | null,
): { lagBytes: number | null; lagSeconds: number | null; secondsSource: LagSecondsSource } {
  if (lagBytes === null) return { lagBytes, lagSeconds: null, secondsSource: 'unknown' };
  const bytes = Math.max(0, lagBytes);
  if (bytes === 0) return { lagBytes: 0, lagSeconds: 0, secondsSource: 'caught-up' };
  if (peer?.replayLagSeconds != null) return { lagBytes: bytes, lagSeconds: Math.max(0, peer.replayLagSeconds), secondsSource: 'walsender' };
  if (replayAgeSeconds !== null) return { lagBytes: bytes, lagSeconds: Math.max(0, replayAgeSeconds), secondsSource: 'replay-timestamp' };
  return { lagBytes: bytes, lagSeconds: null, secondsSource: 'unknown' };
}

/**
 * The state one sample shows for a replica, given its confirmed state (`current`): threshold hysteresis
 * keeps a CRIT replica CRIT until its lag is below the WARN thresholds. null = no evidence either way.
 */
export function classifyReplica(lag: ReplicaLag, current: HealthLevel, t: LagThresholds): HealthLevel | null {
  if (!lag.reachable) return 'UNREACHABLE';
  if (lag.streaming === false) return 'BROKEN';
  if (lag.lagBytes === null && lag.lagSeconds === null) return null;
  const atLeast = (value: number | null, threshold: number) => value !== null && value >= threshold;
  const warn = atLeast(lag.lagSeconds, t.warnSeconds) || atLeast(lag.lagBytes, t.warnBytes);
  const crit = atLeast(lag.lagSeconds, t.critSeconds) || atLeast(lag.lagBytes, t.critBytes);
  if (crit || (current === 'CRIT' && warn)) return 'CRIT';
  return warn ? 'WARN' : 'OK';
}

/** The cluster-level state: no writable primary or more than one is critical. */
export function classifyCluster(finding: ClusterFinding): HealthLevel {
  return finding.kind === 'ok' ? 'OK' : finding.kind === 'split-brain' ? 'CRIT' : 'UNREACHABLE';
}
