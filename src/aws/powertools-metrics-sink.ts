/**
 * Lag metrics as CloudWatch Embedded Metric Format through Powertools: one EMF document per replica per sample,
 * stamped with the sample's time, dimensions exactly ClusterId + ReplicaId (the alarms and the dashboard query
 * those; Powertools' default `service` dimension is removed so the dimension set matches).
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { BufferMetric, Dimension, LagMetric, METRIC_NAMESPACE, RunbookMetric } from '../core/metric-names.js';
import type { RunbookMetrics } from '../ports/lineage-store.js';
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

/**
 * The verify step's figures as EMF: UnconfirmedWorkers per cluster, and WorkerUnconfirmed (1 or 0) per worker, the
 * metric the agent itself sets back to 0 once it confirmed: each worker's alarm holds until then (missing data keeps it).
 */
export class PowertoolsRunbookMetrics implements RunbookMetrics {
  private readonly metrics: Metrics;

  constructor(metrics?: Metrics) {
    this.metrics = metrics ?? new Metrics({ namespace: METRIC_NAMESPACE, serviceName: 'runbook' });
    this.metrics.clearDefaultDimensions();
  }

  async unconfirmedWorkers(clusterId: string, _epochId: string, workers: { readonly confirmed: readonly string[]; readonly unconfirmed: readonly string[] }): Promise<void> {
    this.metrics.addDimension(Dimension.Cluster, clusterId);
    this.metrics.addMetric(RunbookMetric.UnconfirmedWorkers, MetricUnit.Count, workers.unconfirmed.length);
    this.metrics.publishStoredMetrics();
    for (const [list, value] of [[workers.unconfirmed, 1], [workers.confirmed, 0]] as const) {
      for (const workerId of list) {
        this.metrics.addDimension(Dimension.Cluster, clusterId);
        this.metrics.addDimension(Dimension.Worker, workerId);
        this.metrics.addMetric(BufferMetric.WorkerUnconfirmed, MetricUnit.Count, value);
        this.metrics.publishStoredMetrics();
      }
    }
  }
}
