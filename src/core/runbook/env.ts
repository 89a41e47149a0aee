import type { ClusterControl } from '../../ports/cluster-control.js';
import type { Clock } from '../../ports/clock.js';
import type { DatabaseProbe } from '../../ports/database-probe.js';
import type { FailoverLock } from '../../ports/failover-lock.js';
import type { LineageStore, RunbookMetrics } from '../../ports/lineage-store.js';
import type { Notifier } from '../../ports/notifier.js';
import type { RunbookJournal } from '../../ports/runbook-journal.js';
import type { WorkerControl } from '../../ports/worker-control.js';
import type { RunbookEvent } from './events.js';
import type { RunbookConfig } from './state.js';

/** Everything the runbook touches. In AWS each Lambda gets real adapters only for the ports its steps use. */
export interface RunbookPorts {
  readonly cluster: ClusterControl;
  readonly probe: DatabaseProbe;
  readonly workers: WorkerControl;
  /** The nodes' lineage tables: read in preflight and fork point, written after promotion, confirmations in verify. */
  readonly lineage: LineageStore;
  readonly notifier: Notifier;
  readonly lock: FailoverLock;
  readonly journal: RunbookJournal;
  readonly clock: Clock;
  /** Unconfirmed workers as metrics (CloudWatch in AWS); absent locally. */
  readonly metrics?: RunbookMetrics;
  /** Runs one action: what the adapters keep for its duration (database sessions) is released when it ends. */
  readonly actionScope?: <T>(run: () => Promise<T>) => Promise<T>;
}

export interface RunbookEnv {
  readonly ports: RunbookPorts;
  readonly config: RunbookConfig;
  /** The cluster this runbook acts on (the lock and journal key). */
  readonly clusterId: string;
  /** Every event, as it happens (CLI progress, drill timeline, Lambda logs). Must not throw. */
  readonly onEvent?: (event: RunbookEvent) => void;
  /** Notification delivery problems (never thrown). */
  readonly onNotifyError?: (error: unknown) => void;
}

/** A port a Lambda was not given: calling it is a wiring bug, said plainly. */
export function unavailablePort<T extends object>(name: string, where: string): T {
  return new Proxy({} as T, {
    get(_target, property) {
      if (property === 'then') return undefined; // not a thenable
      return () => {
        throw new Error(`${where}: port ${name}.${String(property)} is not available in this function (its IAM policy does not allow it)`);
      };
    },
  });
}
