/**
 * A local HTTP server standing in for a Slack incoming webhook (the drill's notifications go to it through the
 * real SlackWebhookClient). It answers 200 "ok" and keeps every message, or, during an outage the drill
 * injects, fails every call: 429 with a Retry-After header (rate limited) or a 5xx (Slack down).
 */
import http from 'node:http';
import type net from 'node:net';
import { LOOPBACK } from './ports.js';

/**
 * How the drill's webhook client talks to the stand-in, which is not Slack: no one-per-second pacing (the runbook
 * publishes ~30 messages), a short budget per message so an outage shows up as dead letters within the drill.
 */
export const STAND_IN_WEBHOOK = { minIntervalMs: 0, maxAttempts: 3, baseBackoffMs: 100, maxBackoffMs: 1_000, maxTotalWaitMs: 3_000, requestTimeoutMs: 2_000 } as const;

export type SlackOutage =
  | { readonly kind: 'rate-limited'; readonly retryAfterSeconds: number }
  | { readonly kind: 'down'; readonly status: number };

export interface ReceivedMessage {
  readonly atMs: number;
  readonly body: unknown;
}

export class LocalSlack {
  readonly received: ReceivedMessage[] = [];
  /** Calls answered with an error, by status. */
  readonly refused: Record<number, number> = {};
  private outageNow: SlackOutage | null = null;

  private constructor(
    private readonly server: http.Server,
    /** The webhook URL to give the client. */
    readonly url: string,
  ) {}

  static async start(): Promise<LocalSlack> {
    let slack: LocalSlack | undefined;
    const server = http.createServer((request, response) => slack!.handle(request, response));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, LOOPBACK, () => resolve());
    });
    const { port } = server.address() as net.AddressInfo;
    slack = new LocalSlack(server, `http://${LOOPBACK}:${port}/services/T000LOCAL/B000LOCAL/drill`);
    return slack;
  }

  get outage(): SlackOutage | null {
    return this.outageNow;
  }

  /** Every call fails this way until heal(). */
  fail(outage: SlackOutage): void {
    if (outage.kind === 'rate-limited' && !(outage.retryAfterSeconds >= 0)) throw new Error(`retryAfterSeconds must be >= 0, got ${outage.retryAfterSeconds}`);
    if (outage.kind === 'down' && !(outage.status >= 500 && outage.status <= 599)) throw new Error(`status must be a 5xx, got ${outage.status}`);
    this.outageNow = outage;
  }

  heal(): void {
    this.outageNow = null;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const outage = this.outageNow;
      if (request.method !== 'POST') return this.answer(response, 405, 'invalid_method');
      if (outage?.kind === 'rate-limited') return this.answer(response, 429, 'rate_limited', { 'retry-after': String(outage.retryAfterSeconds) });
      if (outage?.kind === 'down') return this.answer(response, outage.status, 'service_unavailable');
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return this.answer(response, 400, 'invalid_payload');
      }
      this.received.push({ atMs: Date.now(), body });
      this.answer(response, 200, 'ok');
    });
  }

  private answer(response: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
    if (status !== 200) this.refused[status] = (this.refused[status] ?? 0) + 1;
    response.writeHead(status, { 'content-type': 'text/plain', ...headers });
    response.end(text);
  }
}
