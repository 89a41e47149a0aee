import { describe, expect, it } from 'vitest';
import { runMonitor, type MonitorState } from '../../src/core/monitor.js';
import { resolveMonitorConfig } from '../../src/core/monitor-config.js';
import { formatLsn } from '../../src/core/lsn.js';
import type { DatabaseProbe, NodeProbe } from '../../src/ports/database-probe.js';
import { FakeClock, MemoryAlertStateStore, MemoryMetricsSink, RecordingNotifier } from '../support/monitor-fakes.js';

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const target = { clusterId: 'prod', nodes: [{ id: 'pg-0' }, { id: 'pg-1' }] };
const config = resolveMonitorConfig({
  lag: { warnSeconds: 100, critSeconds: 200, warnBytes: 1000, critBytes: 5000 },
  samplesToChange: 2,
  sampleIntervalMs: 10_000,
  runDurationMs: 50_000,
});

/** pg-0 is the primary at LSN 0/10000; pg-1 is `lagBytes(t)` behind, t = ms since T0. */
function scriptedProbe(clock: FakeClock, lagBytes: (t: number) => number | 'down'): DatabaseProbe & { calls: number } {
  const probe = {
    calls: 0,
    async probe(nodeId: string): Promise<NodeProbe> {
      probe.calls += 1;
      const sampledAt = new Date(clock.now()).toISOString();
      const base = { nodeId, sampledAt, reachable: true as const, timelineId: 1, replayPaused: false, replication: [] };
      if (nodeId === 'pg-0') {
        return {
          ...base,
          inRecovery: false,
          currentLsn: formatLsn(0x10000n),
          receiveLsn: null,
          replayLsn: null,
          lastReplayAgeSeconds: null,
          acceptsWrites: true,
          replication: [{ applicationName: 'pg-1', clientAddr: null, state: 'streaming', sentLsn: null, writeLsn: null, flushLsn: null, replayLsn: null, writeLagSeconds: null, flushLagSeconds: null, replayLagSeconds: 1.5, replayLagBytes: null, syncState: 'async' }],
        };
      }
      const lag = lagBytes(clock.now() - T0);
      if (lag === 'down') return { nodeId, sampledAt, reachable: false, error: 'connection refused' };
      const replay = formatLsn(0x10000n - BigInt(lag));
      return { ...base, inRecovery: true, currentLsn: null, receiveLsn: replay, replayLsn: replay, lastReplayAgeSeconds: 1, acceptsWrites: false };
    },
  };
  return probe;
}

function deps(clock: FakeClock, probe: DatabaseProbe, store = new MemoryAlertStateStore()) {
  return { probe, store, notifier: new RecordingNotifier(), metrics: new MemoryMetricsSink(), clock };
}

