/** Worker buffer backlog policy: a worker whose buffer is not draining means writes are piling up locally. */
import type { HealthLevel } from './health-level.js';
import type { BacklogThresholds } from './monitor-config.js';
import type { WorkerBacklog } from '../ports/buffer-backlog-source.js';

/**
 * The state one backlog reading shows; like the lag policy, CRIT clears only below the WARN thresholds.
 * null when the reading carries no figure.
 */
export function classifyBacklog(reading: WorkerBacklog, current: HealthLevel, t: BacklogThresholds): HealthLevel | null {
  const { pendingRows, oldestPendingAgeSeconds: age } = reading;
  if (pendingRows === null && age === null) return null;
  const atLeast = (value: number | null, threshold: number) => value !== null && value >= threshold;
  const warn = atLeast(age, t.warnOldestPendingSeconds) || atLeast(pendingRows, t.warnPendingRows);
  const crit = atLeast(age, t.critOldestPendingSeconds) || atLeast(pendingRows, t.critPendingRows);
  if (crit || (current === 'CRIT' && warn)) return 'CRIT';
  return warn ? 'WARN' : 'OK';
}
