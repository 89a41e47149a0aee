/** Runbook events (start / done / failed / warning of each step) and how they read in Slack. */
import type { Notification, Severity } from '../../ports/notifier.js';
import { STEP_LABELS, type RunbookMode, type StepName } from './state.js';

export type RunbookEventPhase = 'start' | 'done' | 'failed' | 'warning';

export type EventFigures = Readonly<Record<string, string | number | boolean | null>>;

export interface RunbookEvent {
  readonly executionId: string;
  readonly clusterId: string;
  readonly mode: RunbookMode;
  readonly step: StepName;
  readonly phase: RunbookEventPhase;
  /** ISO-8601. */
  readonly at: string;
  readonly figures: EventFigures;
  readonly message?: string;
  readonly dryRun?: boolean;
}

export function severityOf(event: RunbookEvent): Severity {
  if (event.phase === 'failed') return 'critical';
  if (event.phase === 'warning') return 'warning';
  if (event.step === 'notify' && event.phase === 'done') return 'resolved';
  // A failover starting is news operators must see; the routine steps are info.
  if (event.step === 'preflight' && event.phase === 'start' && !event.dryRun) return 'warning';
  return 'info';
}

const PHASE_LABELS: Readonly<Record<RunbookEventPhase, string>> = {
  start: 'started',
  done: 'done',
  failed: 'FAILED',
  warning: 'warning',
};

export function toNotification(event: RunbookEvent): Notification {
  const what = event.dryRun ? `${event.mode} plan (dry run)` : event.mode;
  const title =
    event.step === 'notify' && event.phase === 'done'
      ? `${capitalise(what)} of ${event.clusterId} completed`
      : `${capitalise(what)} of ${event.clusterId}: ${STEP_LABELS[event.step]} ${PHASE_LABELS[event.phase]}`;
  return {
    source: 'runbook',
    severity: severityOf(event),
    clusterId: event.clusterId,
    title,
    fields: { execution: event.executionId, step: event.step, ...event.figures },
    ...(event.message ? { text: event.message } : {}),
    at: event.at,
  };
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
