/**
 * slack-notifier: subscribed to the alert topic; posts each message to Slack. Throws when a message could not be
 * delivered so Lambda retries it asynchronously and finally sends it to the DLQ (with an alarm on the DLQ).
 */
import type { SNSEvent } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { parseSlackNotifierEnvironment } from '../../src/core/monitor-environment.js';
import { deliverToSlack } from '../../src/slack/sns-to-slack.js';
import { SlackWebhookClient } from '../../src/slack/webhook-client.js';
import { parseWebhookSecret } from '../../src/slack/webhook-secret.js';

const logger = new Logger({ serviceName: 'slack-notifier' });
const secrets = new SecretsManagerClient({});
/** Re-read the secret this often so a replaced webhook takes effect without a deploy. */
const SECRET_TTL_MS = 5 * 60_000;
// Module scope: the client spaces messages of this warm container one second apart.
let cached: { url: string; client: SlackWebhookClient; readAt: number } | undefined;

async function webhookClient(secretArn: string): Promise<SlackWebhookClient> {
  if (cached && Date.now() - cached.readAt < SECRET_TTL_MS) return cached.client;
  const out = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const url = parseWebhookSecret(out.SecretString, secretArn);
  const client = cached?.url === url ? cached.client : new SlackWebhookClient(url, { maxTotalWaitMs: 40_000 });
  cached = { url, client, readAt: Date.now() };
  return client;
}

export async function handler(event: SNSEvent) {
  const env = parseSlackNotifierEnvironment(process.env);
  const client = await webhookClient(env.webhookSecretArn);
  return deliverToSlack(
    event.Records.map((r) => ({ messageId: r.Sns.MessageId, message: r.Sns.Message, subject: r.Sns.Subject, timestamp: r.Sns.Timestamp })),
    { post: (m) => client.post(m), clusterId: env.clusterId, dashboardUrl: env.dashboardUrl, log: (line) => logger.info(line) },
  );
}
