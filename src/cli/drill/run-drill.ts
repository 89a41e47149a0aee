/**
 * The local failover drill: a real primary with streaming replicas, K worker processes appending through real
 * buffers, a fault (src/cli/drill/faults/) at a seeded moment, the runbook's own steps with local adapters,
 * and an exact count of what was acknowledged against what the final primary holds. The core knows no fault:
 * each one sets up what it needs and acts through the hooks of faults/fault.ts.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { percentile, seededRandom } from '../../core/stats.js';
import { LOCAL_RUNBOOK_CONFIG, STEP_LABELS, type RunbookEvent, type RunbookState } from '../../core/runbook/index.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { LocalSlack } from '../../local/local-slack.js';
import { PgDatabaseProbe } from '../../pg/probe.js';
import { QueuedNotifier } from '../../slack/queued-notifier.js';
import { SlackNotifier } from '../../slack/slack-notifier.js';
import { SlackWebhookClient } from '../../slack/webhook-client.js';
import type { Progress } from '../progress.js';
import { childProcessController, inProcessController, type DrillController, type RunbookRequest } from './controller.js';
import { DrillNetwork } from './drill-network.js';
import { countingNode, createDrillTable, DRILL_STREAM, DRILL_TABLE, readStoredRows, type StoredRows } from './drill-table.js';
import type { AnyFault, FaultContext, RoundReport } from './faults/fault.js';
import { faultByName } from './faults/index.js';
import { drillIncidents, drillRounds, recoveredByDrain, worstTimings, type RoundWithState } from './incidents.js';
import { drillFailure, type DrillEvent, type DrillEventKind, type DrillResult, type DrillRows } from './report.js';
import { WorkerFleet } from './worker-fleet.js';

export { writeLoadWorkerConfig } from './worker-fleet.js';

export interface DrillOptions {
  readonly seed: number;
  /** A fault's name (faults/index.ts). */
  readonly fault: string;
  readonly replicas: number;
  readonly workers: number;
  /** Rows per second per worker. */
  readonly rate: number;
  /** Load before the fault: the fault lands at a seeded random moment in [warmup, warmup + jitter]. */
  readonly warmupMs: number;
  readonly jitterMs: number;
  /** Load kept running after the runbook finished, before the final count. */
  readonly afterMs: number;
  /** The primary must stay unreachable this long before the runbook acts (the confirm step). */
  readonly confirmMs: number;
  /** How often the drill's monitor probes the primary. */
  readonly probeIntervalMs: number;
  readonly progress: Progress;
}

/** A runaway fault (a round that always asks for another) stops here. */
const MAX_ROUNDS = 6;
/** How long the drill waits at the end for queued notifications to be delivered (or given up). */
const NOTIFY_SETTLE_MS = 15_000;

/**
 * The drill's Slack stand-in is not Slack: no one-per-second pacing (the runbook publishes ~30 messages), a
 * short budget per message so an outage shows up as dead letters within the drill.
 */
const DRILL_WEBHOOK = { minIntervalMs: 0, maxAttempts: 3, baseBackoffMs: 100, maxBackoffMs: 1_000, maxTotalWaitMs: 3_000, requestTimeoutMs: 2_000 } as const;

