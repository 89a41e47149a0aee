/**
 * A notifier that never makes its caller wait: `notify` queues the notification and returns, one sender
 * delivers the queue in order through another Notifier (a SlackNotifier), and what could not be delivered is
 * kept as a dead letter with the reason. It is, in one process, what SNS + the slack-notifier Lambda + its
 * dead-letter queue are in AWS: the local runbook (the drill) publishes through it, so a Slack outage costs
 * the failover nothing and every undelivered message is accounted for.
 */
import type { Notification, Notifier } from '../ports/notifier.js';

export interface DeadLetter {
  readonly title: string;
  readonly at: string;
  readonly error: string;
}

export interface DeliveryTotals {
  /** Notifications handed to notify(). */
  readonly published: number;
  readonly delivered: number;
  /** Given up on by the delivering notifier (its retries and budget spent). */
  readonly deadLetters: readonly DeadLetter[];
  /** Still queued or in flight when the totals were taken. */
  readonly queued: number;
}

export class QueuedNotifier implements Notifier {
  private readonly queue: Notification[] = [];
  private readonly dead: DeadLetter[] = [];
  private published = 0;
  private delivered = 0;
  private sending: Promise<void> | null = null;
  private inFlight = 0;

  constructor(private readonly target: Notifier) {}

  async notify(notification: Notification): Promise<void> {
    this.published += 1;
    this.queue.push(notification);
    this.sending ??= this.send();
  }

  totals(): DeliveryTotals {
    return { published: this.published, delivered: this.delivered, deadLetters: [...this.dead], queued: this.queue.length + this.inFlight };
  }

  /** Waits until the queue is empty or `timeoutMs` passed; returns the totals either way (nothing is dropped). */
  async settle(timeoutMs: number): Promise<DeliveryTotals> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.idle(), timeout]);
    clearTimeout(timer);
    return this.totals();
  }

  private async idle(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private async send(): Promise<void> {
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) {
        this.inFlight = 1;
        try {
          await this.target.notify(next);
          this.delivered += 1;
        } catch (error) {
          this.dead.push({ title: next.title, at: next.at, error: error instanceof Error ? error.message : String(error) });
        } finally {
          this.inFlight = 0;
        }
      }
    } finally {
      this.sending = null;
    }
  }
}
