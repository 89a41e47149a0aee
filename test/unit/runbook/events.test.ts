import { describe, expect, it } from 'vitest';
import { toNotification, type RunbookEvent } from '../../../src/core/runbook/events.js';

const base: RunbookEvent = {
  executionId: 'exec-1',
  clusterId: 'orders',
  mode: 'failover',
  step: 'promote',
  phase: 'done',
  at: '2024-01-01T00:00:00.000Z',
  figures: { node: 'db-1' },
};

describe('runbook events as notifications', () => {
  it('a step done is info, titled with the step label, fields carry execution, step and figures', () => {
    expect(toNotification(base)).toEqual({
      source: 'runbook',
      severity: 'info',
      clusterId: 'orders',
      title: 'Failover of orders: promote done',
      fields: { execution: 'exec-1', step: 'promote', node: 'db-1' },
      at: '2024-01-01T00:00:00.000Z',
    });
  });

  it('maps phases to severities: failed critical, warning warning, the start of a failover warning, completion resolved', () => {
    expect(toNotification({ ...base, phase: 'failed', message: 'boom' })).toMatchObject({ severity: 'critical', title: 'Failover of orders: promote FAILED', text: 'boom' });
    expect(toNotification({ ...base, phase: 'warning' }).severity).toBe('warning');
    expect(toNotification({ ...base, step: 'preflight', phase: 'start' })).toMatchObject({ severity: 'warning', title: 'Failover of orders: preflight started' });
    expect(toNotification({ ...base, step: 'notify', phase: 'done', mode: 'switchover' })).toMatchObject({ severity: 'resolved', title: 'Switchover of orders completed' });
    expect(toNotification({ ...base, step: 'drain', phase: 'start' })).toMatchObject({ severity: 'info', title: 'Failover of orders: drain workers started' });
  });

  it('dry runs say so', () => {
    expect(toNotification({ ...base, step: 'plan', dryRun: true }).title).toBe('Failover plan (dry run) of orders: plan done');
  });
});
