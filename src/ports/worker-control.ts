export interface WorkerRef {
  /** EC2 instance id, or the local worker's name. */
  readonly id: string;
}

/**
 * A drain: the worker converges on the writer's lineage and re-sends every row synced outside the newest epoch's
 * history, plus every pending row. With `epochId` (the runbook's promotion), the writer must be on that epoch or
 * a descendant of it.
 */
export interface DrainRequest {
  readonly epochId?: string;
}

/** The JSON summary `rds-failover-agent drain --json` prints. */
export interface DrainSummary {
  /** The epoch the worker converged on (and confirmed, when its config names the worker). */
  readonly epochId: string;
  readonly examined: number;
  readonly resent: number;
  readonly inserted: number;
  readonly alreadyPresent: number;
  readonly remainingPending: number;
  /**
   * Rows the writer refused for their content (e.g. another unique constraint meeting a row written on the new
   * primary): kept in the buffer as 'rejected', with PostgreSQL's error (`rds-failover-agent status`).
   */
  readonly rejected: number;
}

export type DrainStatus =
  | { readonly state: 'pending' }
  | { readonly state: 'done'; readonly summary: DrainSummary }
  | { readonly state: 'failed'; readonly error: string };

/** Runs the agent's drain on every worker (SSM SendCommand in AWS, the agent CLI locally). */
export interface WorkerControl {
  listWorkers(): Promise<readonly WorkerRef[]>;
  /** Start a drain on one worker; returns a handle to poll (SSM command id, local job id). */
  startDrain(workerId: string, request: DrainRequest): Promise<string>;
  drainStatus(workerId: string, handle: string): Promise<DrainStatus>;
}
