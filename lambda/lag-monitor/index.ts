/**
 * lag-monitor: invoked every minute by EventBridge; samples the cluster every S seconds for most of the minute.
 * Thin: reads its environment, wires the AWS and pg adapters, runs src/core/monitor.ts, returns a summary.
 */
import type { Context, ScheduledEvent } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { RDSClient } from '@aws-sdk/client-rds';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SNSClient } from '@aws-sdk/client-sns';
import { loadDbCredentials } from '../../src/aws/db-credentials.js';
import { CloudWatchBufferBacklog } from '../../src/aws/cloudwatch-buffer-backlog.js';
import { DynamoDbAlertStateStore } from '../../src/aws/dynamodb-alert-state-store.js';
import { PowertoolsMetricsSink } from '../../src/aws/powertools-metrics-sink.js';
import { describeInstanceEndpoints } from '../../src/aws/rds-instance-endpoints.js';
import { SnsNotifier } from '../../src/aws/sns-notifier.js';
import { parseLagMonitorEnvironment } from '../../src/core/monitor-environment.js';
import { runMonitor } from '../../src/core/monitor.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';
import { systemClock } from '../../src/ports/clock.js';

const logger = new Logger({ serviceName: 'lag-monitor' });
const clients = {
  secrets: new SecretsManagerClient({}),
  rds: new RDSClient({}),
  dynamodb: new DynamoDBClient({}),
  sns: new SNSClient({}),
  cloudwatch: new CloudWatchClient({}),
};
/** Leave this much of the Lambda timeout for flushing and returning. */
const SAFETY_MS = 5_000;

export async function handler(_event: ScheduledEvent, context: Context) {
  const env = parseLagMonitorEnvironment(process.env);
  // Read every run: picks up a rotated password within a minute.
  const credentials = await loadDbCredentials(env.dbSecretArn, clients.secrets);
  const { endpoints, missing } = await describeInstanceEndpoints(env.nodes.map((n) => n.id), clients.rds);
  const probe = new PgDatabaseProbe((nodeId) => {
    const endpoint = endpoints.get(nodeId);
    if (!endpoint) throw new Error(`no endpoint for ${nodeId}: ${missing.get(nodeId) ?? 'not described'}`);
    return {
      host: endpoint.host,
      port: endpoint.port,
      user: credentials.username,
      password: credentials.password,
      database: env.dbName,
      // RDS CA bundle comes from NODE_EXTRA_CA_CERTS (set by the construct); the server name must match.
      ssl: { rejectUnauthorized: true, servername: endpoint.host },
      application_name: 'rds-failover-lag-monitor',
    };
  });

  const report = await runMonitor(
    { clusterId: env.clusterId, nodes: env.nodes },
    env.config,
    {
      probe,
      store: new DynamoDbAlertStateStore(env.stateTable, clients.dynamodb),
      notifier: new SnsNotifier(env.topicArn, clients.sns),
      metrics: new PowertoolsMetricsSink(),
      backlog: new CloudWatchBufferBacklog(clients.cloudwatch),
      clock: systemClock,
      log: (line) => logger.info(line),
    },
    { deadline: Date.now() + context.getRemainingTimeInMillis() - SAFETY_MS },
  );
  const summary = {
    clusterId: report.clusterId,
    samples: report.samples.length,
    primary: report.samples.at(-1)?.primaryId ?? null,
    levels: report.levels,
    messages: report.messages,
    superseded: report.superseded,
    errors: report.errors,
  };
  if (report.errors.length > 0) logger.warn('lag monitor run finished with errors', summary);
  else logger.info('lag monitor run finished', summary);
  return summary;
}
