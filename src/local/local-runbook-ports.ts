import path from 'node:path';
import type { RunbookPorts } from '../core/runbook/env.js';
import { systemClock, type Clock } from '../ports/clock.js';
import type { Notifier } from '../ports/notifier.js';
import { PgLineageStore } from '../pg/lineage.js';
import { NodeSessions } from '../pg/node-sessions.js';
import { PgDatabaseProbe } from '../pg/probe.js';
import { FileRunbookJournal } from './file-runbook-journal.js';
import { LocalFailoverLock } from './local-failover-lock.js';
import type { LocalCluster } from './local-cluster.js';
import { LocalClusterControl } from './local-cluster-control.js';
import { LocalWorkerControl, type LocalWorker } from './local-worker-control.js';

export interface LocalRunbookPortsOptions {
  readonly cluster: LocalCluster;
  readonly workers: readonly LocalWorker[];
  /** Where the lock and the journal live (a re-run resumes from here). */
  readonly stateDir: string;
  /** Nodes never to promote. */
  readonly noFailover?: readonly string[];
  /** Where runbook notifications go. @default one line each on stderr (there is no Slack locally) */
  readonly notifier?: Notifier;
  readonly clock?: Clock;
  readonly connectTimeoutMs?: number;
  /** The controller may kill a node that does not answer (LocalClusterControl killUnreachable). @default true */
  readonly killUnreachable?: boolean;
}

/** Every port the runbook needs, over a local cluster and local worker buffers: what the CLI --local and the drill run. */
export function createLocalRunbookPorts(options: LocalRunbookPortsOptions): RunbookPorts {
  const clock = options.clock ?? systemClock;
  const connectTimeoutMs = options.connectTimeoutMs ?? 1_000;
  const sessions = new NodeSessions();
  return {
    cluster: new LocalClusterControl(options.cluster, { noFailover: options.noFailover, connectTimeoutMs, killUnreachable: options.killUnreachable }),
    probe: new PgDatabaseProbe((id) => options.cluster.clientConfig(id), { connectTimeoutMs, sessions }),
    workers: new LocalWorkerControl(options.workers),
    lineage: new PgLineageStore((id) => options.cluster.clientConfig(id), { connectTimeoutMs, sessions }),
    actionScope: (run) => sessions.within(run),
    notifier: options.notifier ?? stderrNotifier,
    lock: new LocalFailoverLock(path.join(options.stateDir, 'locks'), clock),
    journal: new FileRunbookJournal(path.join(options.stateDir, 'journal')),
    clock,
  };
}

/** Locally there is no Slack: runbook notifications go to stderr as one line each. */
const stderrNotifier: Notifier = {
  async notify(n) {
    process.stderr.write(`[notify ${n.severity}] ${n.title}\n`);
  },
};
