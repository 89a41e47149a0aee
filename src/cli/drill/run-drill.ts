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
import { seededRandom } from '../../core/stats.js';
import { LOCAL_RUNBOOK_CONFIG, STEP_LABELS, type RunbookEvent } from '../../core/runbook/index.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { LocalSlack, STAND_IN_WEBHOOK } from '../../local/local-slack.js';
import { PgLineageStore } from '../../pg/lineage.js';
import { QueuedNotifier } from '../../slack/queued-notifier.js';
import { SlackNotifier } from '../../slack/slack-notifier.js';
import { SlackWebhookClient } from '../../slack/webhook-client.js';
import type { Progress } from '../progress.js';
import { childProcessController, inProcessController, type DrillController, type RunbookRequest } from './controller.js';
import { DrillNetwork } from './drill-network.js';
import { buildDrillResult } from './drill-result.js';
import { countingNode, createDrillTable, DRILL_STREAM, DRILL_TABLE, readStoredRows } from './drill-table.js';
import { FaultRuntime } from './fault-runtime.js';
import type { AnyFault } from './faults/fault.js';
import { faultByName, faultSettingsProblem } from './faults/index.js';
import type { RoundWithState } from './incidents.js';
import type { DrillEvent, DrillEventKind, DrillResult } from './report.js';
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


export async function runDrill(options: DrillOptions): Promise<DrillResult> {
  const fault: AnyFault = faultByName(options.fault);
  const needs = fault.needs ?? {};
  const problem = faultSettingsProblem(fault, options.replicas);
  if (problem) throw new Error(problem);
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
  let runtime: FaultRuntime | undefined;
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
    const notifier = new QueuedNotifier(new SlackNotifier(new SlackWebhookClient(slack.url, STAND_IN_WEBHOOK)));

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
    runtime = new FaultRuntime({ cluster, controllerCluster, workers: fleet, network, slack, controller, progress, firstPrimary, confirmMs: options.confirmMs, probeIntervalMs: options.probeIntervalMs, rounds, mark });
    const { ctx } = runtime;

    await sleep(faultAfter);
    await fault.prepare?.(ctx, plan);
    let request: RunbookRequest | undefined = await fault.inject(ctx, plan);
    for (let round = 1; request !== undefined; round++) {
      if (round > MAX_ROUNDS) throw new Error(`the ${fault.name} fault asked for more than ${MAX_ROUNDS} runbook runs`);
      const events: RunbookEvent[] = [];
      const startedAt = Date.now();
      const answers = runtime.incident; // what this round answers (a fault hook may start the next incident meanwhile)
      const prefix = round > 1 ? `#${round} ` : '';
      const onEvent = (event: RunbookEvent) => {
        events.push(event);
        runtime!.recordEvent(event);
        const figures = Object.entries(event.figures).map(([k, v]) => `${k}=${v}`).join(' ');
        if (event.phase !== 'start' || event.step === 'preflight' || event.step === 'drain') mark('runbook', `${prefix}${STEP_LABELS[event.step]} ${event.phase}`, figures || event.message, Date.parse(event.at));
        progress.event(event.phase === 'warning' ? 'info' : event.phase, `${prefix}${STEP_LABELS[event.step]}`, figures || event.message);
        try {
          fault.onRunbookEvent?.(ctx, plan, event, round);
        } catch (error) {
          mark('drill', 'fault hook failed', (error as Error).message);
        }
      };
      const result = await controller.run(request, onEvent);
      const report: RoundWithState = {
        round,
        request,
        outcome: result.outcome,
        error: result.error ?? null,
        oldPrimary: result.state?.plan?.oldPrimaryId ?? null,
        newPrimary: result.state?.plan?.candidateId ?? null,
        events,
        incidentAt: answers.at,
        startedAt,
        endedAt: Date.now(),
        state: result.state,
        cause: answers.cause,
      };
      rounds.push(report);
      mark('drill', `runbook ${rounds.length > 1 || result.outcome !== 'succeeded' ? prefix || '#1 ' : ''}${result.outcome === 'succeeded' ? 'finished' : result.outcome}`, result.error?.message);
      request = await fault.afterRunbook?.(ctx, plan, report);
    }

    await runtime.runbooksDone();
    await fault.heal?.(ctx, plan);
    await sleep(options.afterMs);
    progress.event('start', 'stop load', 'workers finish syncing what is pending');
    // With no writer left (the last runbook failed), pending rows cannot sync: do not wait long for them.
    const stopped = await fleet.stop(rounds[rounds.length - 1]?.outcome === 'succeeded' ? 30_000 : 5_000);
    mark('drill', 'load stopped');
    progress.event('done', 'stop load', stopped.map((s) => `pending=${s.pendingRows}`).join(' '));

    const countedOn = (await countingNode(cluster)) ?? null;
    progress.event('start', 'verify', countedOn ? `count acknowledged ids on ${countedOn}` : 'no writable primary to count on');
    const stored = countedOn ? await readStoredRows(cluster, countedOn) : null;
    const checks = (await fault.verify?.(ctx, plan)) ?? [];
    const resentByWorkers = countedOn ? await rowsResentByWorkers(cluster, countedOn, rounds) : 0;
    const delivery = await notifier.settle(NOTIFY_SETTLE_MS);
    const result = buildDrillResult({
      seed: options.seed,
      fault: fault.name,
      plan,
      workers: options.workers,
      rate: options.rate,
      firstPrimary,
      origin,
      rounds,
      records: [...fleet.records().values()],
      countedOn,
      stored,
      resentByWorkers,
      checks,
      delivery,
      refusedCalls: slack.refused,
      timeline,
      cluster,
    });
    const r = result.rows;
    progress.event(
      result.ok ? 'done' : 'failed',
      'verify',
      `acknowledged ${r.acknowledged}, in ${countedOn ?? '(none)'} ${r.inNewPrimary ?? '-'}, lost ${r.lost ?? '-'}, duplicates ${r.duplicates ?? '-'}${result.failure ? ` — ${result.failure}` : ''}`,
    );
    return result;
  } finally {
    runtime?.dispose();
    controller?.close();
    fleet?.killAll();
    await cluster?.stop();
    await network?.close();
    await slack?.close();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** What the workers' confirmations of the epochs these runbooks recorded say they re-sent (drain or sync loop). */
async function rowsResentByWorkers(cluster: LocalCluster, nodeId: string, rounds: readonly RoundWithState[]): Promise<number> {
  const epochs = new Set(rounds.map((r) => r.state?.epoch?.id).filter((id): id is string => id !== undefined));
  const confirmations = await new PgLineageStore((id) => cluster.clientConfig(id)).confirmations(nodeId);
  return confirmations.filter((c) => epochs.has(c.epochId)).reduce((sum, c) => sum + c.rowsResent, 0);
}
