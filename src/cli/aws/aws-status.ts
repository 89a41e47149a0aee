/**
 * `status` against AWS: the topology the runbook acts on (SSM writer + topology parameters, DescribeDBInstances),
 * the replication lag and the buffer backlog the lag monitor and the agents publish to CloudWatch, judged by the
 * same policies the monitor alarms with. The CLI never connects to the databases (they have no public endpoint).
 */
import { CloudWatchBufferBacklog } from '../../aws/cloudwatch-buffer-backlog.js';
import { classifyReplica } from '../../core/lag-policy.js';
import { worstState, workerStatus, type StatusNode, type StatusReport, type StatusState, type StatusWorker } from '../commands/status.js';
import type { AwsTarget } from './aws-target.js';
import { readAwsTopology, type AwsInstanceView } from './aws-topology.js';
import { readReplicaLag, type PublishedLag } from './cloudwatch-replica-lag.js';

/** RDS statuses in which the instance serves connections. */
const SERVING = new Set([
  'available',
  'backing-up',
  'modifying',
  'storage-optimization',
  'configuring-enhanced-monitoring',
  'configuring-log-exports',
  'configuring-iam-database-auth',
]);

const LOOKBACK_SECONDS = 600;

export async function collectAwsStatus(target: AwsTarget, thresholds: StatusReport['thresholds'], now: () => Date = () => new Date()): Promise<StatusReport> {
  const clusterId = await target.clusterId();
  const [writerParameterName, topologyParameterName] = await Promise.all([target.writerParameterName(), target.topologyParameterName()]);
  const topology = await readAwsTopology({ ssm: target.ssm(), rds: target.rds() }, { writerParameterName, topologyParameterName });
  const sampledAt = now();
  const replicaIds = topology.instances.filter((i) => i.instanceId !== topology.writerId).map((i) => i.instanceId);
  const [lags, backlog] = await Promise.all([
    readReplicaLag(target.cloudWatch(), clusterId, replicaIds, { lookbackSeconds: LOOKBACK_SECONDS, now: sampledAt }),
    new CloudWatchBufferBacklog(target.cloudWatch(), { lookbackSeconds: LOOKBACK_SECONDS, now: () => sampledAt }).read(clusterId),
  ]);
  const writer = topology.instances.find((i) => i.instanceId === topology.writerId);
  const writerServes = writer !== undefined && writer.role === 'primary' && SERVING.has(writer.status);
  const primaries = topology.instances.filter((i) => i.role === 'primary' && SERVING.has(i.status));
  const nodes = topology.instances.map((instance) =>
    instance.instanceId === topology.writerId
      ? writerNode(instance, primaries.length)
      : replicaNode(instance, topology.writerId, lags.find((l) => l.replicaId === instance.instanceId), thresholds),
  );
  const workers = backlog.map((b) => withConfirmation(workerStatus(b, thresholds.backlog), b.unconfirmed ?? null));
  const writerMissing: StatusState[] = writer ? [] : ['CRIT'];
  return {
    source: 'aws',
    clusterId,
    writerId: topology.writerId,
    primaryId: writerServes && primaries.length === 1 ? topology.writerId : null,
    state: worstState([...writerMissing, ...nodes.map((n) => n.state), ...workers.map((w) => w.state)]),
    nodes,
    workers,
    ...(workers.length === 0 ? { workersNote: `no buffer metrics in CloudWatch for ${clusterId} in the last ${LOOKBACK_SECONDS / 60} minutes` } : {}),
    thresholds,
    sampledAt: sampledAt.toISOString(),
  };
}

/** The agent's WorkerUnconfirmed figure: a worker that has not confirmed the newest epoch is a warning until it does. */
function withConfirmation(row: StatusWorker, unconfirmed: boolean | null): StatusWorker {
  if (unconfirmed === null) return row;
  if (!unconfirmed) return { ...row, confirmed: true };
  const detail = 'has not confirmed the newest epoch: its agent has not yet re-sent what the failover may have lost (WorkerUnconfirmed)';
  return { ...row, confirmed: false, state: worstState([row.state, 'WARN']), detail: row.detail ? `${row.detail}; ${detail}` : detail };
}

function base(i: AwsInstanceView) {
  return { id: i.instanceId, role: i.role, writer: false, endpoint: i.endpoint, status: i.status, timeline: null, lsn: null };
}

function writerNode(i: AwsInstanceView, servingPrimaries: number): StatusNode {
  const serving = SERVING.has(i.status);
  let state: StatusState = 'OK';
  let detail: string | null = null;
  if (!serving) [state, detail] = ['UNREACHABLE', `RDS status ${i.status}`];
  else if (i.role !== 'primary') [state, detail] = ['CRIT', `the writer endpoint points at a read replica of ${i.sourceId}`];
  else if (servingPrimaries > 1) [state, detail] = ['CRIT', 'another instance of the topology is a standalone primary too'];
  return { ...base(i), writer: true, lagSeconds: null, lagBytes: null, state, detail };
}

function replicaNode(i: AwsInstanceView, writerId: string, lag: PublishedLag | undefined, thresholds: StatusReport['thresholds']): StatusNode {
  const serving = SERVING.has(i.status);
  const lagSeconds = lag?.lagSeconds ?? null;
  const lagBytes = lag?.lagBytes ?? null;
  if (i.role === 'primary') {
    return { ...base(i), lagSeconds, lagBytes, state: serving ? 'CRIT' : 'UNREACHABLE', detail: `standalone instance that is not the writer (${writerId}): promoted outside the runbook?` };
  }
  const state =
    classifyReplica(
      {
        nodeId: i.instanceId,
        reachable: serving,
        ...(serving ? {} : { error: `RDS status ${i.status}` }),
        streaming: i.sourceId === writerId,
        walSenderState: null,
        replayPaused: false,
        lagSeconds,
        lagBytes,
        secondsSource: 'unknown',
      },
      'OK',
      thresholds.lag,
    ) ?? 'UNKNOWN';
  const detail = !serving
    ? `RDS status ${i.status}`
    : i.sourceId !== writerId
      ? `replicates from ${i.sourceId}, not from the writer ${writerId}`
      : lag?.at
        ? `lag as of ${lag.at}`
        : `no lag published in the last ${LOOKBACK_SECONDS / 60} minutes: is the lag monitor running?`;
  return { ...base(i), lagSeconds, lagBytes, state, detail };
}
