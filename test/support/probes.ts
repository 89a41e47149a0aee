/** Builders for topologies and probes in unit tests (runbook planner, lag policy). */
import type { ClusterNode, Topology } from '../../src/ports/cluster-control.js';
import type { NodeProbe, ReachableProbe, ReplicationPeer } from '../../src/ports/database-probe.js';

export function node(id: string, role: 'primary' | 'replica', extra: Partial<ClusterNode> = {}): ClusterNode {
  return { id, role, endpoint: `127.0.0.1:${5432 + Number(id.replace(/\D/g, '') || 0)}`, priority: 100, noFailover: false, ...extra };
}

export function topology(nodes: ClusterNode[], writerId = 'pg-0'): Topology {
  return { clusterId: 'c1', writerId, nodes };
}

const SAMPLED = '2024-01-01T00:00:00.000Z';

export function primaryProbe(id: string, currentLsn: string, extra: Partial<ReachableProbe> = {}): ReachableProbe {
  return {
    nodeId: id,
    sampledAt: SAMPLED,
    reachable: true,
    inRecovery: false,
    timelineId: 1,
    currentLsn,
    receiveLsn: null,
    replayLsn: null,
    replayPaused: false,
    lastReplayAgeSeconds: null,
    acceptsWrites: true,
    replication: [],
    ...extra,
  };
}

export function replicaProbe(id: string, replayLsn: string | null, extra: Partial<ReachableProbe> = {}): ReachableProbe {
  return {
    nodeId: id,
    sampledAt: SAMPLED,
    reachable: true,
    inRecovery: true,
    timelineId: 1,
    currentLsn: null,
    receiveLsn: replayLsn,
    replayLsn,
    replayPaused: false,
    lastReplayAgeSeconds: 0.1,
    acceptsWrites: false,
    replication: [],
    ...extra,
  };
}

export function down(id: string, error = 'connect ECONNREFUSED 127.0.0.1:5432'): NodeProbe {
  return { nodeId: id, sampledAt: SAMPLED, reachable: false, error };
}

export function streaming(applicationName: string, replayLsn: string): ReplicationPeer {
  return {
    applicationName,
    clientAddr: '127.0.0.1',
    state: 'streaming',
    sentLsn: replayLsn,
    writeLsn: replayLsn,
    flushLsn: replayLsn,
    replayLsn,
    writeLagSeconds: 0,
    flushLagSeconds: 0,
    replayLagSeconds: 0,
    replayLagBytes: 0,
    syncState: 'async',
  };
}
