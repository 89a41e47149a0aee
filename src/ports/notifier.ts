export type Severity = 'info' | 'warning' | 'critical' | 'resolved';

/** One message for people (Slack). Producers never wait on delivery failures: see Notifier. */
export interface Notification {
  readonly source: 'lag-monitor' | 'runbook' | 'alarm';
  readonly severity: Severity;
  readonly clusterId: string;
  readonly title: string;
  /** Figures shown as fields, in order (e.g. { replica: 'pg-1', lagBytes: 123 }). */
  readonly fields: Readonly<Record<string, string | number | boolean | null>>;
  readonly text?: string;
  /** ISO-8601. */
  readonly at: string;
}

/** Publishes notifications (SNS in AWS, a webhook or the console locally). */
export interface Notifier {
  /** Implementations may throw; callers on the failover path go through core's `notifySafely`. */
  notify(notification: Notification): Promise<void>;
}
