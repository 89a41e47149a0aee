/**
 * CloudWatch metric names shared by the producers (agent, lag monitor, runbook) and the consumers
 * (alarms, dashboard). One namespace; dimensions ClusterId plus WorkerId or ReplicaId.
 */
export const METRIC_NAMESPACE = 'RdsFailover';

export const BufferMetric = {
  PendingRows: 'BufferPendingRows',
  OldestPendingAgeSeconds: 'BufferOldestPendingAgeSeconds',
  SyncedUnprunableRows: 'BufferSyncedUnprunableRows',
  FileBytes: 'BufferFileBytes',
  SyncErrors: 'BufferSyncErrors',
  /** Writer sessions the agent refused for their lineage (stale or zombie primary). */
  WriterRefusals: 'BufferWriterRefusals',
  /** 1 while the agent knows an epoch it has not confirmed yet (its resend scan is due or running), else 0. */
  WorkerUnconfirmed: 'WorkerUnconfirmed',
} as const;

export const RunbookMetric = {
  /** Per cluster, after a failover's verify step: workers that did not confirm the new epoch in time. */
  UnconfirmedWorkers: 'UnconfirmedWorkers',
} as const;

export const LagMetric = {
  Seconds: 'ReplicationLagSeconds',
  Bytes: 'ReplicationLagBytes',
} as const;

export const Dimension = {
  Cluster: 'ClusterId',
  Worker: 'WorkerId',
  Replica: 'ReplicaId',
} as const;
