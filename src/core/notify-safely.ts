import type { Notification, Notifier } from '../ports/notifier.js';

/** A Slack outage must never fail a failover step: delivery errors are reported to `onError`, not thrown. */
export async function notifySafely(
  notifier: Notifier,
  notification: Notification,
  onError: (error: unknown) => void = (error) => console.error(`notification not delivered: ${String(error)}`),
): Promise<void> {
  try {
    await notifier.notify(notification);
  } catch (error) {
    onError(error);
  }
}
