import { describe, expect, it } from 'vitest';
import { classifyCluster, classifyReplica, measureCluster, type ReplicaLag } from '../../src/core/lag-policy.js';
import { advanceTracker, initialTracker, type HealthLevel, type LevelTracker } from '../../src/core/health-level.js';
import { classifyBacklog } from '../../src/core/backlog-policy.js';
import { DEFAULT_MONITOR_CONFIG, resolveMonitorConfig } from '../../src/core/monitor-config.js';
import type { ReachableProbe, ReplicationPeer, UnreachableProbe } from '../../src/ports/database-probe.js';
import { primaryProbe, replicaProbe } from '../support/probes.js';

const at = '2026-01-01T00:00:00.000Z';
const MiB = 1024 * 1024;
const thresholds = { warnSeconds: 30, critSeconds: 120, warnBytes: 16 * MiB, critBytes: 256 * MiB };

/** The shared probe builders, at this file's sample time (and a 0.5 s replay age on standbys). */
function primary(currentLsn: string, replication: ReplicationPeer[], nodeId = 'pg-0'): ReachableProbe {
  return primaryProbe(nodeId, currentLsn, { sampledAt: at, replication });
}

function standby(nodeId: string, replayLsn: string, extra: Partial<ReachableProbe> = {}): ReachableProbe {
  return replicaProbe(nodeId, replayLsn, { sampledAt: at, lastReplayAgeSeconds: 0.5, ...extra });
}

function peer(applicationName: string, extra: Partial<ReplicationPeer> = {}): ReplicationPeer {
  return {
    applicationName,
    clientAddr: '127.0.0.1',
    state: 'streaming',
    sentLsn: null,
    writeLsn: null,
    flushLsn: null,
    replayLsn: null,
    writeLagSeconds: null,
    flushLagSeconds: null,
    replayLagSeconds: null,
    replayLagBytes: null,
    syncState: 'async',
    ...extra,
  };
}

function unreachable(nodeId: string, error = 'connect ECONNREFUSED 127.0.0.1:5433'): UnreachableProbe {
  return { nodeId, sampledAt: at, reachable: false, error };
}

const nodes = [{ id: 'pg-0' }, { id: 'pg-1' }, { id: 'pg-2' }];

