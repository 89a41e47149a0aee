/**
 * The lag monitor's run: what one lag-monitor Lambda invocation does (and what the local monitor does in a loop).
 * Samples every node every `sampleIntervalMs` for `runDurationMs`, publishes per-replica lag metrics, keeps the
 * hysteresis and alert state in the store between runs, and notifies people through the Notifier.
 * Every wait is bounded by the run's deadline; a failed notification stays queued, never dropped.
 */
import { advanceTracker, initialTracker, isHealthLevel, type HealthLevel, type LevelTracker } from './health-level.js';
import { classifyCluster, classifyReplica, measureCluster, type ClusterLagView, type MonitoredNode, type ReplicaLag } from './lag-policy.js';
import { classifyBacklog } from './backlog-policy.js';
import { emptyAlertState, heldUntil, planAlerts, recordDelivery, type AlertEvent, type AlertState, type Observation } from './alert-policy.js';
import { alertNotification } from './alert-notification.js';
import { formatBytes, formatSeconds, round } from './format-units.js';
import type { MonitorConfig } from './monitor-config.js';
import type { Clock } from '../ports/clock.js';
import type { DatabaseProbe, NodeProbe } from '../ports/database-probe.js';
import type { Notifier } from '../ports/notifier.js';
import type { MetricsSink } from '../ports/metrics-sink.js';
import { StateConflictError, type AlertStateStore } from '../ports/alert-state-store.js';
import type { BufferBacklogSource, WorkerBacklog } from '../ports/buffer-backlog-source.js';

export interface MonitorTarget {
  readonly clusterId: string;
  /** Every database node of the cluster; which one is the primary is read from the nodes themselves. */
  readonly nodes: readonly MonitoredNode[];
}

export interface MonitorDeps {
  readonly probe: DatabaseProbe;
  readonly store: AlertStateStore;
  readonly notifier: Notifier;
  readonly metrics: MetricsSink;
  readonly clock: Clock;
  /** Worker buffer backlog, read once per run. */
  readonly backlog?: BufferBacklogSource;
  readonly log?: (line: string) => void;
}

export interface MonitorRunOptions {
  /** Absolute time (ms, the clock's) by which the run must have returned, e.g. the Lambda's remaining time. */
  readonly deadline?: number;
}

export interface ReplicaSample {
  readonly nodeId: string;
  readonly lagSeconds: number | null;
  readonly lagBytes: number | null;
  /** What this sample alone shows (null: no evidence). */
  readonly observed: HealthLevel | null;
  /** The confirmed state after hysteresis. */
  readonly level: HealthLevel;
}

export interface SampleReport {
  readonly at: string;
  readonly primaryId: string | null;
  readonly replicas: readonly ReplicaSample[];
}

export interface MessageReport {
  readonly at: string;
  readonly title: string;
  readonly severity: string;
  readonly delivered: boolean;
  readonly error?: string;
}

export interface MonitorReport {
  readonly clusterId: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly samples: readonly SampleReport[];
  readonly messages: readonly MessageReport[];
  /** Confirmed state of every subject at the end of the run. */
  readonly levels: Readonly<Record<string, HealthLevel>>;
  /** Another run saved the state meanwhile: this one stopped so that only one run alerts. */
  readonly superseded: boolean;
  readonly errors: readonly string[];
}

/** What the store holds between runs. */
export interface MonitorState {
  readonly schema: 1;
  readonly trackers: Readonly<Record<string, LevelTracker>>;
  readonly alerts: AlertState;
}

export function emptyMonitorState(): MonitorState {
  return { schema: 1, trackers: {}, alerts: emptyAlertState() };
}

