/** The latest backlog figures one worker's buffer agent published (CloudWatch in AWS). */
export interface WorkerBacklog {
  readonly workerId: string;
  /** BufferPendingRows: rows acknowledged locally and not yet synced. */
  readonly pendingRows: number | null;
  /** BufferOldestPendingAgeSeconds: age of the oldest of them. */
  readonly oldestPendingAgeSeconds: number | null;
  /**
   * WorkerUnconfirmed: true while the worker has not confirmed the newest epoch it knows (it has not yet re-sent
   * what a failover may have lost: set by the runbook's verify, cleared by the agent); null when not published.
   */
  readonly unconfirmed?: boolean | null;
  /** ISO-8601 time of the newest data point. */
  readonly at: string;
}

/** Reads the workers' buffer backlog for a cluster; workers without recent figures are left out. */
export interface BufferBacklogSource {
  read(clusterId: string): Promise<readonly WorkerBacklog[]>;
}
