/**
 * Which sync markers are known to be in a timeline's history. Pure logic shared by drain and prune.
 *
 * A row's sync marker (timeline t, LSN l) says: the row was committed on timeline t at or before l.
 * The row is certainly in the history of a target position (timeline T, LSN L) when
 *   - t = T and l <= L, or
 *   - t is an ancestor of T whose fork this buffer recorded: T's history holds t up to that fork LSN,
 *     so l <= min(fork LSNs along the chain, L).
 * Anything else (a newer timeline, a sibling, an ancestor with no recorded fork) is treated as NOT in the
 * history: the drain re-sends it and prune keeps it. Idempotent inserts make that over-approximation harmless.
 */

export interface TimelinePosition {
  readonly timelineId: number;
  readonly lsn: bigint;
}

/** A fork this buffer drained: timeline `nextTimelineId` continues `timelineId` up to at least `forkLsn`. */
export interface RecordedFork {
  readonly timelineId: number;
  readonly forkLsn: bigint;
  readonly nextTimelineId: number;
}

/** Rows synced on `timelineId` at or below `maxLsn` are in the target's history. */
export interface HistoryRange {
  readonly timelineId: number;
  readonly maxLsn: bigint;
}

export function historyRanges(target: TimelinePosition, forks: readonly RecordedFork[]): HistoryRange[] {
  const ranges: HistoryRange[] = [{ timelineId: target.timelineId, maxLsn: target.lsn }];
  const seen = new Set([target.timelineId]);
  let current = target.timelineId;
  let bound = target.lsn;
  for (;;) {
    const parents = forks.filter((f) => f.nextTimelineId === current && f.timelineId < current);
    // Two recorded parents of one timeline means the records disagree: trust neither.
    if (parents.length !== 1) break;
    const parent = parents[0]!;
    if (seen.has(parent.timelineId)) break;
    bound = parent.forkLsn < bound ? parent.forkLsn : bound;
    ranges.push({ timelineId: parent.timelineId, maxLsn: bound });
    seen.add(parent.timelineId);
    current = parent.timelineId;
  }
  return ranges;
}

export function isInHistory(marker: TimelinePosition, ranges: readonly HistoryRange[]): boolean {
  return ranges.some((r) => r.timelineId === marker.timelineId && marker.lsn <= r.maxLsn);
}
