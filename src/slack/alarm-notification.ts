/**
 * CloudWatch alarm state changes, as CloudWatch publishes them to SNS, turned into Notifications.
 * Severity comes from the alarm description's prefix ('critical: ...', 'warning: ...'; the Monitoring construct
 * writes them so), defaulting to critical for ALARM.
 */
import type { Notification, Severity } from '../ports/notifier.js';
import type { Link } from './block-kit.js';

export interface CloudWatchAlarmMessage {
  readonly AlarmName: string;
  readonly AlarmDescription?: string | null;
  readonly AlarmArn?: string;
  readonly NewStateValue: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA';
  readonly OldStateValue?: string;
  readonly NewStateReason?: string;
  readonly StateChangeTime?: string;
  readonly Trigger?: {
    readonly MetricName?: string;
    readonly Namespace?: string;
    readonly Dimensions?: readonly { readonly name: string; readonly value: string }[];
    readonly Threshold?: number;
    readonly ComparisonOperator?: string;
    readonly Metrics?: readonly { readonly Id?: string; readonly Expression?: string; readonly Label?: string }[];
  };
}

export function isCloudWatchAlarmMessage(value: unknown): value is CloudWatchAlarmMessage {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.AlarmName === 'string' && (v.NewStateValue === 'ALARM' || v.NewStateValue === 'OK' || v.NewStateValue === 'INSUFFICIENT_DATA');
}

const OPERATOR: Readonly<Record<string, string>> = {
  GreaterThanOrEqualToThreshold: '>=',
  GreaterThanThreshold: '>',
  LessThanThreshold: '<',
  LessThanOrEqualToThreshold: '<=',
  LessThanLowerOrGreaterThanUpperThreshold: 'outside band',
  GreaterThanUpperThreshold: '> band',
  LessThanLowerThreshold: '< band',
};

export function alarmNotification(alarm: CloudWatchAlarmMessage, defaultClusterId: string): { notification: Notification; links: Link[] } {
  const { severity, description } = severityOf(alarm);
  const trigger = alarm.Trigger ?? {};
  const dimensions = trigger.Dimensions ?? [];
  const clusterId = dimensions.find((d) => d.name === 'ClusterId')?.value ?? defaultClusterId;
  const fields: Record<string, string | number | null> = {
    alarm: alarm.AlarmName,
    state: alarm.OldStateValue ? `${alarm.OldStateValue} → ${alarm.NewStateValue}` : alarm.NewStateValue,
  };
  if (trigger.MetricName) fields.metric = `${trigger.Namespace ?? ''} ${trigger.MetricName}`.trim();
  else if (trigger.Metrics?.length) fields.metric = trigger.Metrics.map((m) => m.Expression ?? m.Label ?? m.Id).filter(Boolean).join('; ');
  if (dimensions.length > 0) fields.dimensions = dimensions.map((d) => `${d.name}=${d.value}`).join(', ');
  if (trigger.Threshold !== undefined) fields.threshold = `${OPERATOR[trigger.ComparisonOperator ?? ''] ?? trigger.ComparisonOperator ?? ''} ${trigger.Threshold}`.trim();
  const text = [description, alarm.NewStateReason].filter((s): s is string => !!s).join('\n');
  const notification: Notification = {
    source: 'alarm',
    severity,
    clusterId,
    title: `${alarm.NewStateValue === 'OK' ? 'OK' : alarm.NewStateValue}: ${alarm.AlarmName}`,
    fields,
    ...(text ? { text } : {}),
    at: normaliseTime(alarm.StateChangeTime),
  };
  const region = alarm.AlarmArn?.split(':')[3];
  const links: Link[] = region
    ? [{ text: 'Alarm', url: `https://${region}.console.aws.amazon.com/cloudwatch/home?region=${region}#alarmsV2:alarm/${encodeURIComponent(alarm.AlarmName)}` }]
    : [];
  return { notification, links };
}

function severityOf(alarm: CloudWatchAlarmMessage): { severity: Severity; description: string | undefined } {
  const raw = alarm.AlarmDescription ?? undefined;
  const match = raw ? /^(critical|warning|info):\s*(.*)$/is.exec(raw) : null;
  const description = match ? match[2] : raw;
  if (alarm.NewStateValue === 'OK') return { severity: 'resolved', description };
  if (alarm.NewStateValue === 'INSUFFICIENT_DATA') return { severity: 'info', description };
  return { severity: (match?.[1]?.toLowerCase() as Severity | undefined) ?? 'critical', description };
}

/** CloudWatch writes '2026-03-01T10:00:00.000+0000'; make it ISO-8601 with a colon-less offset fixed. */
function normaliseTime(value: string | undefined): string {
  if (!value) return new Date().toISOString();
  const parsed = Date.parse(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(parsed) ? value : new Date(parsed).toISOString();
}