describe('measureCluster', () => {
  it('finds the primary from the probes and measures each replica in bytes from the LSNs and in seconds from the walsender', () => {
    const view = measureCluster(nodes, [
      primary('0/5000000', [peer('pg-1', { replayLagSeconds: 3.25 }), peer('pg-2', { replayLagSeconds: 0.002 })]),
      standby('pg-1', '0/4000000'),
      standby('pg-2', '0/5000000'),
    ]);
    expect(view.primaryId).toBe('pg-0');
    expect(view.finding).toEqual({ kind: 'ok', primaryId: 'pg-0' });
    expect(view.replicas).toEqual([
      { nodeId: 'pg-1', reachable: true, streaming: true, walSenderState: 'streaming', replayPaused: false, lagBytes: 0x1000000, lagSeconds: 3.25, secondsSource: 'walsender' },
      { nodeId: 'pg-2', reachable: true, streaming: true, walSenderState: 'streaming', replayPaused: false, lagBytes: 0, lagSeconds: 0, secondsSource: 'caught-up' },
    ]);
  });

  it('does not read an idle primary as lag: a caught-up replica is 0 s behind however old its last replayed transaction is', () => {
    const view = measureCluster(nodes.slice(0, 2), [
      // The walsender still shows the last measured lag for a while; the replay timestamp is an hour old.
      primary('0/3000148', [peer('pg-1', { replayLagSeconds: 0.8, replayLagBytes: 0 })]),
      standby('pg-1', '0/3000148', { lastReplayAgeSeconds: 3600 }),
    ]);
    expect(view.replicas[0]).toMatchObject({ lagSeconds: 0, lagBytes: 0, secondsSource: 'caught-up' });
    expect(classifyReplica(view.replicas[0]!, 'OK', thresholds)).toBe('OK');
  });

  it('counts a replica probed a moment after a write as caught up rather than negative', () => {
    const view = measureCluster(nodes.slice(0, 2), [primary('0/3000000', [peer('pg-1')]), standby('pg-1', '0/3000100')]);
    expect(view.replicas[0]).toMatchObject({ lagBytes: 0, lagSeconds: 0 });
  });

  it('falls back to the replay timestamp only when the primary has no seconds figure for a replica that is behind', () => {
    const view = measureCluster(nodes.slice(0, 2), [primary('0/3001000', [peer('pg-1', { replayLagSeconds: null })]), standby('pg-1', '0/3000000', { lastReplayAgeSeconds: 42 })]);
    expect(view.replicas[0]).toMatchObject({ lagBytes: 4096, lagSeconds: 42, secondsSource: 'replay-timestamp' });
  });

  it('reports a replica missing from pg_stat_replication as not streaming (replication broken)', () => {
    const view = measureCluster(nodes, [primary('0/5000000', [peer('pg-1')]), standby('pg-1', '0/5000000'), standby('pg-2', '0/4000000')]);
    expect(view.replicas[1]).toMatchObject({ nodeId: 'pg-2', streaming: false, walSenderState: null, lagBytes: 0x1000000 });
    expect(classifyReplica(view.replicas[1]!, 'OK', thresholds)).toBe('BROKEN');
  });

  it('does not call a replica broken when an unmatched pg_stat_replication row could be it (generic application_name)', () => {
    const view = measureCluster(nodes, [
      primary('0/5000000', [peer('walreceiver'), peer('walreceiver')]),
      standby('pg-1', '0/5000000'),
      standby('pg-2', '0/5000000'),
    ]);
    expect(view.replicas.map((r) => r.streaming)).toEqual([null, null]);
    expect(view.replicas.map((r) => classifyReplica(r, 'OK', thresholds))).toEqual(['OK', 'OK']);
  });

  it('matches replicas by their configured replication name', () => {
    const view = measureCluster([{ id: 'db-a' }, { id: 'db-b', replicationName: 'rds_slot_b' }], [
      primary('0/5000000', [peer('rds_slot_b', { replayLagSeconds: 9 })], 'db-a'),
      standby('db-b', '0/4FFFFFF'),
    ]);
    expect(view.replicas[0]).toMatchObject({ nodeId: 'db-b', streaming: true, lagBytes: 1, lagSeconds: 9 });
  });

  it('marks an unreachable replica UNREACHABLE and keeps what the primary knows of its lag', () => {
    const view = measureCluster(nodes.slice(0, 2), [primary('0/5000000', [peer('pg-1', { replayLagBytes: 2048, replayLagSeconds: 1.5 })]), unreachable('pg-1')]);
    expect(view.replicas[0]).toEqual({
      nodeId: 'pg-1',
      reachable: false,
      error: 'connect ECONNREFUSED 127.0.0.1:5433',
      streaming: true,
      walSenderState: 'streaming',
      replayPaused: false,
      lagBytes: 2048,
      lagSeconds: 1.5,
      secondsSource: 'walsender',
    });
    expect(classifyReplica(view.replicas[0]!, 'OK', thresholds)).toBe('UNREACHABLE');
  });

  it('reports no primary when the primary is unreachable, with the lag of the replicas unknown (no evidence)', () => {
    const view = measureCluster(nodes.slice(0, 2), [unreachable('pg-0'), standby('pg-1', '0/5000000')]);
    expect(view.primaryId).toBeNull();
    expect(view.finding).toEqual({ kind: 'no-primary', unreachable: ['pg-0'] });
    expect(classifyCluster(view.finding)).toBe('UNREACHABLE');
    const pg1 = view.replicas.find((r) => r.nodeId === 'pg-1')!;
    expect(pg1).toMatchObject({ streaming: null, lagBytes: null, lagSeconds: null });
    expect(classifyReplica(pg1, 'WARN', thresholds)).toBeNull();
  });

  it('reports two writable nodes as split brain', () => {
    const view = measureCluster(nodes.slice(0, 2), [primary('0/5000000', []), primary('0/5000000', [], 'pg-1')]);
    expect(view.finding).toEqual({ kind: 'split-brain', writable: ['pg-0', 'pg-1'] });
    expect(classifyCluster(view.finding)).toBe('CRIT');
  });

  it('refuses a probe round that misses a node', () => {
    expect(() => measureCluster(nodes, [primary('0/1', [])])).toThrow('no probe for node(s) pg-1, pg-2');
  });
});

describe('classifyReplica', () => {
  const lag = (lagSeconds: number | null, lagBytes: number | null): ReplicaLag => ({
    nodeId: 'pg-1',
    reachable: true,
    streaming: true,
    walSenderState: 'streaming',
    replayPaused: false,
    lagSeconds,
    lagBytes,
    secondsSource: 'walsender',
  });

  it.each<[number, number, HealthLevel]>([
    [0, 0, 'OK'],
    [29.9, 16 * MiB - 1, 'OK'],
    [30, 0, 'WARN'],
    [0, 16 * MiB, 'WARN'],
    [120, 0, 'CRIT'],
    [1, 256 * MiB, 'CRIT'],
  ])('%s s / %s bytes from OK is %s (worst of the two units)', (seconds, bytes, expected) => {
    expect(classifyReplica(lag(seconds, bytes), 'OK', thresholds)).toBe(expected);
  });

  it('keeps CRIT while the lag is above WARN and clears it only below WARN', () => {
    expect(classifyReplica(lag(60, 0), 'CRIT', thresholds)).toBe('CRIT');
    expect(classifyReplica(lag(0, 20 * MiB), 'CRIT', thresholds)).toBe('CRIT');
    expect(classifyReplica(lag(29, 1000), 'CRIT', thresholds)).toBe('OK');
    // From WARN the same figure is WARN: the threshold hysteresis only holds CRIT.
    expect(classifyReplica(lag(60, 0), 'WARN', thresholds)).toBe('WARN');
  });

  it('uses the unit that is known when the other is not', () => {
    expect(classifyReplica(lag(null, 300 * MiB), 'OK', thresholds)).toBe('CRIT');
    expect(classifyReplica(lag(null, null), 'CRIT', thresholds)).toBeNull();
  });
});