export async function runMonitor(
  target: MonitorTarget,
  config: MonitorConfig,
  deps: MonitorDeps,
  options: MonitorRunOptions = {},
): Promise<MonitorReport> {
  if (target.nodes.length === 0) throw new Error(`runMonitor: cluster '${target.clusterId}' has no nodes to monitor`);
  const { clock, clusterId } = { clock: deps.clock, clusterId: target.clusterId };
  const log = deps.log ?? (() => {});
  const iso = (ms: number) => new Date(ms).toISOString();
  const startedAt = clock.now();
  const deadline = options.deadline ?? Number.POSITIVE_INFINITY;
  const lastSampleAt = Math.min(startedAt + config.runDurationMs, deadline);
  const errors: string[] = [];
  const messages: MessageReport[] = [];
  const samples: SampleReport[] = [];
  const fail = (what: string, error: unknown) => {
    const line = `${what}: ${error instanceof Error ? error.message : String(error)}`;
    errors.push(line);
    log(line);
  };

  const loaded = await deps.store.load(clusterId);
  let version = loaded?.version ?? null;
  let state = loaded ? parseMonitorState(loaded.state, (problem) => fail('stored state ignored', problem)) : emptyMonitorState();
  let savedJson = loaded ? JSON.stringify(loaded.state) : '';
  let superseded = false;

  const persist = async (): Promise<void> => {
    const json = JSON.stringify(state);
    if (json === savedJson) return;
    try {
      version = await deps.store.save(clusterId, state, version);
      savedJson = json;
    } catch (error) {
      if (error instanceof StateConflictError) superseded = true;
      else fail('alert state not saved (will retry)', error);
    }
  };

  const deliver = async (due: readonly AlertEvent[]): Promise<void> => {
    const now = clock.now();
    const notification = alertNotification(clusterId, due, iso(now));
    let ok = true;
    try {
      await deps.notifier.notify(notification);
      messages.push({ at: iso(now), title: notification.title, severity: notification.severity, delivered: true });
      log(`notified: ${notification.title}`);
    } catch (error) {
      ok = false;
      fail(`notification not delivered, kept for the next attempt (${notification.title})`, error);
      messages.push({ at: iso(now), title: notification.title, severity: notification.severity, delivered: false, error: String(error) });
    }
    state = { ...state, alerts: recordDelivery(state.alerts, due, clock.now(), ok) };
  };

  /** Sends held messages as soon as the rate limit allows, until `until`. */
  const waitUntil = async (until: number): Promise<void> => {
    for (;;) {
      const now = clock.now();
      if (now >= until) return;
      const held = heldUntil(state.alerts, config);
      if (held !== null && held < until && !superseded) {
        if (held > now) await clock.sleep(held - now);
        const plan = planAlerts(state.alerts, [], clock.now(), config);
        state = { ...state, alerts: plan.state };
        if (plan.due.length > 0) await deliver(plan.due);
        await persist();
        if (heldUntil(state.alerts, config) === held) {
          // Delivery failed: do not spin, try again with the next sample.
          await clock.sleep(Math.max(0, until - clock.now()));
          return;
        }
        continue;
      }
      await clock.sleep(until - now);
    }
  };

  const backlog = await readBacklog(deps.backlog, clusterId, fail);

  for (let i = 0; !superseded; i += 1) {
    const scheduled = startedAt + i * config.sampleIntervalMs;
    if (i > 0 && scheduled > lastSampleAt) break;
    await waitUntil(scheduled);
    if (superseded) break;
    const now = clock.now();
    const probes = await Promise.all(target.nodes.map((node) => safeProbe(deps.probe, node.id, now)));
    const view = measureCluster(target.nodes, probes);
    for (const replica of view.replicas) {
      if (replica.lagSeconds !== null || replica.lagBytes !== null) {
        deps.metrics.recordLag({ clusterId, replicaId: replica.nodeId, lagSeconds: replica.lagSeconds, lagBytes: replica.lagBytes, at: now });
      }
    }
    const evaluation = evaluate(target, view, state.trackers, config, iso(now), i === 0 ? backlog : null);
    const plan = planAlerts(state.alerts, evaluation.observations, now, config, evaluation.retired);
    state = { schema: 1, trackers: evaluation.trackers, alerts: plan.state };
    samples.push({ at: iso(now), primaryId: view.primaryId, replicas: evaluation.replicaSamples });
    if (plan.due.length > 0) await deliver(plan.due);
    await persist();
  }

  // Messages held by the rate limit go out now if the deadline allows; otherwise the next run sends them.
  const held = heldUntil(state.alerts, config);
  if (!superseded && held !== null && held <= deadline) {
    await waitUntil(Math.max(held, clock.now()) + 1);
  }
  try {
    await deps.metrics.flush();
  } catch (error) {
    fail('metrics not flushed', error);
  }
  const levels: Record<string, HealthLevel> = {};
  for (const [subject, tracker] of Object.entries(state.trackers)) levels[subject] = tracker.level;
  return { clusterId, startedAt: iso(startedAt), finishedAt: iso(clock.now()), samples, messages, levels, superseded, errors };
}

interface BacklogReading {
  readonly workers: readonly WorkerBacklog[];
}

