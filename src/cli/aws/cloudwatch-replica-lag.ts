/**
 * The latest replication lag the lag monitor published for each replica (ReplicationLagSeconds / ReplicationLagBytes,
 * dimensions exactly ClusterId + ReplicaId: src/aws/powertools-metrics-sink.ts). One GetMetricData call with one
 * MetricStat per figure and replica: the replica ids are known from the topology, so no SEARCH is needed.
 */
import { GetMetricDataCommand, ScanBy, type CloudWatchClient, type MetricDataQuery, type MetricDataResult } from '@aws-sdk/client-cloudwatch';
import { Dimension, LagMetric, METRIC_NAMESPACE } from '../../core/metric-names.js';

export interface PublishedLag {
  readonly replicaId: string;
  readonly lagSeconds: number | null;
  readonly lagBytes: number | null;
  /** ISO-8601 time of the newest data point; null when the monitor published nothing in the lookback. */
  readonly at: string | null;
}

export interface ReadReplicaLagOptions {
  /** @default 600 */
  readonly lookbackSeconds?: number;
  readonly now?: Date;
}

const FIGURES = [
  { prefix: 's', metric: LagMetric.Seconds, field: 'lagSeconds' },
  { prefix: 'b', metric: LagMetric.Bytes, field: 'lagBytes' },
] as const;

export async function readReplicaLag(
  client: CloudWatchClient,
  clusterId: string,
  replicaIds: readonly string[],
  options: ReadReplicaLagOptions = {},
): Promise<PublishedLag[]> {
  if (replicaIds.length === 0) return [];
  const end = options.now ?? new Date();
  const start = new Date(end.getTime() - (options.lookbackSeconds ?? 600) * 1000);
  const queries: MetricDataQuery[] = replicaIds.flatMap((replicaId, i) =>
    FIGURES.map(({ prefix, metric }) => ({
      Id: `${prefix}${i}`,
      MetricStat: {
        Metric: {
          Namespace: METRIC_NAMESPACE,
          MetricName: metric,
          Dimensions: [
            { Name: Dimension.Cluster, Value: clusterId },
            { Name: Dimension.Replica, Value: replicaId },
          ],
        },
        Period: 60,
        Stat: 'Maximum',
      },
      ReturnData: true,
    })),
  );
  const results: MetricDataResult[] = [];
  let nextToken: string | undefined;
  do {
    const out = await client.send(
      new GetMetricDataCommand({ MetricDataQueries: queries, StartTime: start, EndTime: end, ScanBy: ScanBy.TIMESTAMP_DESCENDING, NextToken: nextToken }),
    );
    results.push(...(out.MetricDataResults ?? []));
    nextToken = out.NextToken;
  } while (nextToken);

  return replicaIds.map((replicaId, i) => {
    const figures: { lagSeconds: number | null; lagBytes: number | null } = { lagSeconds: null, lagBytes: null };
    let at: number | null = null;
    for (const { prefix, field } of FIGURES) {
      const point = newest(results.filter((r) => r.Id === `${prefix}${i}`));
      if (!point) continue;
      figures[field] = point.value;
      at = Math.max(at ?? 0, point.at);
    }
    return { replicaId, ...figures, at: at === null ? null : new Date(at).toISOString() };
  });
}

/** Pages may split a series and arrive in any order: pick the newest point by timestamp. */
function newest(results: readonly MetricDataResult[]): { value: number; at: number } | null {
  let best: { value: number; at: number } | null = null;
  for (const r of results) {
    const stamps = r.Timestamps ?? [];
    const values = r.Values ?? [];
    for (let k = 0; k < Math.min(stamps.length, values.length); k++) {
      const at = new Date(stamps[k]!).getTime();
      if (!best || at > best.at) best = { value: values[k]!, at };
    }
  }
  return best;
}
