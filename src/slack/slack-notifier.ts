import type { Notification, Notifier } from '../ports/notifier.js';
import { toSlackMessage, type Link } from './block-kit.js';
import type { SlackWebhookClient } from './webhook-client.js';

/**
 * Notifier that posts straight to a Slack webhook (local runs: CLI, drill). In AWS the producers publish to SNS
 * instead and the slack-notifier Lambda posts, so a Slack outage never slows them down.
 */
export class SlackNotifier implements Notifier {
  constructor(
    private readonly client: Pick<SlackWebhookClient, 'post'>,
    private readonly links: readonly Link[] = [],
  ) {}

  async notify(notification: Notification): Promise<void> {
    await this.client.post(toSlackMessage(notification, this.links));
  }
}
