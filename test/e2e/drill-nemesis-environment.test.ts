/**
 * One seed of each nemesis fault in the runbook's environment: network, Slack, disk, end to end: real cluster,
 * real buffers, worker processes, the runbook. Every run must lose nothing and duplicate nothing; each fault also
 * checks what it is about.
 */
import { describe, expect, it } from 'vitest';
import { runDrill } from '../../src/cli/drill/run-drill.js';
import { expectNothingLost, nemesisNames as nemesis, smallDrill as small } from '../support/drill.js';

describe("nemesis faults in the runbook's environment (one seed each)", () => {
  it('partition: the controller loses the primary while the workers still reach it; the failover happens, the partition heals', async () => {
    const result = await runDrill({ ...small, fault: 'partition', seed: 2 });
    expectNothingLost(result);
    expect(nemesis(result)).toEqual(['partition', 'partition healed']);
    expect(result.newPrimary).not.toBe(result.oldPrimary);
  });

  it('slack-down: Slack refuses every call during the failover; the runbook completes and the undelivered notifications are reported', async () => {
    const result = await runDrill({ ...small, fault: 'slack-down', seed: 4 });
    expectNothingLost(result);
    expect(result.slack.undelivered).toBeGreaterThan(0);
    expect(result.slack.deadLetters.length + result.slack.delivered).toBeLessThanOrEqual(result.slack.published);
    expect(result.slack.deadLetters[0]!.error).toMatch(/Slack (still rate limiting|unavailable) after 3 attempts/);
  });

  it('disk-full: one buffer refuses appends (never acknowledged, never stored), then recovers; nothing acknowledged is lost', async () => {
    const result = await runDrill({ ...small, fault: 'disk-full', seed: 5 });
    expectNothingLost(result);
    expect(result.rows.refused).toBeGreaterThan(0);
    expect(result.rows.refusedButStored).toBe(0);
  });
});
