/**
 * The state of one monitored subject (a replica, a worker's buffer, the cluster as a whole) and the
 * hysteresis that keeps it from flapping: a new state is adopted only after it held for K consecutive samples.
 */
export type HealthLevel = 'OK' | 'WARN' | 'CRIT' | 'UNREACHABLE' | 'BROKEN';

export const HEALTH_LEVELS: readonly HealthLevel[] = ['OK', 'WARN', 'CRIT', 'UNREACHABLE', 'BROKEN'];

/** 0 = fine, 1 = warning, 2 = critical. UNREACHABLE and BROKEN are as serious as CRIT. */
export function levelRank(level: HealthLevel): 0 | 1 | 2 {
  return level === 'OK' ? 0 : level === 'WARN' ? 1 : 2;
}

/** The more serious of two states; on a tie `b` (pass the newer one second). */
export function worstLevel(a: HealthLevel, b: HealthLevel): HealthLevel {
  return levelRank(b) >= levelRank(a) ? b : a;
}

export interface LevelTracker {
  /** The confirmed state. */
  readonly level: HealthLevel;
  /** ISO time the confirmed state was adopted. */
  readonly since: string;
  /** A different state seen in the latest consecutive samples, not yet confirmed. */
  readonly candidate: HealthLevel | null;
  readonly candidateCount: number;
}

export function initialTracker(at: string): LevelTracker {
  return { level: 'OK', since: at, candidate: null, candidateCount: 0 };
}

/**
 * One sample's worth of hysteresis. `observed` null means the sample carries no evidence (e.g. the primary
 * could not be read, so a replica's lag is unknown): the tracker is left as it was.
 */
export function advanceTracker(tracker: LevelTracker, observed: HealthLevel | null, samplesToChange: number, at: string): LevelTracker {
  if (observed === null) return tracker;
  if (observed === tracker.level) return tracker.candidate === null ? tracker : { ...tracker, candidate: null, candidateCount: 0 };
  const count = observed === tracker.candidate ? tracker.candidateCount + 1 : 1;
  if (count >= samplesToChange) return { level: observed, since: at, candidate: null, candidateCount: 0 };
  return { ...tracker, candidate: observed, candidateCount: count };
}

export function isHealthLevel(value: unknown): value is HealthLevel {
  return typeof value === 'string' && (HEALTH_LEVELS as readonly string[]).includes(value);
}
