import type { Epoch } from '../core/lineage.js';

/** A worker's newest confirmation that it converged on an epoch (rds_failover.worker_epochs). */
export interface WorkerConfirmation {
  readonly workerId: string;
  readonly epochId: string;
  readonly rowsResent: number;
  /** ISO-8601. */
  readonly confirmedAt: string;
}

/** The lineage tables of the cluster's nodes (src/pg/lineage.ts over the runbook's database sessions). */
export interface LineageStore {
  /** The node's epochs (its own chain); null when the node has no lineage schema. Throws when it does not answer. */
  read(nodeId: string): Promise<Epoch[] | null>;
  /** Records an epoch on a primary (creating the schema if missing); a no-op when it is there. Returns it as stored. */
  record(nodeId: string, epoch: Omit<Epoch, 'createdAt'>): Promise<Epoch>;
  /** Each worker's newest confirmation, as the node has them. */
  confirmations(nodeId: string): Promise<WorkerConfirmation[]>;
}

/** Optional runbook metrics (CloudWatch in AWS): which workers have not confirmed the promotion's epoch. */
export interface RunbookMetrics {
  unconfirmedWorkers(clusterId: string, epochId: string, workers: { readonly confirmed: readonly string[]; readonly unconfirmed: readonly string[] }): Promise<void>;
}
