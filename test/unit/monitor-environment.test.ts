import { describe, expect, it } from 'vitest';
import { parseLagMonitorEnvironment, parseSlackNotifierEnvironment } from '../../src/core/monitor-environment.js';
import { DEFAULT_MONITOR_CONFIG } from '../../src/core/monitor-config.js';

const valid = {
  CLUSTER_ID: 'prod',
  DB_INSTANCE_IDS: '["prod-a","prod-b","prod-c"]',
  REPLICATION_NAMES: '{"prod-b":"rds_b"}',
  DB_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod-db-AbCdEf',
  ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:prod-alerts',
  STATE_TABLE_NAME: 'prod-monitor-state',
  MONITOR_CONFIG: '{"lag":{"warnSeconds":10,"critSeconds":60}}',
};

describe('parseLagMonitorEnvironment', () => {
  it('parses the environment the Monitoring construct sets', () => {
    expect(parseLagMonitorEnvironment(valid)).toEqual({
      clusterId: 'prod',
      nodes: [{ id: 'prod-a' }, { id: 'prod-b', replicationName: 'rds_b' }, { id: 'prod-c' }],
      dbSecretArn: valid.DB_SECRET_ARN,
      dbName: 'postgres',
      topicArn: valid.ALERT_TOPIC_ARN,
      stateTable: 'prod-monitor-state',
      config: { ...DEFAULT_MONITOR_CONFIG, lag: { ...DEFAULT_MONITOR_CONFIG.lag, warnSeconds: 10, critSeconds: 60 } },
    });
  });

  it('names every bad variable and what it expects', () => {
    let message = '';
    try {
      parseLagMonitorEnvironment({ ...valid, CLUSTER_ID: 'Prod!', DB_INSTANCE_IDS: '[]', ALERT_TOPIC_ARN: undefined, MONITOR_CONFIG: '{"samplesToChange":0}' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('CLUSTER_ID: expected a cluster id (lowercase letter, then lowercase letters, digits, dashes), got "Prod!"');
    expect(message).toContain('DB_INSTANCE_IDS: expected a JSON array of one or more DB instance identifiers, e.g. ["prod-a","prod-b"]');
    expect(message).toContain('ALERT_TOPIC_ARN: expected an SNS topic ARN, got nothing');
    expect(message).toContain('MONITOR_CONFIG.samplesToChange: expected an integer from 1 to 60, got 0');
  });

  it('rejects replication names for unknown instances and malformed JSON', () => {
    expect(() => parseLagMonitorEnvironment({ ...valid, REPLICATION_NAMES: '{"prod-z":"x"}' })).toThrow("REPLICATION_NAMES: 'prod-z' is not one of DB_INSTANCE_IDS");
    expect(() => parseLagMonitorEnvironment({ ...valid, MONITOR_CONFIG: '{' })).toThrow('MONITOR_CONFIG: not valid JSON');
  });
});

describe('parseSlackNotifierEnvironment', () => {
  it('parses and validates', () => {
    expect(parseSlackNotifierEnvironment({ CLUSTER_ID: 'prod', WEBHOOK_SECRET_ARN: valid.DB_SECRET_ARN, DASHBOARD_URL: 'https://example.test/d' })).toEqual({
      clusterId: 'prod',
      webhookSecretArn: valid.DB_SECRET_ARN,
      dashboardUrl: 'https://example.test/d',
    });
    expect(() => parseSlackNotifierEnvironment({ CLUSTER_ID: 'prod', WEBHOOK_SECRET_ARN: 'https://hooks.slack.com/x' })).toThrow(
      'WEBHOOK_SECRET_ARN: expected a Secrets Manager secret ARN, got "https://hooks.slack.com/x"',
    );
  });
});
