/**
 * The Slack webhook URL as stored in Secrets Manager: either the URL itself or JSON {"url": "..."}
 * (also accepted: "webhookUrl"). Errors name the secret, never its value.
 */
export function parseWebhookSecret(secretString: string | undefined, secretId: string): string {
  const expected = 'expected the webhook URL (https://hooks.slack.com/services/...) or JSON {"url": "https://hooks.slack.com/services/..."}';
  if (!secretString || secretString.trim() === '') throw new Error(`secret ${secretId} is empty: ${expected}`);
  let candidate = secretString.trim();
  if (candidate.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(candidate);
    } catch {
      throw new Error(`secret ${secretId} looks like JSON but does not parse: ${expected}`);
    }
    const record = parsed as Record<string, unknown>;
    const url = record.url ?? record.webhookUrl;
    if (typeof url !== 'string') throw new Error(`secret ${secretId}: field 'url' missing or not a string; ${expected}`);
    candidate = url.trim();
  }
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    throw new Error(`secret ${secretId} does not hold a URL: ${expected}`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new Error(`secret ${secretId}: the webhook URL must use https (plain http only to a loopback address for local tests)`);
  }
  return url.toString();
}