describe('advanceTracker (hysteresis)', () => {
  const run = (observed: (HealthLevel | null)[], k: number): HealthLevel[] => {
    let tracker: LevelTracker = initialTracker(at);
    return observed.map((o, i) => (tracker = advanceTracker(tracker, o, k, `t${i}`)).level);
  };

  it('changes state only after the new state held for K consecutive samples', () => {
    expect(run(['WARN', 'WARN', 'WARN', 'WARN'], 3)).toEqual(['OK', 'OK', 'WARN', 'WARN']);
  });

  it('restarts the count when the samples disagree (no flapping)', () => {
    expect(run(['WARN', 'OK', 'WARN', 'WARN', 'OK', 'WARN', 'WARN', 'WARN'], 3)).toEqual(['OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'OK', 'WARN']);
    expect(run(['WARN', 'CRIT', 'CRIT', 'CRIT'], 3)).toEqual(['OK', 'OK', 'OK', 'CRIT']);
  });

  it('needs K samples to return to OK as well', () => {
    expect(run(['CRIT', 'CRIT', 'OK', 'OK', 'WARN', 'OK', 'OK'], 2)).toEqual(['OK', 'CRIT', 'CRIT', 'OK', 'OK', 'OK', 'OK']);
  });

  it('leaves the state and the count alone on a sample without evidence', () => {
    expect(run(['WARN', null, 'WARN'], 2)).toEqual(['OK', 'OK', 'WARN']);
  });

  it('records when the state was adopted', () => {
    let tracker = initialTracker(at);
    tracker = advanceTracker(tracker, 'UNREACHABLE', 2, 't1');
    tracker = advanceTracker(tracker, 'UNREACHABLE', 2, 't2');
    expect(tracker).toEqual({ level: 'UNREACHABLE', since: 't2', candidate: null, candidateCount: 0 });
  });
});

describe('classifyBacklog', () => {
  const t = DEFAULT_MONITOR_CONFIG.backlog;
  const reading = (pendingRows: number | null, oldestPendingAgeSeconds: number | null) => ({ workerId: 'i-1', pendingRows, oldestPendingAgeSeconds, at });

  it('grades a worker buffer by rows waiting and by the age of the oldest', () => {
    expect(classifyBacklog(reading(5, 2), 'OK', t)).toBe('OK');
    expect(classifyBacklog(reading(t.warnPendingRows, 2), 'OK', t)).toBe('WARN');
    expect(classifyBacklog(reading(5, t.critOldestPendingSeconds), 'OK', t)).toBe('CRIT');
    expect(classifyBacklog(reading(5, t.warnOldestPendingSeconds), 'CRIT', t)).toBe('CRIT');
    expect(classifyBacklog(reading(5, 1), 'CRIT', t)).toBe('OK');
    expect(classifyBacklog(reading(null, null), 'WARN', t)).toBeNull();
  });
});

describe('resolveMonitorConfig', () => {
  it('fills defaults', () => {
    expect(resolveMonitorConfig({})).toEqual(DEFAULT_MONITOR_CONFIG);
    expect(resolveMonitorConfig({ lag: { warnSeconds: 5 } }).lag).toEqual({ ...DEFAULT_MONITOR_CONFIG.lag, warnSeconds: 5 });
  });

  it('lists every problem with the field path and the expected form', () => {
    let message = '';
    try {
      resolveMonitorConfig({ lag: { warnSeconds: -1, critBytes: 1.5, extra: 1 }, samplesToChange: 0, minMessageIntervalMs: 200, sampleIntervalMs: 'fast' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('monitor.lag.warnSeconds: expected a number above 0, got -1');
    expect(message).toContain('monitor.lag.critBytes: expected an integer above 0, got 1.5');
    expect(message).toContain('monitor.lag.extra: unknown field');
    expect(message).toContain('monitor.samplesToChange: expected an integer from 1 to 60, got 0');
    expect(message).toContain('monitor.minMessageIntervalMs: expected an integer number of milliseconds of at least 1000 (Slack accepts one message per second per channel), got 200');
    expect(message).toContain('monitor.sampleIntervalMs: expected an integer number of milliseconds from 50 to 600000, got "fast"');
  });

  it('requires WARN below CRIT in each unit', () => {
    expect(() => resolveMonitorConfig({ lag: { warnBytes: 100, critBytes: 100 } })).toThrow('monitor.lag: warnBytes (100) must be below critBytes (100)');
    expect(() => resolveMonitorConfig({ backlog: { warnPendingRows: 10, critPendingRows: 5 } }, 'cfg')).toThrow('cfg.backlog: warnPendingRows (10) must be below critPendingRows (5)');
  });
});
