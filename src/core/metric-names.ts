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
