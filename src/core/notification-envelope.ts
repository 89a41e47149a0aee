/**
 * The SNS message format of a Notification: a small envelope so the Slack notifier can tell our messages from
 * CloudWatch alarm notifications and anything else published to the topic.
 */
import type { Notification, Severity } from '../ports/notifier.js';

export const ENVELOPE_TYPE = 'rds-failover.notification';

interface Envelope {
  readonly type: typeof ENVELOPE_TYPE;
  readonly version: 1;
  readonly notification: Notification;
}

export function encodeNotification(notification: Notification): string {
  const envelope: Envelope = { type: ENVELOPE_TYPE, version: 1, notification };
  return JSON.stringify(envelope);
}

const SOURCES: readonly Notification['source'][] = ['lag-monitor', 'runbook', 'alarm'];
const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical', 'resolved'];

/**
 * The Notification in `parsed` (a JSON-parsed SNS message), null when it is not our envelope, or an error naming
 * the field that is wrong when it claims to be one.
 */
export function decodeNotification(parsed: unknown): Notification | null {
  if (typeof parsed !== 'object' || parsed === null || (parsed as { type?: unknown }).type !== ENVELOPE_TYPE) return null;
  const envelope = parsed as { version?: unknown; notification?: unknown };
  if (envelope.version !== 1) throw new Error(`notification envelope: version must be 1, got ${JSON.stringify(envelope.version)}`);
  const n = envelope.notification as Record<string, unknown> | undefined;
  if (typeof n !== 'object' || n === null) throw new Error('notification envelope: notification must be an object');
  const problems: string[] = [];
  if (!SOURCES.includes(n.source as Notification['source'])) problems.push(`source must be one of ${SOURCES.join('|')}`);
  if (!SEVERITIES.includes(n.severity as Severity)) problems.push(`severity must be one of ${SEVERITIES.join('|')}`);
  for (const key of ['clusterId', 'title', 'at'] as const) if (typeof n[key] !== 'string') problems.push(`${key} must be a string`);
  if (n.text !== undefined && typeof n.text !== 'string') problems.push('text must be a string when present');
  if (typeof n.fields !== 'object' || n.fields === null || Array.isArray(n.fields)) problems.push('fields must be an object');
  else {
    for (const [key, value] of Object.entries(n.fields)) {
      if (value !== null && !['string', 'number', 'boolean'].includes(typeof value)) problems.push(`fields.${key} must be a string, number, boolean or null`);
    }
  }
  if (problems.length > 0) throw new Error(`notification envelope: ${problems.join('; ')}`);
  return n as unknown as Notification;
}
