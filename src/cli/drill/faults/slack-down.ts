/**
 * slack-down: Slack fails every call while the primary is killed and the runbook fails over: first rate
 * limited (429 with Retry-After), then down (5xx), until the runbook is done and for MIN_OUTAGE_MS at least. The
 * runbook must finish as fast as ever; what could not be delivered is reported (the dead letters), the rest
 * delivered late.
 */
import { STAND_IN_WEBHOOK } from '../../../local/local-slack.js';
import { killPrimaryAndFailOver } from './basic.js';
import { between, type Fault } from './fault.js';

/**
 * Longer than the webhook client retries one message (its whole wait budget plus its attempts' round trips), so
 * at least one notification is given up on however fast the runbook is: healed at the runbook's end only, a
 * runbook done 2.3 s after the kill left the first message its third attempt after Slack came back.
 */
const MIN_OUTAGE_MS = STAND_IN_WEBHOOK.maxTotalWaitMs + 2_000;

interface SlackDownPlan {
  readonly rateLimitedMs: number;
  readonly retryAfterSeconds: number;
  readonly downStatus: number;
}

export const slackDown: Fault<SlackDownPlan> = {
  name: 'slack-down',
  summary: 'Slack answers 429 with Retry-After, then 5xx, to every call while the primary is killed and the runbook fails over; undelivered notifications are reported',
  plan: (random) => ({ rateLimitedMs: between(random, 1_000, 3_000), retryAfterSeconds: between(random, 1, 2), downStatus: random() < 0.5 ? 500 : 503 }),
  async inject(ctx, plan) {
    ctx.slack.fail({ kind: 'rate-limited', retryAfterSeconds: plan.retryAfterSeconds });
    ctx.nemesis('Slack rate limiting', `every call: 429, Retry-After ${plan.retryAfterSeconds} s`);
    ctx.later(plan.rateLimitedMs, () => {
      ctx.slack.fail({ kind: 'down', status: plan.downStatus });
      ctx.nemesis('Slack down', `every call: HTTP ${plan.downStatus}`);
    });
    return killPrimaryAndFailOver(ctx, ctx.firstPrimary, 'primary killed');
  },
  async heal(ctx) {
    const since = ctx.nemesisTime('Slack rate limiting');
    const left = since === undefined ? 0 : since + MIN_OUTAGE_MS - Date.now();
    if (left > 0) await ctx.sleep(left);
    ctx.slack.heal();
    ctx.nemesis('Slack back');
  },
  async verify(ctx) {
    const refused = Object.entries(ctx.slack.refused);
    return [
      {
        name: 'Slack refused calls',
        ok: refused.length > 0,
        detail: refused.length > 0 ? refused.map(([status, n]) => `${n} × HTTP ${status}`).join(', ') : 'no call reached Slack during the outage',
      },
    ];
  },
};
