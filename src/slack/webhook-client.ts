/**
 * Slack incoming-webhook client. Honours 429 Retry-After, retries 5xx and network errors with exponential
 * backoff, spaces messages at least `minIntervalMs` apart (Slack allows one per second per channel), and gives
 * up (retryable error) rather than wait past its budget, so a caller in a Lambda can hand the message to a DLQ.
 * Errors never contain the webhook URL: it is a secret.
 */
import { systemClock, type Clock } from '../ports/clock.js';
import type { SlackMessage } from './block-kit.js';

export interface SlackWebhookClientOptions {
  readonly fetch?: typeof fetch;
  readonly clock?: Clock;
  /** Attempts per message, the first included. @default 5 */
  readonly maxAttempts?: number;
  /** First backoff after a 5xx or network error; doubles each time. @default 500 */
  readonly baseBackoffMs?: number;
  /** @default 8000 */
  readonly maxBackoffMs?: number;
  /** Total time one message may spend waiting (backoff and Retry-After). @default 25000 */
  readonly maxTotalWaitMs?: number;
  /** @default 5000 */
  readonly requestTimeoutMs?: number;
  /** Minimum time between two messages sent by this client. @default 1000 */
  readonly minIntervalMs?: number;
}

export interface DeliveryReport {
  readonly attempts: number;
  /** Time spent waiting (pacing, Retry-After, backoff). */
  readonly waitedMs: number;
  /** Statuses of the failed attempts before the successful one, e.g. [429, 503]. */
  readonly retriedStatuses: readonly (number | 'network')[];
}

export class SlackDeliveryError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    /** A later attempt may succeed (rate limit, outage); false for a rejected payload or a revoked webhook. */
    readonly retryable: boolean,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'SlackDeliveryError';
  }
}

export class SlackWebhookClient {
  private readonly fetchFn: typeof fetch;
  private readonly clock: Clock;
  private readonly maxAttempts: number;
  private readonly baseBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxTotalWaitMs: number;
  private readonly requestTimeoutMs: number;
  private readonly minIntervalMs: number;
  private lastPostAt: number | null = null;

  constructor(
    private readonly webhookUrl: string,
    options: SlackWebhookClientOptions = {},
  ) {
    this.fetchFn = options.fetch ?? fetch;
    this.clock = options.clock ?? systemClock;
    this.maxAttempts = options.maxAttempts ?? 5;
    this.baseBackoffMs = options.baseBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 8000;
    this.maxTotalWaitMs = options.maxTotalWaitMs ?? 25_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5000;
    this.minIntervalMs = options.minIntervalMs ?? 1000;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new Error(`SlackWebhookClient: maxAttempts must be an integer >= 1, got ${this.maxAttempts}`);
  }

  async post(message: SlackMessage): Promise<DeliveryReport> {
    const body = JSON.stringify(message);
    let waitedMs = 0;
    const retried: (number | 'network')[] = [];
    const wait = async (ms: number, why: string, attempts: number, status: number | null) => {
      if (waitedMs + ms > this.maxTotalWaitMs) {
        throw new SlackDeliveryError(`Slack ${why}: waiting ${ms} ms more would exceed the ${this.maxTotalWaitMs} ms budget; giving up after ${attempts} attempt(s)`, status, true, attempts);
      }
      if (ms > 0) await this.clock.sleep(ms);
      waitedMs += ms;
    };

    if (this.lastPostAt !== null) await wait(Math.max(0, this.lastPostAt + this.minIntervalMs - this.clock.now()), 'pacing', 0, null);
    for (let attempt = 1; ; attempt += 1) {
      let status: number | null = null;
      let detail: string;
      try {
        const response = await this.fetchFn(this.webhookUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body,
          signal: AbortSignal.timeout(this.requestTimeoutMs),
        });
        status = response.status;
        const text = (await response.text().catch(() => '')).slice(0, 200);
        this.lastPostAt = this.clock.now();
        if (response.ok) return { attempts: attempt, waitedMs, retriedStatuses: retried };
        detail = `HTTP ${status}${text ? ` ${text}` : ''}`;
        if (status === 429) {
          retried.push(429);
          if (attempt >= this.maxAttempts) throw new SlackDeliveryError(`Slack still rate limiting after ${attempt} attempts (${detail})`, status, true, attempt);
          const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'), this.clock.now());
          await wait(retryAfterMs ?? this.backoff(attempt), `rate limited (${detail}, Retry-After ${response.headers.get('retry-after') ?? 'absent'})`, attempt, status);
          continue;
        }
        if (status < 500) throw new SlackDeliveryError(`Slack rejected the message: ${detail}`, status, false, attempt);
      } catch (error) {
        if (error instanceof SlackDeliveryError) throw error;
        detail = `network error: ${describe(error).split(this.webhookUrl).join('<webhook URL>')}`;
      }
      retried.push(status ?? 'network');
      if (attempt >= this.maxAttempts) throw new SlackDeliveryError(`Slack unavailable after ${attempt} attempts (last: ${detail})`, status, true, attempt);
      await wait(this.backoff(attempt), `unavailable (${detail})`, attempt, status);
    }
  }

  private backoff(attempt: number): number {
    return Math.min(this.maxBackoffMs, this.baseBackoffMs * 2 ** (attempt - 1));
  }
}

/** Retry-After is delta-seconds (what Slack sends) or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null || value.trim() === '') return null;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    const causeText = cause instanceof Error ? `: ${cause.message}` : '';
    return `${error.name === 'TimeoutError' ? 'timed out' : error.message}${causeText}`;
  }
  return String(error);
}
