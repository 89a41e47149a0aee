/**
 * The environment variables the Monitoring construct gives its two Lambdas, parsed and validated (pure: takes
 * the environment as a record). Names and ARNs only: the webhook URL and the DB password live in Secrets Manager.
 */
import type { MonitoredNode } from './lag-policy.js';
import { resolveMonitorConfig, type MonitorConfig } from './monitor-config.js';

export const LagMonitorEnv = {
  ClusterId: 'CLUSTER_ID',
  DbInstanceIds: 'DB_INSTANCE_IDS',
  ReplicationNames: 'REPLICATION_NAMES',
  DbSecretArn: 'DB_SECRET_ARN',
  DbName: 'DB_NAME',
  TopicArn: 'ALERT_TOPIC_ARN',
  StateTable: 'STATE_TABLE_NAME',
  MonitorConfig: 'MONITOR_CONFIG',
} as const;

export const SlackNotifierEnv = {
  ClusterId: 'CLUSTER_ID',
  WebhookSecretArn: 'WEBHOOK_SECRET_ARN',
  DashboardUrl: 'DASHBOARD_URL',
} as const;

export interface LagMonitorEnvironment {
  readonly clusterId: string;
  readonly nodes: readonly MonitoredNode[];
  readonly dbSecretArn: string;
  readonly dbName: string;
  readonly topicArn: string;
  readonly stateTable: string;
  readonly config: MonitorConfig;
}

export interface SlackNotifierEnvironment {
  readonly clusterId: string;
  readonly webhookSecretArn: string;
  readonly dashboardUrl: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

const CLUSTER_ID = /^[a-z][a-z0-9-]{0,30}$/;
const ARN = /^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{12}:.+$/;
const INSTANCE_ID = /^[a-zA-Z][a-zA-Z0-9-]{0,62}$/;

export function parseLagMonitorEnvironment(env: Env): LagMonitorEnvironment {
  const errors: string[] = [];
  const get = (name: string, pattern: RegExp, expected: string): string => {
    const value = env[name];
    if (value === undefined || !pattern.test(value)) errors.push(`${name}: expected ${expected}, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
    return value ?? '';
  };
  const clusterId = get(LagMonitorEnv.ClusterId, CLUSTER_ID, 'a cluster id (lowercase letter, then lowercase letters, digits, dashes)');
  const dbSecretArn = get(LagMonitorEnv.DbSecretArn, ARN, 'a Secrets Manager secret ARN');
  const topicArn = get(LagMonitorEnv.TopicArn, ARN, 'an SNS topic ARN');
  const stateTable = get(LagMonitorEnv.StateTable, /^[A-Za-z0-9_.-]{3,255}$/, 'a DynamoDB table name');
  const dbName = env[LagMonitorEnv.DbName] ?? 'postgres';
  if (!/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/.test(dbName)) errors.push(`${LagMonitorEnv.DbName}: expected a database name, got ${JSON.stringify(dbName)}`);

  const ids = parseJson(env[LagMonitorEnv.DbInstanceIds], LagMonitorEnv.DbInstanceIds, errors);
  let nodes: MonitoredNode[] = [];
  if (!Array.isArray(ids) || ids.length === 0 || !ids.every((id) => typeof id === 'string' && INSTANCE_ID.test(id))) {
    errors.push(`${LagMonitorEnv.DbInstanceIds}: expected a JSON array of one or more DB instance identifiers, e.g. ["prod-a","prod-b"]`);
  } else {
    const names = parseJson(env[LagMonitorEnv.ReplicationNames] ?? '{}', LagMonitorEnv.ReplicationNames, errors);
    const nameMap = typeof names === 'object' && names !== null && !Array.isArray(names) ? (names as Record<string, unknown>) : {};
    if (nameMap !== names) errors.push(`${LagMonitorEnv.ReplicationNames}: expected a JSON object { "<instance id>": "<application_name>" }`);
    for (const [id, name] of Object.entries(nameMap)) {
      if (!ids.includes(id)) errors.push(`${LagMonitorEnv.ReplicationNames}: '${id}' is not one of ${LagMonitorEnv.DbInstanceIds}`);
      if (typeof name !== 'string' || name === '') errors.push(`${LagMonitorEnv.ReplicationNames}.${id}: expected a non-empty string`);
    }
    nodes = (ids as string[]).map((id) => (typeof nameMap[id] === 'string' ? { id, replicationName: nameMap[id] as string } : { id }));
  }

  let config: MonitorConfig | undefined;
  try {
    config = resolveMonitorConfig(parseJson(env[LagMonitorEnv.MonitorConfig] ?? '{}', LagMonitorEnv.MonitorConfig, errors), LagMonitorEnv.MonitorConfig);
  } catch (error) {
    errors.push((error as Error).message);
  }
  if (errors.length > 0 || !config) throw new Error(`lag-monitor environment is invalid:\n  - ${errors.join('\n  - ')}`);
  return { clusterId, nodes, dbSecretArn, dbName, topicArn, stateTable, config };
}

export function parseSlackNotifierEnvironment(env: Env): SlackNotifierEnvironment {
  const errors: string[] = [];
  const clusterId = env[SlackNotifierEnv.ClusterId];
  if (!clusterId || !CLUSTER_ID.test(clusterId)) errors.push(`${SlackNotifierEnv.ClusterId}: expected a cluster id, got ${JSON.stringify(clusterId ?? null)}`);
  const webhookSecretArn = env[SlackNotifierEnv.WebhookSecretArn];
  if (!webhookSecretArn || !ARN.test(webhookSecretArn)) errors.push(`${SlackNotifierEnv.WebhookSecretArn}: expected a Secrets Manager secret ARN, got ${JSON.stringify(webhookSecretArn ?? null)}`);
  const dashboardUrl = env[SlackNotifierEnv.DashboardUrl] || undefined;
  if (dashboardUrl !== undefined && !/^https:\/\//.test(dashboardUrl)) errors.push(`${SlackNotifierEnv.DashboardUrl}: expected an https URL`);
  if (errors.length > 0) throw new Error(`slack-notifier environment is invalid:\n  - ${errors.join('\n  - ')}`);
  return { clusterId: clusterId!, webhookSecretArn: webhookSecretArn!, dashboardUrl };
}

function parseJson(value: string | undefined, name: string, errors: string[]): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value);
  } catch {
    errors.push(`${name}: not valid JSON`);
    return undefined;
  }
}
