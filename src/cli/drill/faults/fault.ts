/**
 * What a drill fault is: a name, a seeded plan (every random choice, made before the drill starts, so a seed
 * reproduces the run), what the drill must set up for it, and hooks around the load and the runbook. The
 * drill's core (run-drill.ts) calls the hooks in this order:
 *
 *   plan → (cluster, network, workers, load) → prepare → inject → [runbook round → onRunbookEvent ... →
 *   afterRunbook → next round?]* → heal → (load after, stop, count) → verify
 *
 * A new fault is one module in this folder and one line in faults/index.ts; the core does not change.
 */
import type { RunbookEvent, RunbookEventPhase, StepName } from '../../../core/runbook/index.js';
import type { LocalCluster } from '../../../local/local-cluster.js';
import type { LocalSlack } from '../../../local/local-slack.js';
import type { Progress } from '../../progress.js';
import type { DrillController, RoundOutcome, RunbookRequest } from '../controller.js';
import type { DrillNetwork } from '../drill-network.js';
import type { WorkerFleet, WriterFollow } from '../worker-fleet.js';

/** The drill's settings a plan may depend on. */
export interface DrillSettings {
  readonly replicas: number;
  readonly workers: number;
  /** Rows per second per worker. */
  readonly rate: number;
  readonly warmupMs: number;
  readonly confirmMs: number;
}

/** What the drill sets up for a fault (everything optional: the default is today's drill). */
export interface FaultNeeds {
  /** TCP proxies per node and client class (controller, workers, replication) the fault can cut. */
  readonly network?: boolean;
  /** Each worker's agent as its own process (`rds-failover-agent run`) next to its appender, instead of inside it. */
  readonly agentDaemons?: boolean;
  /** The runbook runs in a child process the fault can SIGKILL (controller.crash()). */
  readonly controllerProcess?: boolean;
  /** How the agents follow the writer ('session': as on AWS; see WriterFollow). @default 'file-watch' */
  readonly writerFollow?: WriterFollow;
  /** The fault needs at least this many replicas. */
  readonly minReplicas?: number;
}

/** A check of the fault's own (never promoted twice, every notification accounted for ...): a failed one fails the run. */
export interface FaultCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** One runbook execution of the drill and how it ended. */
export interface RoundReport {
  readonly round: number;
  readonly request: RunbookRequest;
  readonly outcome: RoundOutcome;
  readonly error: { readonly name: string; readonly message: string } | null;
  readonly oldPrimary: string | null;
  readonly newPrimary: string | null;
  /** Every event of this round, as the runbook reported it. */
  readonly events: readonly RunbookEvent[];
  /** Wall-clock ms: the nemesis action this round answers (ctx.inject) and the round's start and end. */
  readonly incidentAt: number;
  readonly startedAt: number;
  readonly endedAt: number;
}

/** What the drill gives a fault's hooks. */
export interface FaultContext {
  readonly cluster: LocalCluster;
  readonly workers: WorkerFleet;
  readonly network: DrillNetwork | undefined;
  readonly slack: LocalSlack;
  readonly controller: DrillController;
  readonly progress: Progress;
  /** The node that was the primary when the drill started. */
  readonly firstPrimary: string;
  readonly confirmMs: number;
  /** Records a nemesis event: timestamped in the report and marked on the chart. */
  nemesis(name: string, detail?: string): void;
  /** A nemesis event that starts an incident: the next runbook's detection and RTO are measured from it. */
  inject(name: string, detail?: string): void;
  /** kill -9 of a node's postmaster (an incident: see inject). */
  killNode(nodeId: string, why: string): Promise<void>;
  /** Waits until the controller's probe stops getting answers from the node (the monitor noticing). */
  waitUntilUnreachable(nodeId: string): Promise<void>;
  /** A failover request as the monitor would start it: triggered by the node's failure, confirmed by the runbook. */
  triggeredFailover(nodeId: string, message: string, force?: boolean): RunbookRequest;
  sleep(ms: number): Promise<void>;
  /**
   * Runs `action` after `ms` (e.g. heal a partition after a seeded time), or, if the runbooks finish first,
   * right after them, before `heal`: a scheduled action always happens, within the load.
   */
  later(ms: number, action: () => void | Promise<void>): void;
  /**
   * Resolves true once a runbook (any round) emitted this step's event, false if the drill's runbooks all
   * ended without it.
   */
  runbookReached(step: StepName, phase: RunbookEventPhase): Promise<boolean>;
  /** Wall-clock ms of the latest nemesis event with this name, if there was one. */
  nemesisTime(name: string): number | undefined;
  /** Rounds run so far (the current one last). */
  readonly rounds: readonly RoundReport[];
}

export interface Fault<P = Record<string, never>> {
  readonly name: string;
  /** One line for --help and the report. */
  readonly summary: string;
  readonly needs?: FaultNeeds;
  /** Every random choice of the fault, from the drill's seeded generator, before anything starts. */
  plan(random: () => number, drill: DrillSettings): P;
  /** With the load running, before the fault (e.g. cut a replica's WAL stream so it falls behind). */
  prepare?(ctx: FaultContext, plan: P): Promise<void>;
  /** The fault itself; returns the first runbook to run. */
  inject(ctx: FaultContext, plan: P): Promise<RunbookRequest>;
  /** Every event of every round, as it happens (e.g. kill the promoted primary when the drain starts). Must not throw or block. */
  onRunbookEvent?(ctx: FaultContext, plan: P, event: RunbookEvent, round: number): void;
  /** A round ended: the next runbook to run, or undefined when the fault is done. @default done */
  afterRunbook?(ctx: FaultContext, plan: P, round: RoundReport): Promise<RunbookRequest | undefined>;
  /** Give back what the fault took (heal the partition, Slack, disk space), with the load still running. */
  heal?(ctx: FaultContext, plan: P): Promise<void>;
  /** The fault's own checks, after the count. */
  verify?(ctx: FaultContext, plan: P): Promise<FaultCheck[]>;
}

/** A fault with its plan type hidden: what the registry holds. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyFault = Fault<any>;

/** A random integer in [min, max] from the seeded generator. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
