import { describe, expect, it } from 'vitest';
import { runbookConfigFromEnv, runbookHandler } from '../../../src/aws/runbook-lambda.js';
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
