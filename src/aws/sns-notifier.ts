import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { encodeNotification } from '../core/notification-envelope.js';
import type { Notification, Notifier } from '../ports/notifier.js';

/**
 * Notifier over SNS: the lag monitor and the runbook publish here and move on; the slack-notifier Lambda
 * (subscribed to the topic) does the slow part. Message attributes allow subscription filters by severity or source.
 */
export class SnsNotifier implements Notifier {
  constructor(
    private readonly topicArn: string,
    private readonly client: SNSClient = new SNSClient({}),
  ) {
    if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+(\.fifo)?$/.test(topicArn)) {
      throw new Error(`SnsNotifier: topicArn '${topicArn}' is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)`);
    }
  }

  async notify(notification: Notification): Promise<void> {
    const message = encodeNotification(notification);
    const bytes = Buffer.byteLength(message, 'utf8');
    if (bytes > MAX_MESSAGE_BYTES) {
      throw new Error(`notification '${notification.title}' is ${bytes} bytes as JSON; SNS accepts at most ${MAX_MESSAGE_BYTES}: shorten its text or fields`);
    }
    await this.client.send(
      new PublishCommand({
        TopicArn: this.topicArn,
        Subject: snsSubject(`[${notification.clusterId}] ${notification.title}`),
        Message: message,
        MessageAttributes: {
          source: { DataType: 'String', StringValue: notification.source },
          severity: { DataType: 'String', StringValue: notification.severity },
          clusterId: { DataType: 'String', StringValue: notification.clusterId },
        },
      }),
    );
  }
}

const MAX_MESSAGE_BYTES = 256 * 1024;

/** SNS subjects: printable ASCII, no line breaks, at most 100 characters (email subscribers see it). */
export function snsSubject(text: string): string {
  const ascii = text.replace(/[\r\n\t]+/g, ' ').replace(/[^\x20-\x7E]/g, '?').trim();
  const subject = ascii.length > 100 ? `${ascii.slice(0, 97)}...` : ascii;
  return subject === '' ? 'rds-failover notification' : subject;
}
