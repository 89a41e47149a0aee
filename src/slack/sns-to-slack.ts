/**
 * The slack-notifier's core: every message published to the alert topic (our notifications, CloudWatch alarm
 * state changes, anything else) becomes one Slack message. Nothing is silently dropped: a message that cannot be
 * parsed is posted as raw text, and one that cannot be delivered makes the call fail so Lambda retries it and
 * finally hands it to the DLQ.
 */
import { decodeNotification } from '../core/notification-envelope.js';
import type { Notification } from '../ports/notifier.js';
import { alarmNotification, isCloudWatchAlarmMessage } from './alarm-notification.js';
import { toSlackMessage, type Link, type SlackMessage } from './block-kit.js';
import type { DeliveryReport } from './webhook-client.js';

export interface TopicMessage {
  readonly messageId: string;
  readonly message: string;
  readonly subject?: string | null;
  /** ISO time SNS received it. */
  readonly timestamp?: string;
}

export interface SnsToSlackDeps {
  readonly post: (message: SlackMessage) => Promise<DeliveryReport>;
  /** Cluster to show when a message does not say (e.g. an alarm without a ClusterId dimension). */
  readonly clusterId: string;
  readonly dashboardUrl?: string;
  readonly log?: (line: string) => void;
}

const RAW_TEXT_MAX = 2500;

/** Turns one topic message into the Slack message to post. */
export function slackMessageFor(message: TopicMessage, clusterId: string, dashboardUrl?: string): SlackMessage {
  const dashboard: Link[] = dashboardUrl ? [{ text: 'Dashboard', url: dashboardUrl }] : [];
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(message.message);
  } catch {
    // Not JSON: shown as raw text below.
  }
  let problem: string | undefined;
  try {
    const notification = decodeNotification(parsed);
    if (notification) return toSlackMessage(notification, dashboard);
  } catch (error) {
    problem = (error as Error).message;
  }
  if (isCloudWatchAlarmMessage(parsed)) {
    const { notification, links } = alarmNotification(parsed, clusterId);
    return toSlackMessage(notification, [...links, ...dashboard]);
  }
  const raw = message.message.length > RAW_TEXT_MAX ? `${message.message.slice(0, RAW_TEXT_MAX)}… (${message.message.length} characters in all)` : message.message;
  const notification: Notification = {
    source: 'alarm',
    severity: 'info',
    clusterId,
    title: message.subject ? `Message on the alert topic: ${message.subject}` : 'Unrecognised message on the alert topic',
    fields: { messageId: message.messageId, ...(problem ? { problem } : {}) },
    text: raw,
    at: message.timestamp ?? new Date().toISOString(),
  };
  return toSlackMessage(notification, dashboard);
}

/** Posts every message; throws after trying all of them if any could not be delivered. */
export async function deliverToSlack(messages: readonly TopicMessage[], deps: SnsToSlackDeps): Promise<{ delivered: number }> {
  const log = deps.log ?? (() => {});
  const failures: string[] = [];
  let delivered = 0;
  for (const message of messages) {
    try {
      const report = await deps.post(slackMessageFor(message, deps.clusterId, deps.dashboardUrl));
      delivered += 1;
      log(`delivered ${message.messageId} to Slack in ${report.attempts} attempt(s), waited ${report.waitedMs} ms${report.retriedStatuses.length ? ` (retried after ${report.retriedStatuses.join(', ')})` : ''}`);
    } catch (error) {
      failures.push(`${message.messageId}: ${(error as Error).message}`);
    }
  }
  if (failures.length > 0) throw new Error(`${failures.length} of ${messages.length} message(s) not delivered to Slack: ${failures.join('; ')}`);
  return { delivered };
}
