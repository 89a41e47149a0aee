/** Turns the alert events due in one message into one Notification (what Slack shows). */
import type { AlertEvent } from './alert-policy.js';
import { levelRank } from './health-level.js';
import { formatSeconds } from './format-units.js';
import type { Notification, Severity } from '../ports/notifier.js';

export function alertNotification(clusterId: string, events: readonly AlertEvent[], at: string): Notification {
  if (events.length === 0) throw new Error('alertNotification: no events to notify');
  const severity = severityOf(events);
  if (events.length === 1) {
    const event = events[0]!;
    const fields: Record<string, string | number | boolean | null> = { state: event.level };
    if (event.previous !== event.level) fields.was = event.previous;
    if (event.peak !== event.level && event.peak !== event.previous) fields.peak = event.peak;
    Object.assign(fields, event.figures);
    return { source: 'lag-monitor', severity, clusterId, title: titleOf(event, at), fields, text: event.summary, at };
  }
  const fields: Record<string, string> = {};
  for (const event of events) fields[event.label] = `${headlineOf(event)}: ${event.summary}`;
  const title = `${events.length} changes on cluster ${clusterId}: ${events.map((e) => `${stateWord(e)} ${e.label}`).join(', ')}`;
  return { source: 'lag-monitor', severity, clusterId, title, fields, at };
}

function severityOf(events: readonly AlertEvent[]): Severity {
  const worst = Math.max(...events.map((e) => levelRank(e.level)));
  return worst === 2 ? 'critical' : worst === 1 ? 'warning' : 'resolved';
}

function stateWord(event: AlertEvent): string {
  return event.level === 'OK' ? 'RESOLVED' : event.level;
}

function titleOf(event: AlertEvent, at: string): string {
  if (event.kind === 'reminder') {
    const seconds = event.episodeStart === null ? null : Math.max(0, (Date.parse(at) - event.episodeStart) / 1000);
    return `Still ${event.level}: ${event.label}${seconds === null ? '' : ` for ${formatSeconds(seconds)}`}`;
  }
  return `${stateWord(event)} ${event.label}${wasPart(event)}`;
}

/** 'CRIT (was WARN)', 'RESOLVED (was CRIT)', 'WARN'. */
function headlineOf(event: AlertEvent): string {
  return `${stateWord(event)}${wasPart(event)}`;
}

/** ' (was WARN)', ' (was OK, peak CRIT)' when a coalesced entry went further than where it ended, or ''. */
function wasPart(event: AlertEvent): string {
  if (event.previous === event.level) return event.peak !== event.level ? ` (peak ${event.peak})` : '';
  const peak = event.peak !== event.previous && event.peak !== event.level ? `, peak ${event.peak}` : '';
  return ` (was ${event.previous}${peak})`;
}
