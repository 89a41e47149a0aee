import { DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { buildAwsRunbookEnv, runbookConfigFromEnv, runbookHandler } from '../../../src/aws/runbook-lambda.js';
import { AWS_RUNBOOK_CONFIG } from '../../../src/core/runbook/state.js';
import { fakes } from '../runbook/fakes.js';

describe('runbook Lambda wiring', () => {
  it('RUNBOOK_CONFIG overrides the AWS defaults field by field', () => {
    const config = runbookConfigFromEnv({ RUNBOOK_CONFIG: JSON.stringify({ maxLagOnFailoverBytes: 42, pollIntervalMs: { promotion: 3000 } }) });
    expect(config.maxLagOnFailoverBytes).toBe(42);
    expect(config.pollIntervalMs).toEqual({ ...AWS_RUNBOOK_CONFIG.pollIntervalMs, promotion: 3000 });
    expect(runbookConfigFromEnv({})).toBe(AWS_RUNBOOK_CONFIG);
  });

  it('rejects a bad RUNBOOK_CONFIG naming the field', () => {
    expect(() => runbookConfigFromEnv({ RUNBOOK_CONFIG: '{' })).toThrow('RUNBOOK_CONFIG is not JSON: expected a partial RunbookConfig object');
    expect(() => runbookConfigFromEnv({ RUNBOOK_CONFIG: '{"timeoutMs":{"drain":-1}}' })).toThrow('RUNBOOK_CONFIG.timeoutMs.drain must be a non-negative number, got -1');
  });

  it('a function runs only its own actions (its IAM policy was written for them)', async () => {
    const f = fakes();
    const handler = runbookHandler(['promote', 'promotionStatus'], () => ({ ports: f.ports, config: AWS_RUNBOOK_CONFIG, clusterId: 'c1' }));
    await expect(handler({ action: 'fence', state: {} })).rejects.toMatchObject({
      name: 'RunbookInvalidInput',
      message: 'this function runs the runbook actions promote, promotionStatus; got "fence"',
    });
    expect(f.cluster.calls).toEqual([]);
  });

  it('dispatches { action, state } to the runbook and returns the next state', async () => {
    const f = fakes();
    const handler = runbookHandler(['preflight'], () => ({ ports: f.ports, config: AWS_RUNBOOK_CONFIG, clusterId: 'c1' }));
    const next = await handler({ action: 'preflight', state: { executionId: 'exec-1', startedAt: '2024-01-01T00:00:00.000Z', input: { mode: 'failover' } } });
    expect(next.lockHeld).toBe(true);
    expect(next.topology?.writerId).toBe('pg-0');
    expect(f.lock.held.get('c1')?.owner).toBe('exec-1');
  });
});

it("a credentials read that failed (throttled) is read again at the next connection, not cached for the life of the container (as the AWS twin's throttling can make it)", async () => {
  const secrets = mockClient(SecretsManagerClient);
  const rds = mockClient(RDSClient);
  try {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    secrets.on(GetSecretValueCommand).rejectsOnce(throttled).resolves({ SecretString: JSON.stringify({ username: 'u', password: 'p' }) });
    // An address nothing listens on: the probe gets past the credentials and fails to connect.
    rds.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: 'orders-b', Endpoint: { Address: '127.0.0.1', Port: 1 } }] });
    const env = buildAwsRunbookEnv({
      CLUSTER_ID: 'orders',
      LOCK_TABLE_NAME: 'locks',
      TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:alerts',
      WRITER_PARAMETER_NAME: '/w',
      TOPOLOGY_PARAMETER_NAME: '/t',
      HOSTED_ZONE_ID: 'Z1',
      WRITER_RECORD_NAME: 'writer.orders.internal',
      QUARANTINE_SECURITY_GROUP_ID: 'sg-0123456789abcdef0',
      DB_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf',
    });
    const first = await env.ports.probe.probe('orders-b');
    expect(first).toMatchObject({ reachable: false, error: 'cannot resolve orders-b: Rate exceeded' });
    const second = await env.ports.probe.probe('orders-b');
    expect(second.reachable).toBe(false);
    expect((second as { error: string }).error).not.toContain('Rate exceeded');
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  } finally {
    secrets.restore();
    rds.restore();
  }
});