async function readBacklog(source: BufferBacklogSource | undefined, clusterId: string, fail: (what: string, e: unknown) => void): Promise<BacklogReading | null> {
  if (!source) return null;
  try {
    return { workers: await source.read(clusterId) };
  } catch (error) {
    fail('worker backlog not read', error);
    return null;
  }
}

async function safeProbe(probe: DatabaseProbe, nodeId: string, now: number): Promise<NodeProbe> {
  try {
    return await probe.probe(nodeId);
  } catch (error) {
    return { nodeId, reachable: false, error: `probe failed: ${error instanceof Error ? error.message : String(error)}`, sampledAt: new Date(now).toISOString() };
  }
}

interface Evaluation {
  readonly trackers: Record<string, LevelTracker>;
  readonly observations: Observation[];
  readonly retired: string[];
  readonly replicaSamples: ReplicaSample[];
}

/** Applies the policies and hysteresis to one sample (and, on a run's first sample, the backlog reading). */
function evaluate(
  target: MonitorTarget,
  view: ClusterLagView,
  previous: Readonly<Record<string, LevelTracker>>,
  config: MonitorConfig,
  at: string,
  backlog: BacklogReading | null,
): Evaluation {
  const trackers: Record<string, LevelTracker> = { ...previous };
  const observations: Observation[] = [];
  const replicaSamples: ReplicaSample[] = [];
  const step = (subject: string, observed: HealthLevel | null, samplesToChange: number) => {
    const tracker = advanceTracker(trackers[subject] ?? initialTracker(at), observed, samplesToChange, at);
    trackers[subject] = tracker;
    return tracker.level;
  };

  const clusterSubject = 'cluster';
  observations.push({
    subject: clusterSubject,
    label: `cluster ${target.clusterId}`,
    level: step(clusterSubject, classifyCluster(view.finding), config.samplesToChange),
    summary: clusterSummary(view),
    figures: { primary: view.primaryId },
  });

  if (view.primaryId !== null) {
    const subject = nodeSubject(view.primaryId);
    observations.push({ subject, label: `primary ${view.primaryId}`, level: step(subject, 'OK', 1), summary: 'is the primary (accepts writes)', figures: { node: view.primaryId, role: 'primary' } });
  }
  for (const replica of view.replicas) {
    const subject = nodeSubject(replica.nodeId);
    const current = trackers[subject]?.level ?? 'OK';
    const observed = classifyReplica(replica, current, config.lag);
    const level = step(subject, observed, config.samplesToChange);
    replicaSamples.push({ nodeId: replica.nodeId, lagSeconds: replica.lagSeconds, lagBytes: replica.lagBytes, observed, level });
    observations.push({
      subject,
      // An unreachable node's role is unknown (it may be the old primary).
      label: `${replica.reachable ? 'replica' : 'node'} ${replica.nodeId}`,
      level,
      summary: replicaSummary(replica, view.primaryId),
      figures: replicaFigures(replica, view.primaryId, config),
    });
  }

  const nodeSubjects = new Set(target.nodes.map((n) => nodeSubject(n.id)));
  const retired = Object.keys(trackers).filter((s) => s.startsWith('node:') && !nodeSubjects.has(s));
  if (backlog) {
    const seen = new Set<string>();
    for (const worker of backlog.workers) {
      const subject = `worker:${worker.workerId}`;
      seen.add(subject);
      const current = trackers[subject]?.level ?? 'OK';
      // Backlog figures are already one-minute aggregates: one reading is enough to change state.
      const level = step(subject, classifyBacklog(worker, current, config.backlog), 1);
      observations.push({ subject, label: `worker ${worker.workerId}`, level, summary: backlogSummary(worker), figures: backlogFigures(worker) });
    }
    retired.push(...Object.keys(trackers).filter((s) => s.startsWith('worker:') && !seen.has(s)));
  }
  for (const subject of retired) delete trackers[subject];
  return { trackers, observations, retired, replicaSamples };
}

function nodeSubject(nodeId: string): string {
  return `node:${nodeId}`;
}

function clusterSummary(view: ClusterLagView): string {
  const f = view.finding;
  if (f.kind === 'ok') return `primary ${f.primaryId} accepts writes`;
  if (f.kind === 'split-brain') return `more than one node accepts writes (${f.writable.join(', ')}): split-brain risk, fence all but one`;
  return `no reachable node accepts writes${f.unreachable.length > 0 ? `; unreachable: ${f.unreachable.join(', ')}` : ''}`;
}