describe('runMonitor', () => {
  it('samples every S seconds for the run, publishes lag metrics and alerts WARN then CRIT with the figures', async () => {
    const clock = new FakeClock(T0);
    // Lag in bytes at t = 0, 10, 20, 30, 40, 50 s.
    const lags = [0, 2000, 2000, 6000, 6000, 6000];
    const d = deps(clock, scriptedProbe(clock, (t) => lags[t / 10_000]!));
    const report = await runMonitor(target, config, d);

    expect(report.samples.map((s) => s.at)).toEqual([0, 10, 20, 30, 40, 50].map((s) => new Date(T0 + s * 1000).toISOString()));
    expect(report.samples.map((s) => s.replicas[0]!.level)).toEqual(['OK', 'OK', 'WARN', 'WARN', 'CRIT', 'CRIT']);
    expect(report.samples.map((s) => s.replicas[0]!.observed)).toEqual(['OK', 'WARN', 'WARN', 'CRIT', 'CRIT', 'CRIT']);
    expect(d.metrics.samples).toEqual(
      lags.map((lagBytes, i) => ({ clusterId: 'prod', replicaId: 'pg-1', lagBytes, lagSeconds: lagBytes === 0 ? 0 : 1.5, at: T0 + i * 10_000 })),
    );
    expect(d.metrics.flushed).toBe(1);
    expect(d.notifier.sent.map((n) => [n.severity, n.title, n.at])).toEqual([
      ['warning', 'WARN replica pg-1 (was OK)', new Date(T0 + 20_000).toISOString()],
      ['critical', 'CRIT replica pg-1 (was WARN)', new Date(T0 + 40_000).toISOString()],
    ]);
    expect(d.notifier.sent[1]).toMatchObject({
      source: 'lag-monitor',
      clusterId: 'prod',
      text: '1.5 s / 5.9 KiB behind pg-0',
      fields: { state: 'CRIT', was: 'WARN', replica: 'pg-1', primary: 'pg-0', lagSeconds: 1.5, lagBytes: 6000, lagSource: 'walsender', replayPaused: false },
    });
    expect(report.levels).toEqual({ cluster: 'OK', 'node:pg-0': 'OK', 'node:pg-1': 'CRIT' });
    expect(report.superseded).toBe(false);
    expect(report.errors).toEqual([]);
  });

  it('carries hysteresis and alert state over to the next run through the store', async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryAlertStateStore();
    // First run: one WARN sample at the very end (not yet confirmed with K = 2).
    const probe = scriptedProbe(clock, (t) => (t >= 50_000 && t < 120_000 ? 2000 : 0));
    const first = await runMonitor(target, config, { ...deps(clock, probe, store) });
    expect(first.samples.at(-1)!.replicas[0]).toMatchObject({ observed: 'WARN', level: 'OK' });
    const saved = (await store.load())!.state as MonitorState;
    expect(saved.trackers['node:pg-1']).toMatchObject({ level: 'OK', candidate: 'WARN', candidateCount: 1 });

    // Second run, 60 s later: the first sample confirms WARN; later samples resolve it after K samples.
    clock.current = T0 + 60_000;
    const d2 = deps(clock, probe, store);
    const second = await runMonitor(target, config, d2);
    expect(second.samples.map((s) => s.replicas[0]!.level)).toEqual(['WARN', 'WARN', 'WARN', 'WARN', 'WARN', 'WARN']);
    clock.current = T0 + 120_000;
    const d3 = deps(clock, probe, store);
    await runMonitor(target, config, d3);
    expect(d2.notifier.sent.map((n) => n.title)).toEqual(['WARN replica pg-1 (was OK)']);
    expect(d3.notifier.sent.map((n) => n.title)).toEqual(['RESOLVED replica pg-1 (was WARN)']);
  });

  it('keeps a notification that failed and delivers it with the next sample', async () => {
    const clock = new FakeClock(T0);
    const d = deps(clock, scriptedProbe(clock, () => 6000));
    d.notifier.failNext = 2;
    const report = await runMonitor(target, config, d);
    expect(report.messages.map((m) => [m.at, m.delivered])).toEqual([
      [new Date(T0 + 10_000).toISOString(), false],
      [new Date(T0 + 10_000).toISOString(), false],
      [new Date(T0 + 20_000).toISOString(), true],
    ]);
    expect(d.notifier.sent.map((n) => n.title)).toEqual(['CRIT replica pg-1 (was OK)']);
    expect(report.errors).toHaveLength(2);
    expect(report.errors[0]).toContain('notification not delivered, kept for the next attempt (CRIT replica pg-1 (was OK)): SNS unavailable');
  });

  it('sends what the rate limit held as soon as the second is over, not at the next sample', async () => {
    const clock = new FakeClock(T0);
    const fast = { ...config, sampleIntervalMs: 200, runDurationMs: 3000, samplesToChange: 1 };
    // WARN at 0.2 s, CRIT at 0.4 s: the CRIT message must wait until 1.2 s (one second after the WARN message).
    const d = deps(clock, scriptedProbe(clock, (t) => (t >= 400 ? 6000 : t >= 200 ? 2000 : 0)));
    await runMonitor(target, fast, d);
    expect(d.notifier.sent.map((n) => [n.title, Date.parse(n.at) - T0])).toEqual([
      ['WARN replica pg-1 (was OK)', 200],
      ['CRIT replica pg-1 (was WARN)', 1200],
    ]);
  });

  it('stops when another run saved the state meanwhile, so that only one run alerts', async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryAlertStateStore();
    const probe = scriptedProbe(clock, (t) => (t === 10_000 ? store.bump() ?? 6000 : 6000));
    const d = deps(clock, probe, store);
    const report = await runMonitor(target, config, d);
    expect(report.superseded).toBe(true);
    expect(report.samples).toHaveLength(2);
  });

  it('never samples past the deadline', async () => {
    const clock = new FakeClock(T0);
    const probe = scriptedProbe(clock, () => 0);
    const report = await runMonitor(target, config, deps(clock, probe), { deadline: T0 + 25_000 });
    expect(report.samples).toHaveLength(3);
    expect(clock.now()).toBeLessThanOrEqual(T0 + 25_000);
  });

  it('reports an unreachable replica after K samples', async () => {
    const clock = new FakeClock(T0);
    const d = deps(clock, scriptedProbe(clock, (t) => (t >= 10_000 ? 'down' : 0)));
    await runMonitor(target, config, d);
    expect(d.notifier.sent).toHaveLength(1);
    expect(d.notifier.sent[0]).toMatchObject({ severity: 'critical', title: 'UNREACHABLE node pg-1 (was OK)', text: 'cannot connect: connection refused', at: new Date(T0 + 20_000).toISOString() });
  });

  it('reports the loss of the primary as a cluster finding and leaves the replica state alone (no evidence)', async () => {
    const clock = new FakeClock(T0);
    const inner = scriptedProbe(clock, () => 2000);
    const probe = {
      probe: async (nodeId: string): Promise<NodeProbe> =>
        nodeId === 'pg-0' && clock.now() >= T0 + 20_000 ? { nodeId, sampledAt: new Date(clock.now()).toISOString(), reachable: false, error: 'timeout' } : inner.probe(nodeId),
    };
    const d = deps(clock, probe);
    const report = await runMonitor(target, config, d);
    expect(report.samples.map((s) => s.primaryId)).toEqual(['pg-0', 'pg-0', null, null, null, null]);
    expect(report.samples.map((s) => s.replicas.find((r) => r.nodeId === 'pg-1')!.level)).toEqual(['OK', 'WARN', 'WARN', 'WARN', 'WARN', 'WARN']);
    expect(d.notifier.sent.map((n) => [n.title, n.text])).toEqual([
      ['WARN replica pg-1 (was OK)', '1.5 s / 2.0 KiB behind pg-0'],
      // pg-0 is now seen as an unreachable node (its role unknown) and the cluster has no primary: one message.
      ['2 changes on cluster prod: UNREACHABLE cluster prod, UNREACHABLE node pg-0', undefined],
    ]);
    expect(d.notifier.sent[1]!.fields).toEqual({
      'cluster prod': 'UNREACHABLE (was OK): no reachable node accepts writes; unreachable: pg-0',
      'node pg-0': 'UNREACHABLE (was OK): cannot connect: timeout',
    });
  });

  it('reads the worker backlog once per run, alerts on it and resolves workers that stopped reporting', async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryAlertStateStore();
    const probe = scriptedProbe(clock, () => 0);
    let reads = 0;
    const workers = [[{ workerId: 'i-1', pendingRows: 20, oldestPendingAgeSeconds: 400, at: '2026-03-01T09:59:00.000Z' }], []];
    const backlog = { read: async (clusterId: string) => (expect(clusterId).toBe('prod'), workers[reads++]!) };
    const d1 = { ...deps(clock, probe, store), backlog };
    await runMonitor(target, config, d1);
    expect(reads).toBe(1);
    expect(d1.notifier.sent.map((n) => [n.title, n.text])).toEqual([['CRIT worker i-1 (was OK)', '20 rows waiting to sync, oldest 6 min 40 s old (as of 2026-03-01T09:59:00.000Z)']]);
    clock.current = T0 + 60_000;
    const d2 = { ...deps(clock, probe, store), backlog };
    const second = await runMonitor(target, config, d2);
    expect(d2.notifier.sent.map((n) => [n.title, n.text])).toEqual([['RESOLVED worker i-1 (was CRIT)', 'no longer reported: stopped monitoring it']]);
    expect(second.levels).not.toHaveProperty('worker:i-1');
  });

  it('starts afresh, and says so, when the stored state is not what it expects', async () => {
    const clock = new FakeClock(T0);
    const store = new MemoryAlertStateStore();
    await store.save('prod', { schema: 7 }, null);
    const report = await runMonitor(target, { ...config, runDurationMs: 0 }, deps(clock, scriptedProbe(clock, () => 0), store));
    expect(report.errors).toEqual(['stored state ignored: expected an object with schema 1']);
    expect(((await store.load())!.state as MonitorState).schema).toBe(1);
  });
});
