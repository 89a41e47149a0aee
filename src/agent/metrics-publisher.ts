import { CloudWatchClient, PutMetricDataCommand, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import { BufferMetric } from '../core/metric-names.js';
import type { AgentConfig } from './config.js';
import type { BufferStatus } from './status.js';

/** The buffer's CloudWatch metrics for one status sample; `syncErrors` counts failures since the last publish. */
export function bufferMetricData(status: BufferStatus, syncErrors: number, dimensions: Readonly<Record<string, string>>, at: Date): MetricDatum[] {
  const dims = Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value }));
  const datum = (MetricName: string, Value: number, Unit: MetricDatum['Unit']): MetricDatum => ({ MetricName, Dimensions: dims, Timestamp: at, Value, Unit });
  return [
    datum(BufferMetric.PendingRows, status.pendingRows, 'Count'),
    datum(BufferMetric.OldestPendingAgeSeconds, status.oldestPendingAgeSeconds ?? 0, 'Seconds'),
    datum(BufferMetric.SyncedUnprunableRows, status.syncedRows, 'Count'),
    datum(BufferMetric.FileBytes, status.fileBytes, 'Bytes'),
    datum(BufferMetric.SyncErrors, syncErrors, 'Count'),
  ];
}

/** Publishes the buffer's metrics with PutMetricData (the daemon calls it every metrics.intervalSeconds). */
export class MetricsPublisher {
  private publishedErrors = 0;

  constructor(
    private readonly settings: AgentConfig['metrics'],
    private readonly client: CloudWatchClient = new CloudWatchClient({}),
  ) {}

  /** `totalSyncErrors` is the engine's running count; the metric gets the increase since the last publish. */
  async publish(status: BufferStatus, totalSyncErrors: number, at = new Date()): Promise<void> {
    const newErrors = Math.max(0, totalSyncErrors - this.publishedErrors);
    await this.client.send(
      new PutMetricDataCommand({ Namespace: this.settings.namespace, MetricData: bufferMetricData(status, newErrors, this.settings.dimensions, at) }),
    );
    this.publishedErrors = totalSyncErrors;
  }
}
