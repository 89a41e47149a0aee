import { CloudWatchClient, PutMetricDataCommand, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import { BufferMetric } from '../core/metric-names.js';
import type { AgentConfig } from './config.js';
import type { BufferStatus } from './status.js';

/** Counts since the last publish. */
export interface EngineCounts {
  readonly syncErrors: number;
  readonly writerRefusals: number;
}

/** The buffer's CloudWatch metrics for one status sample; `counts` are the increases since the last publish. */
export function bufferMetricData(status: BufferStatus, counts: EngineCounts, dimensions: Readonly<Record<string, string>>, at: Date): MetricDatum[] {
  const dims = Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value }));
  const datum = (MetricName: string, Value: number, Unit: MetricDatum['Unit']): MetricDatum => ({ MetricName, Dimensions: dims, Timestamp: at, Value, Unit });
  return [
    datum(BufferMetric.PendingRows, status.pendingRows, 'Count'),
    datum(BufferMetric.OldestPendingAgeSeconds, status.oldestPendingAgeSeconds ?? 0, 'Seconds'),
    datum(BufferMetric.SyncedUnprunableRows, status.syncedRows, 'Count'),
    datum(BufferMetric.FileBytes, status.fileBytes, 'Bytes'),
    datum(BufferMetric.SyncErrors, counts.syncErrors, 'Count'),
    datum(BufferMetric.WriterRefusals, counts.writerRefusals, 'Count'),
    // 0 once this worker confirmed the newest epoch it knows: clears the runbook's per-worker alarm.
    datum(BufferMetric.WorkerUnconfirmed, unconfirmed(status) ? 1 : 0, 'Count'),
  ];
}

function unconfirmed(status: BufferStatus): boolean {
  return status.lineage.resendDue || (status.lineage.epoch !== null && status.lineage.confirmedEpoch !== status.lineage.epoch);
}

/** Publishes the buffer's metrics with PutMetricData (the daemon calls it every metrics.intervalSeconds). */
export class MetricsPublisher {
  private published: EngineCounts = { syncErrors: 0, writerRefusals: 0 };

  constructor(
    private readonly settings: AgentConfig['metrics'],
    private readonly client: CloudWatchClient = new CloudWatchClient({}),
  ) {}

  /** `totals` are the engine's running counts; the metrics get the increases since the last publish. */
  async publish(status: BufferStatus, totals: EngineCounts, at = new Date()): Promise<void> {
    const increase = {
      syncErrors: Math.max(0, totals.syncErrors - this.published.syncErrors),
      writerRefusals: Math.max(0, totals.writerRefusals - this.published.writerRefusals),
    };
    await this.client.send(
      new PutMetricDataCommand({ Namespace: this.settings.namespace, MetricData: bufferMetricData(status, increase, this.settings.dimensions, at) }),
    );
    this.published = { syncErrors: totals.syncErrors, writerRefusals: totals.writerRefusals };
  }
}