function replicaSummary(r: ReplicaLag, primaryId: string | null): string {
  const parts: string[] = [];
  if (!r.reachable) parts.push(`cannot connect: ${r.error ?? 'unknown error'}`);
  if (r.streaming === false) parts.push(`not in pg_stat_replication on ${primaryId}: replication is broken`);
  if (r.lagSeconds !== null || r.lagBytes !== null) {
    const seconds = r.lagSeconds === null ? 'unknown time' : formatSeconds(r.lagSeconds);
    const bytes = r.lagBytes === null ? 'unknown bytes' : formatBytes(r.lagBytes);
    parts.push(`${seconds} / ${bytes} behind ${primaryId ?? 'the primary'}`);
  } else if (r.reachable) {
    parts.push(primaryId === null ? 'lag unknown: no primary to compare with' : 'lag unknown');
  }
  if (r.replayPaused) parts.push('replay is paused (pg_wal_replay_pause)');
  if (r.walSenderState !== null && r.walSenderState !== 'streaming') parts.push(`walsender state ${r.walSenderState}`);
  return parts.join('; ');
}

function replicaFigures(r: ReplicaLag, primaryId: string | null, config: MonitorConfig): Record<string, string | number | boolean | null> {
  const t = config.lag;
  return {
    replica: r.nodeId,
    primary: primaryId,
    lagSeconds: r.lagSeconds === null ? null : round(r.lagSeconds, 1),
    lagBytes: r.lagBytes,
    lagSource: r.secondsSource,
    replayPaused: r.replayPaused,
    thresholds: `WARN ${formatSeconds(t.warnSeconds)} / ${formatBytes(t.warnBytes)}, CRIT ${formatSeconds(t.critSeconds)} / ${formatBytes(t.critBytes)}`,
  };
}

function backlogSummary(w: WorkerBacklog): string {
  const rows = w.pendingRows === null ? 'unknown' : String(w.pendingRows);
  const age = w.oldestPendingAgeSeconds === null ? 'unknown' : formatSeconds(w.oldestPendingAgeSeconds);
  return `${rows} rows waiting to sync, oldest ${age} old (as of ${w.at})`;
}

function backlogFigures(w: WorkerBacklog): Record<string, string | number | null> {
  return { worker: w.workerId, pendingRows: w.pendingRows, oldestPendingAgeSeconds: w.oldestPendingAgeSeconds, reportedAt: w.at };
}

/** Accepts a stored state only if it has the expected shape; otherwise starts afresh (and says why). */
export function parseMonitorState(value: unknown, onInvalid: (problem: string) => void): MonitorState {
  const problem = monitorStateProblem(value);
  if (problem === null) return value as MonitorState;
  onInvalid(problem);
  return emptyMonitorState();
}

function monitorStateProblem(value: unknown): string | null {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(value) || value.schema !== 1) return 'expected an object with schema 1';
  if (!isObject(value.trackers)) return 'trackers: expected an object';
  for (const [subject, t] of Object.entries(value.trackers)) {
    if (!isObject(t) || !isHealthLevel(t.level) || typeof t.since !== 'string' || typeof t.candidateCount !== 'number') {
      return `trackers.${subject}: expected { level, since, candidate, candidateCount }`;
    }
    if (t.candidate !== null && !isHealthLevel(t.candidate)) return `trackers.${subject}.candidate: expected a state or null`;
  }
  const alerts = value.alerts;
  if (!isObject(alerts) || !isObject(alerts.subjects) || !Array.isArray(alerts.pending)) return 'alerts: expected { subjects, lastSentAt, pending }';
  if (alerts.lastSentAt !== null && typeof alerts.lastSentAt !== 'number') return 'alerts.lastSentAt: expected a number or null';
  for (const [subject, s] of Object.entries(alerts.subjects)) {
    if (!isObject(s) || !isHealthLevel(s.notifiedLevel) || typeof s.lastNotifiedAt !== 'number' || typeof s.episodeStart !== 'number') {
      return `alerts.subjects.${subject}: expected { notifiedLevel, lastNotifiedAt, episodeStart }`;
    }
  }
  for (const [i, e] of alerts.pending.entries()) {
    if (!isObject(e) || typeof e.subject !== 'string' || !isHealthLevel(e.level) || !isHealthLevel(e.previous) || !isHealthLevel(e.peak)) {
      return `alerts.pending[${i}]: expected an alert event`;
    }
  }
  return null;
}
