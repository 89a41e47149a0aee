/**
 * What a fault's hooks act through during one drill run (the FaultContext), and the bookkeeping behind it: the
 * current incident (what the next runbook answers), nemesis times, the runbook events seen so far (for
 * runbookReached) and the actions scheduled with `later`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunbookEvent } from '../../core/runbook/index.js';
import type { LocalCluster } from '../../local/local-cluster.js';
import { PgDatabaseProbe } from '../../pg/probe.js';
import type { FaultContext } from './faults/fault.js';
import type { DrillEventKind } from './report.js';

/** The parts of the context the drill hands over as they are, and what the runtime needs besides. */
export interface FaultRuntimeOptions extends Pick<FaultContext, 'cluster' | 'workers' | 'network' | 'slack' | 'controller' | 'progress' | 'firstPrimary' | 'confirmMs' | 'rounds'> {
  /** The cluster as the controller reaches it: the monitor probes through it. */
  readonly controllerCluster: LocalCluster;
  readonly probeIntervalMs: number;
  readonly mark: (kind: DrillEventKind, name: string, detail?: string, at?: number) => void;
}

export interface Incident {
  /** Wall-clock ms of the nemesis action. */
  readonly at: number;
  readonly cause: string;
}

export class FaultRuntime {
  readonly ctx: FaultContext;
  private current: Incident = { at: Date.now(), cause: 'none' };
  private readonly nemesisTimes = new Map<string, number>();
  private readonly events: RunbookEvent[] = [];
  private readonly waiters: { matches: (e: RunbookEvent) => boolean; resolve: (seen: boolean) => void }[] = [];
  private readonly scheduled: { timer: NodeJS.Timeout; run: () => Promise<void> }[] = [];

  constructor(o: FaultRuntimeOptions) {
    const monitor = new PgDatabaseProbe((id) => o.controllerCluster.clientConfig(id), { connectTimeoutMs: 500 });
    const nemesis = (name: string, detail?: string, at = Date.now()) => {
      this.nemesisTimes.set(name, at);
      o.mark('nemesis', name, detail, at);
      o.progress.event('info', 'nemesis', detail ? `${name}: ${detail}` : name);
    };
    this.ctx = {
      cluster: o.cluster,
      workers: o.workers,
      network: o.network,
      slack: o.slack,
      controller: o.controller,
      progress: o.progress,
      firstPrimary: o.firstPrimary,
      confirmMs: o.confirmMs,
      rounds: o.rounds,
      nemesis: (name, detail) => nemesis(name, detail),
      inject: (name, detail) => {
        this.current = { at: Date.now(), cause: name };
        nemesis(name, detail);
      },
      killNode: async (nodeId, why) => {
        const at = Date.now();
        await o.cluster.stopNode(nodeId, 'kill');
        this.current = { at, cause: why };
        nemesis(why, `kill -9 ${nodeId}`, at);
      },
      waitUntilUnreachable: async (nodeId) => {
        while ((await monitor.probe(nodeId)).reachable) await sleep(o.probeIntervalMs);
        o.mark('drill', `monitor saw ${nodeId === o.firstPrimary ? 'primary' : nodeId} down`);
      },
      triggeredFailover: (nodeId, message, force) => ({
        input: { mode: 'failover', ...(force ? { force: true } : {}), trigger: { source: 'rds-event', sourceId: nodeId, message } },
      }),
      sleep: (ms) => sleep(ms),
      later: (ms, action) => {
        let done: Promise<void> | undefined;
        const run = () => (done ??= Promise.resolve().then(action));
        // A failure surfaces when runbooksDone awaits it; the timer's own call must not leave it unhandled.
        this.scheduled.push({ timer: setTimeout(() => run().catch(() => undefined), ms), run });
      },
      nemesisTime: (name) => this.nemesisTimes.get(name),
      runbookReached: (step, phase) => {
        const matches = (e: RunbookEvent) => e.step === step && e.phase === phase;
        if (this.events.some(matches)) return Promise.resolve(true);
        return new Promise((resolve) => this.waiters.push({ matches, resolve }));
      },
    };
  }

  /** The incident the next runbook answers: the latest nemesis action that needs a failover. */
  get incident(): Incident {
    return this.current;
  }

  /** Every runbook event, as it happens. */
  recordEvent(event: RunbookEvent): void {
    this.events.push(event);
    for (const w of this.waiters.filter((x) => x.matches(event))) {
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve(true);
    }
  }

  /** The runbooks are over: what waited for a step that never came is told so, and every scheduled action happens now. */
  async runbooksDone(): Promise<void> {
    for (const w of this.waiters.splice(0)) w.resolve(false);
    for (const s of this.scheduled) clearTimeout(s.timer);
    await Promise.all(this.scheduled.map((s) => s.run()));
  }

  /** Nothing scheduled may fire after the drill ended. */
  dispose(): void {
    for (const s of this.scheduled) clearTimeout(s.timer);
  }
}