export async function runDrill(options: DrillOptions): Promise<DrillResult> {
  const fault: AnyFault = faultByName(options.fault);
  const needs = fault.needs ?? {};
  if (options.replicas < (needs.minReplicas ?? 1)) {
    throw new Error(`--replicas: the ${fault.name} fault needs at least ${needs.minReplicas} replicas, got ${options.replicas}`);
  }
  const { progress } = options;
  const random = seededRandom(options.seed);
  // The fault moment first: the same seed puts it at the same moment whatever the fault plans after it.
  const faultAfter = options.warmupMs + Math.round(random() * options.jitterMs);
  const plan: unknown = fault.plan(random, options);
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'rds-failover-drill-'));
  let origin = Date.now();
  const timeline: DrillEvent[] = [];
  const mark = (kind: DrillEventKind, name: string, detail?: string, at = Date.now()) => {
    timeline.push({ atMs: at - origin, kind, name, ...(detail === undefined ? {} : { detail }) });
  };
  let cluster: LocalCluster | undefined;
  let network: DrillNetwork | undefined;
  let fleet: WorkerFleet | undefined;
  let slack: LocalSlack | undefined;
  let controller: DrillController | undefined;
  /** Fault actions scheduled with ctx.later. */
  const scheduled: { timer: NodeJS.Timeout; run: () => Promise<void> }[] = [];
  try {
    progress.event('start', 'cluster', `primary + ${options.replicas} streaming replicas${needs.network ? ', every path through a TCP proxy' : ''}`);
    network = needs.network ? await DrillNetwork.start(workDir, options.replicas) : undefined;
    cluster = await LocalCluster.start({ replicas: options.replicas, ...(network ? { replicationPort: network.replicationRoute } : {}) });
    network?.attach(cluster);
    const firstPrimary = cluster.primaryId();
    await createDrillTable(cluster, firstPrimary);
    await cluster.setWriter(firstPrimary);
    network?.publishWriter(cluster);
    progress.event('done', 'cluster', cluster.nodes().map((n) => `${n.id}:${n.port}`).join(' '));

    slack = await LocalSlack.start();
    const notifier = new QueuedNotifier(new SlackNotifier(new SlackWebhookClient(slack.url, DRILL_WEBHOOK)));

    const agents = needs.agentDaemons ? 'daemon' : 'in-process';
    progress.event('start', 'workers', `${options.workers} × ${options.rate} rows/s${agents === 'daemon' ? ', each agent its own process' : ''}`);
    fleet = await WorkerFleet.start({
      workDir,
      count: options.workers,
      rate: options.rate,
      writerFile: network?.workersWriterFile ?? cluster.writerFile,
      table: DRILL_TABLE,
      stream: DRILL_STREAM,
      agents,
      writerFollow: needs.writerFollow ?? 'file-watch',
    });
    const controllerCluster = network ? network.controllerView(cluster) : cluster;
    const controllerOptions = {
      cluster: controllerCluster,
      workers: fleet.localWorkers(),
      stateDir: path.join(workDir, 'controller'),
      notifier,
      // The drain step gives up after 30 s (not 60): a drain whose writer died fails within it (the agents give up after 20 s).
      config: { ...LOCAL_RUNBOOK_CONFIG, confirmUnreachableMs: options.confirmMs, timeoutMs: { ...LOCAL_RUNBOOK_CONFIG.timeoutMs, drain: 30_000 } },
      ...(network ? { afterRepoint: () => network!.publishWriter(cluster!) } : {}),
    };
    controller = needs.controllerProcess ? childProcessController(controllerOptions) : inProcessController(controllerOptions);
    origin = Date.now(); // the report's clock starts with the load
    mark('drill', 'load started');
    progress.event('done', 'workers');

    const rounds: RoundWithState[] = [];
    let incident = { at: Date.now(), cause: 'none' };
    const monitor = new PgDatabaseProbe((id) => controllerCluster.clientConfig(id), { connectTimeoutMs: 500 });
    const nemesisTimes = new Map<string, number>();
    const runbookEvents: RunbookEvent[] = [];
    const waiters: { matches: (e: RunbookEvent) => boolean; resolve: (seen: boolean) => void }[] = [];
    const nemesis = (name: string, detail?: string) => {
      nemesisTimes.set(name, Date.now());
      mark('nemesis', name, detail);
      progress.event('info', 'nemesis', detail ? `${name}: ${detail}` : name);
    };
    const ctx: FaultContext = {
      cluster,
      workers: fleet,
      network,
      slack,
      controller,
      progress,
      firstPrimary,
      confirmMs: options.confirmMs,
      rounds,
      nemesis,
      inject(name, detail) {
        incident = { at: Date.now(), cause: name };
        nemesis(name, detail);
      },
      async killNode(nodeId, why) {
        const at = Date.now();
        await cluster!.stopNode(nodeId, 'kill');
        incident = { at, cause: why };
        mark('nemesis', why, `kill -9 ${nodeId}`, at);
        progress.event('info', 'fault', `kill -9 of ${nodeId}'s postmaster (${why})`);
      },
      async waitUntilUnreachable(nodeId) {
        while ((await monitor.probe(nodeId)).reachable) await sleep(options.probeIntervalMs);
        mark('drill', `monitor saw ${nodeId === firstPrimary ? 'primary' : nodeId} down`);
      },
      triggeredFailover: (nodeId, message, force) => ({
        input: { mode: 'failover', ...(force ? { force: true } : {}), trigger: { source: 'rds-event', sourceId: nodeId, message } },
      }),
      sleep: (ms) => sleep(ms),
      later(ms, action) {
        let done: Promise<void> | undefined;
        const run = () => (done ??= Promise.resolve().then(action));
        // A failure is reported when the core awaits it (before heal); here it must not go unhandled.
        scheduled.push({ timer: setTimeout(() => run().catch(() => undefined), ms), run });
      },
      nemesisTime: (name) => nemesisTimes.get(name),
      runbookReached(step, phase) {
        const matches = (e: RunbookEvent) => e.step === step && e.phase === phase;
        if (runbookEvents.some(matches)) return Promise.resolve(true);
        return new Promise((resolve) => waiters.push({ matches, resolve }));
      },
    };

    await sleep(faultAfter);
    await fault.prepare?.(ctx, plan);
    let request: RunbookRequest | undefined = await fault.inject(ctx, plan);
    for (let round = 1; request !== undefined; round++) {
      if (round > MAX_ROUNDS) throw new Error(`the ${fault.name} fault asked for more than ${MAX_ROUNDS} runbook runs`);
      const events: RunbookEvent[] = [];
      const startedAt = Date.now();
      const answers = incident; // what this round answers (a fault hook may start the next incident meanwhile)
      const onEvent = (event: RunbookEvent) => {
        events.push(event);
        runbookEvents.push(event);
        for (const w of waiters.filter((x) => x.matches(event))) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(true);
        }
        const figures = Object.entries(event.figures).map(([k, v]) => `${k}=${v}`).join(' ');
        const label = `${round > 1 ? `#${round} ` : ''}${STEP_LABELS[event.step]} ${event.phase}`;
        if (event.phase !== 'start' || event.step === 'preflight' || event.step === 'drain') mark('runbook', label, figures || event.message, Date.parse(event.at));
        progress.event(event.phase === 'warning' ? 'info' : event.phase, `${round > 1 ? `#${round} ` : ''}${STEP_LABELS[event.step]}`, figures || event.message);
        try {
          fault.onRunbookEvent?.(ctx, plan, event, round);
        } catch (error) {
          mark('drill', 'fault hook failed', (error as Error).message);
        }
      };
      const result = await controller.run(request, onEvent);
      const state: RunbookState | null = result.state;
      const report: RoundWithState = {
        round,
        request,
        outcome: result.outcome,
        error: result.error ?? null,
        oldPrimary: state?.plan?.oldPrimaryId ?? null,
        newPrimary: state?.plan?.candidateId ?? null,
        events,
        incidentAt: answers.at,
        startedAt,
        endedAt: Date.now(),
        state,
        cause: answers.cause,
      };
      rounds.push(report);
      mark('drill', `runbook ${rounds.length > 1 || result.outcome !== 'succeeded' ? `#${round} ` : ''}${result.outcome === 'succeeded' ? 'finished' : result.outcome}`, result.error?.message);
      request = await fault.afterRunbook?.(ctx, plan, report satisfies RoundReport);
    }

    for (const w of waiters.splice(0)) w.resolve(false);
    for (const s of scheduled) clearTimeout(s.timer);
    await Promise.all(scheduled.map((s) => s.run()));
    await fault.heal?.(ctx, plan);
    await sleep(options.afterMs);
    progress.event('start', 'stop load', 'workers finish syncing what is pending');
    // With no writer left (the last runbook failed), pending rows cannot sync: do not wait long for them.
    const stopped = await fleet.stop(rounds[rounds.length - 1]?.outcome === 'succeeded' ? 30_000 : 5_000);
    mark('drill', 'load stopped');
    progress.event('done', 'stop load', stopped.map((s) => `pending=${s.pendingRows}`).join(' '));

    const countedOn = (await countingNode(cluster)) ?? null;
    progress.event('start', 'verify', countedOn ? `count acknowledged ids on ${countedOn}` : 'no writable primary to count on');
    const stored: StoredRows | null = countedOn ? await readStoredRows(cluster, countedOn) : null;
    const records = [...fleet.records().values()];
    const acknowledged = records.flatMap((r) => r.ids);
    const refusedIds = records.flatMap((r) => r.refused.map(([id]) => id));
    const present = stored ? new Set(stored.ids) : null;
    const rows: DrillRows = {
      acknowledged: acknowledged.length,
      inNewPrimary: stored ? stored.ids.length : null,
      lost: present ? acknowledged.filter((id) => !present.has(id)).length : null,
      duplicates: stored ? stored.duplicates : null,
      recoveredByDrain: recoveredByDrain(rounds),
      refused: refusedIds.length,
      refusedButStored: present ? refusedIds.filter((id) => present.has(id)).length : 0,
    };
    const checks = (await fault.verify?.(ctx, plan)) ?? [];
    const delivery = await notifier.settle(NOTIFY_SETTLE_MS);
    const last = rounds[rounds.length - 1];
    const failure = drillFailure(rows, last, checks);
    const portOf = (id: string) => cluster!.nodes().find((n) => n.id === id)?.port;
    const firstCommitAt = (port: number, afterMs: number) => {
      let first: number | null = null;
      for (const r of stored?.rows ?? []) if (r.port === port && r.committedAtMs >= afterMs && (first === null || r.committedAtMs < first)) first = r.committedAtMs;
      return first;
    };
    const incidents = drillIncidents(rounds, origin, portOf, firstCommitAt);
    const latencies = records.flatMap((r) => r.latenciesUs).map((us) => us / 1000);
    const lastState = [...rounds].reverse().find((r) => r.state)?.state;
    const result: DrillResult = {
      seed: options.seed,
      fault: fault.name,
      plan,
      workers: options.workers,
      ratePerWorker: options.rate,
      oldPrimary: firstPrimary,
      newPrimary: countedOn,
      forkPoint: lastState?.forkPoint ?? null,
      timings: worstTimings(incidents),
      incidents,
      rounds: drillRounds(rounds, origin),
      rows,
      appendLatencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.reduce((a, b) => Math.max(a, b), 0) },
      maxAckGapMs: Math.max(...records.map((r) => maxGap(r.times))),
      notifications: delivery.published,
      slack: {
        published: delivery.published,
        delivered: delivery.delivered,
        undelivered: delivery.deadLetters.length + delivery.queued,
        deadLetters: delivery.deadLetters,
        refusedCalls: { ...slack.refused },
      },
      checks,
      failure,
      timeline: [...timeline].sort((a, b) => a.atMs - b.atMs),
      series: buildSeries(origin, records.flatMap((r) => r.times), stored?.rows ?? [], cluster),
      ok: failure === null,
    };
    progress.event(
      result.ok ? 'done' : 'failed',
      'verify',
      `acknowledged ${rows.acknowledged}, in ${countedOn ?? '(none)'} ${rows.inNewPrimary ?? '-'}, lost ${rows.lost ?? '-'}, duplicates ${rows.duplicates ?? '-'}${failure ? ` — ${failure}` : ''}`,
    );
    return result;
  } finally {
    for (const s of scheduled) clearTimeout(s.timer);
    controller?.close();
    fleet?.killAll();
    await cluster?.stop();
    await network?.close();
    await slack?.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

function buildSeries(origin: number, ackTimes: number[], stored: readonly { port: number; committedAtMs: number }[], cluster: LocalCluster) {
  const bucketMs = 250;
  const bucket = (t: number) => Math.max(0, Math.floor((t - origin) / bucketMs));
  let last = 0;
  for (const t of ackTimes) last = Math.max(last, bucket(t));
  for (const r of stored) last = Math.max(last, bucket(r.committedAtMs));
  const acknowledged = new Array<number>(last + 1).fill(0);
  for (const t of ackTimes) acknowledged[bucket(t)]! += 1;
  const committed: Record<string, number[]> = {};
  const nodeByPort = new Map(cluster.nodes().map((n) => [n.port, n.id]));
  for (const r of stored) {
    const node = nodeByPort.get(r.port) ?? `port ${r.port}`;
    (committed[node] ??= new Array<number>(last + 1).fill(0))[bucket(r.committedAtMs)]! += 1;
  }
  return { bucketMs, acknowledged, committed };
}

function maxGap(times: number[]): number {
  let gap = 0;
  for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i]! - times[i - 1]!);
  return gap;
}
