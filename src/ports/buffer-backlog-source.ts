/** The latest backlog figures one worker's buffer agent published (CloudWatch in AWS). */
export interface WorkerBacklog {
  readonly workerId: string;
  /** BufferPendingRows: rows acknowledged locally and not yet synced. */
  readonly pendingRows: number | null;
  /** BufferOldestPendingAgeSeconds: age of the oldest of them. */
  readonly oldestPendingAgeSeconds: number | null;
  /** ISO-8601 time of the newest data point. */
  readonly at: string;
}

/** Reads the workers' buffer backlog for a cluster; workers without recent figures are left out. */
export interface BufferBacklogSource {
  read(clusterId: string): Promise<readonly WorkerBacklog[]>;
}
