/**
 * Alert policy: turns confirmed states into messages for people.
 *  - a message when a subject's state changes (raised / escalated / changed / resolved);
 *  - a reminder every `reminderIntervalMs` while it stays not OK;
 *  - never more than one message per `minMessageIntervalMs` on the channel: everything due within that
 *    window is held and coalesced into the next message, one entry per subject (first `previous`, latest state,
 *    worst state seen in between), so a burst is one message and nothing is dropped.
 * Pure: the caller sends `due` and reports the outcome with `recordDelivery`.
 */
import { levelRank, worstLevel, type HealthLevel } from './health-level.js';

export interface AlertPolicyConfig {
  readonly reminderIntervalMs: number;
  readonly minMessageIntervalMs: number;
}

export type FigureValue = string | number | boolean | null;

/** The confirmed state of one subject in this sample, with what to show about it. */
export interface Observation {
  /** Stable key, e.g. 'replica:pg-1', 'worker:i-0abc', 'cluster'. */
  readonly subject: string;
  /** How people call it, e.g. 'replica pg-1'. */
  readonly label: string;
  readonly level: HealthLevel;
  /** One line: the figures that explain the state. */
  readonly summary: string;
  readonly figures: Readonly<Record<string, FigureValue>>;
}

export type AlertKind = 'raised' | 'escalated' | 'changed' | 'reminder' | 'resolved';

export interface AlertEvent {
  readonly subject: string;
  readonly label: string;
  readonly kind: AlertKind;
  readonly level: HealthLevel;
  /** The state people were last told about. */
  readonly previous: HealthLevel;
  /** The worst state seen since then (differs from level when a coalesced entry went up and down). */
  readonly peak: HealthLevel;
  readonly summary: string;
  readonly figures: Readonly<Record<string, FigureValue>>;
  /** ISO time of the latest change merged into this event. */
  readonly at: string;
  /** Milliseconds since the epoch the current not-OK episode began (for reminders and resolutions). */
  readonly episodeStart: number | null;
}

interface SubjectAlertState {
  readonly notifiedLevel: HealthLevel;
  readonly lastNotifiedAt: number;
  readonly episodeStart: number;
}

export interface AlertState {
  /** Subjects people were told are not OK. */
  readonly subjects: Readonly<Record<string, SubjectAlertState>>;
  /** When the last message left (ms); null before the first. */
  readonly lastSentAt: number | null;
  /** Events decided but not delivered yet (rate limit or a failed delivery). */
  readonly pending: readonly AlertEvent[];
}

export function emptyAlertState(): AlertState {
  return { subjects: {}, lastSentAt: null, pending: [] };
}

export interface AlertPlan {
  readonly state: AlertState;
  /** Send these now, as one message; empty when nothing is due or the rate limit holds them. */
  readonly due: readonly AlertEvent[];
  /** When held events may go out (ms), or null when nothing is held. */
  readonly nextSendAt: number | null;
}

/**
 * Decides what to tell people after one sample. `retired` names subjects that are no longer monitored
 * (a worker that stopped reporting, a node removed from the configuration): if they were not OK, a resolution
 * says so and they are forgotten.
 */
export function planAlerts(
  state: AlertState,
  observations: readonly Observation[],
  now: number,
  config: AlertPolicyConfig,
  retired: readonly string[] = [],
): AlertPlan {
  const at = new Date(now).toISOString();
  const subjects: Record<string, SubjectAlertState> = { ...state.subjects };
  let pending = [...state.pending];
  const add = (event: AlertEvent) => {
    pending = mergeIntoPending(pending, event);
  };

  for (const obs of observations) {
    const known = subjects[obs.subject];
    const previous = known?.notifiedLevel ?? 'OK';
    if (obs.level !== previous) {
      const episodeStart = previous === 'OK' ? now : known!.episodeStart;
      add({ ...eventBase(obs, at), kind: kindOf(previous, obs.level), previous, peak: worstLevel(previous, obs.level), episodeStart });
      if (obs.level === 'OK') delete subjects[obs.subject];
      else subjects[obs.subject] = { notifiedLevel: obs.level, lastNotifiedAt: now, episodeStart };
    } else if (known && now - known.lastNotifiedAt >= config.reminderIntervalMs && !pending.some((e) => e.subject === obs.subject)) {
      add({ ...eventBase(obs, at), kind: 'reminder', previous, peak: obs.level, episodeStart: known.episodeStart });
      subjects[obs.subject] = { ...known, lastNotifiedAt: now };
    }
  }
  for (const subject of retired) {
    const known = subjects[subject];
    if (!known) continue;
    delete subjects[subject];
    add({
      subject,
      label: labelOf(subject),
      kind: 'resolved',
      level: 'OK',
      previous: known.notifiedLevel,
      peak: known.notifiedLevel,
      summary: 'no longer reported: stopped monitoring it',
      figures: {},
      at,
      episodeStart: known.episodeStart,
    });
  }

  const next: AlertState = { subjects, lastSentAt: state.lastSentAt, pending };
  if (pending.length === 0) return { state: next, due: [], nextSendAt: null };
  const allowedAt = state.lastSentAt === null ? now : state.lastSentAt + config.minMessageIntervalMs;
  if (now >= allowedAt) return { state: next, due: pending, nextSendAt: null };
  return { state: next, due: [], nextSendAt: allowedAt };
}

/**
 * After trying to send `due`: on success those events leave the queue and the channel's clock restarts;
 * on failure they stay queued and go out with the next message.
 */
export function recordDelivery(state: AlertState, delivered: readonly AlertEvent[], now: number, ok: boolean): AlertState {
  if (!ok) return state;
  const sent = new Set(delivered);
  return { ...state, lastSentAt: now, pending: state.pending.filter((e) => !sent.has(e)) };
}

/** When held events may be sent, or null when none are held. */
export function heldUntil(state: AlertState, config: AlertPolicyConfig): number | null {
  if (state.pending.length === 0) return null;
  return state.lastSentAt === null ? 0 : state.lastSentAt + config.minMessageIntervalMs;
}

function eventBase(obs: Observation, at: string) {
  return { subject: obs.subject, label: obs.label, level: obs.level, summary: obs.summary, figures: obs.figures, at };
}

function kindOf(previous: HealthLevel, level: HealthLevel): AlertKind {
  if (level === 'OK') return 'resolved';
  if (previous === 'OK') return 'raised';
  if (previous === level) return 'reminder';
  return levelRank(level) > levelRank(previous) ? 'escalated' : 'changed';
}

/** One entry per subject: keep the first `previous`, take the latest state and figures, remember the peak. */
function mergeIntoPending(pending: readonly AlertEvent[], event: AlertEvent): AlertEvent[] {
  const index = pending.findIndex((e) => e.subject === event.subject);
  if (index < 0) return [...pending, event];
  const earlier = pending[index]!;
  const merged: AlertEvent = {
    ...event,
    previous: earlier.previous,
    kind: kindOf(earlier.previous, event.level),
    peak: worstLevel(earlier.peak, event.peak),
    episodeStart: earlier.episodeStart ?? event.episodeStart,
  };
  return pending.map((e, i) => (i === index ? merged : e));
}

function labelOf(subject: string): string {
  const colon = subject.indexOf(':');
  return colon < 0 ? subject : `${subject.slice(0, colon)} ${subject.slice(colon + 1)}`;
}
