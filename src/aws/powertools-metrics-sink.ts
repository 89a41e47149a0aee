/**
 * Lag metrics as CloudWatch Embedded Metric Format through Powertools: one EMF document per replica per sample,
 * stamped with the sample's time, dimensions exactly ClusterId + ReplicaId (the alarms and the dashboard query
 * those; Powertools' default `service` dimension is removed so the dimension set matches).
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Dimension, LagMetric, METRIC_NAMESPACE } from '../core/metric-names.js';
import type { LagSample, MetricsSink } from '../ports/metrics-sink.js';

export class PowertoolsMetricsSink implements MetricsSink {
  private readonly metrics: Metrics;

  constructor(metrics?: Metrics) {
    this.metrics = metrics ?? new Metrics({ namespace: METRIC_NAMESPACE, serviceName: 'lag-monitor' });
    this.metrics.clearDefaultDimensions();
  }

  recordLag(sample: LagSample): void {
    if (sample.lagSeconds === null && sample.lagBytes === null) return;
    this.metrics.addDimension(Dimension.Cluster, sample.clusterId);
    this.metrics.addDimension(Dimension.Replica, sample.replicaId);
    this.metrics.setTimestamp(sample.at);
    if (sample.lagSeconds !== null) this.metrics.addMetric(LagMetric.Seconds, MetricUnit.Seconds, sample.lagSeconds);
    if (sample.lagBytes !== null) this.metrics.addMetric(LagMetric.Bytes, MetricUnit.Bytes, sample.lagBytes);
    // Each sample has its own timestamp, so each goes out as its own document.
    this.metrics.publishStoredMetrics();
  }

  async flush(): Promise<void> {
    // recordLag publishes as it goes; nothing is buffered.
  }
}
