/**
 * Reads the workers' buffer backlog (published by the agents) from CloudWatch: one GetMetricData call with three
 * SEARCH expressions over the cluster's workers (pending rows, oldest pending age, whether the worker has not yet
 * confirmed the newest epoch), each series labelled with its WorkerId by a dynamic label.
 */
import { CloudWatchClient, GetMetricDataCommand, ScanBy, type MetricDataQuery, type MetricDataResult } from '@aws-sdk/client-cloudwatch';
import { BufferMetric, Dimension, METRIC_NAMESPACE } from '../core/metric-names.js';
import type { BufferBacklogSource, WorkerBacklog } from '../ports/buffer-backlog-source.js';

export interface CloudWatchBufferBacklogOptions {
  /** How far back to look for a worker's latest data point; workers silent for longer are left out. @default 600 */
  readonly lookbackSeconds?: number;
  readonly now?: () => Date;
}

const QUERIES = [
  { id: 'pending', metric: BufferMetric.PendingRows },
  { id: 'age', metric: BufferMetric.OldestPendingAgeSeconds },
  { id: 'unconfirmed', metric: BufferMetric.WorkerUnconfirmed },
] as const;

export class CloudWatchBufferBacklog implements BufferBacklogSource {
  private readonly lookbackSeconds: number;
  private readonly now: () => Date;

  constructor(
    private readonly client: CloudWatchClient = new CloudWatchClient({}),
    options: CloudWatchBufferBacklogOptions = {},
  ) {
    this.lookbackSeconds = options.lookbackSeconds ?? 600;
    this.now = options.now ?? (() => new Date());
  }

  async read(clusterId: string): Promise<readonly WorkerBacklog[]> {
    const end = this.now();
    const start = new Date(end.getTime() - this.lookbackSeconds * 1000);
    const queries: MetricDataQuery[] = QUERIES.map(({ id, metric }) => ({
      Id: id,
      Expression: `SEARCH('{${METRIC_NAMESPACE},${Dimension.Cluster},${Dimension.Worker}} MetricName="${metric}" ${Dimension.Cluster}="${searchLiteral(clusterId)}"', 'Maximum', 60)`,
      Label: `${id} \${PROP('Dim.${Dimension.Worker}')}`,
      ReturnData: true,
    }));
    const results: MetricDataResult[] = [];
    let nextToken: string | undefined;
    do {
      const out = await this.client.send(new GetMetricDataCommand({ MetricDataQueries: queries, StartTime: start, EndTime: end, ScanBy: ScanBy.TIMESTAMP_DESCENDING, NextToken: nextToken }));
      results.push(...(out.MetricDataResults ?? []));
      nextToken = out.NextToken;
    } while (nextToken);

    // Pages may split one series; keep the newest point per (figure, worker).
    const newest = new Map<string, { value: number; at: number }>();
    for (const result of results) {
      const latest = latestPoint(result);
      if (!latest || !/^(pending|age|unconfirmed) .+$/.test(result.Label ?? '')) continue;
      const seen = newest.get(result.Label!);
      if (!seen || latest.at > seen.at) newest.set(result.Label!, latest);
    }
    const workers = new Map<string, { pendingRows: number | null; oldestPendingAgeSeconds: number | null; unconfirmed: boolean | null; at: number }>();
    for (const [label, point] of newest) {
      const space = label.indexOf(' ');
      const id = label.slice(0, space);
      const workerId = label.slice(space + 1);
      const entry = workers.get(workerId) ?? { pendingRows: null, oldestPendingAgeSeconds: null, unconfirmed: null, at: 0 };
      if (id === 'pending') entry.pendingRows = point.value;
      else if (id === 'age') entry.oldestPendingAgeSeconds = point.value;
      else entry.unconfirmed = point.value > 0;
      entry.at = Math.max(entry.at, point.at);
      workers.set(workerId, entry);
    }
    return [...workers.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([workerId, e]) => ({ workerId, pendingRows: e.pendingRows, oldestPendingAgeSeconds: e.oldestPendingAgeSeconds, unconfirmed: e.unconfirmed, at: new Date(e.at).toISOString() }));
  }
}

/** The newest data point of a series (pages may arrive in any order, so pick by timestamp). */
function latestPoint(result: MetricDataResult): { value: number; at: number } | null {
  const stamps = result.Timestamps ?? [];
  const values = result.Values ?? [];
  let best: { value: number; at: number } | null = null;
  for (let i = 0; i < Math.min(stamps.length, values.length); i += 1) {
    const at = new Date(stamps[i]!).getTime();
    if (!best || at > best.at) best = { value: values[i]!, at };
  }
  return best;
}

/** Cluster ids are [a-z0-9-], but never let a value break out of the search string. */
function searchLiteral(value: string): string {
  return value.replace(/[\\"']/g, '');
}
