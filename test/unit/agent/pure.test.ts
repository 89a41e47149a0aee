import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../../src/agent/backoff.js';
import { parseWindowSeconds } from '../../../src/agent/cli.js';
import { historyRanges, isInHistory, type RecordedFork } from '../../../src/agent/lineage.js';
import { isSqliteBusy } from '../../../src/agent/sqlite.js';

describe('backoff', () => {
  const bounds = { initialMs: 100, maxMs: 1000 };
  it('doubles from initialMs, caps at maxMs, and keeps at least half of the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, bounds, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, bounds, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelayMs(3, bounds, () => 0.5)).toBe(300);
  });
  it('stays finite for huge attempt counts and rejects attempt 0', () => {
    expect(backoffDelayMs(10_000, bounds, () => 1)).toBe(1000);
    expect(() => backoffDelayMs(0, bounds)).toThrow('attempt: expected an integer >= 1, got 0');
  });
});

describe('drain windows (core duration syntax, in seconds)', () => {
  it('parses ms/s/m/h/d and bare seconds', () => {
    expect(['90s', '15m', '2h', '1d', '45', '1.5m', '1500ms'].map((d) => parseWindowSeconds(d, '--window'))).toEqual([90, 900, 7200, 86400, 45, 90, 1.5]);
  });
  it.each(['', '15 minutes', '-5m', 'm', '1w'])('rejects %j as not a duration', (d) => {
    expect(() => parseWindowSeconds(d, '--window')).toThrow(`--window: '${d}' is not a duration; expected a number with an optional unit ms|s|m|h|d, e.g. 30s or 15m`);
  });
  it.each(['0s', '0', '0.1ms'])('rejects the empty window %j', (d) => {
    expect(() => parseWindowSeconds(d, '--window')).toThrow(`--window: the duration must be greater than zero, got '${d}'`);
  });
});

describe('timeline lineage', () => {
  const pos = (timelineId: number, lsn: bigint) => ({ timelineId, lsn });

  it('with no recorded forks only the target timeline up to its LSN is history', () => {
    const ranges = historyRanges(pos(2, 1000n), []);
    expect(ranges).toEqual([{ timelineId: 2, maxLsn: 1000n }]);
    expect(isInHistory(pos(2, 1000n), ranges)).toBe(true);
    expect(isInHistory(pos(2, 1001n), ranges)).toBe(false);
    // an older timeline with no recorded fork and a newer one are both "unknown": re-sent / kept
    expect(isInHistory(pos(1, 10n), ranges)).toBe(false);
    expect(isInHistory(pos(3, 10n), ranges)).toBe(false);
  });

  it('follows recorded forks back, bounded by every fork LSN on the way', () => {
    const forks: RecordedFork[] = [
      { timelineId: 1, forkLsn: 500n, nextTimelineId: 2 },
      { timelineId: 2, forkLsn: 900n, nextTimelineId: 3 },
    ];
    const ranges = historyRanges(pos(3, 2000n), forks);
    expect(ranges).toEqual([
      { timelineId: 3, maxLsn: 2000n },
      { timelineId: 2, maxLsn: 900n },
      { timelineId: 1, maxLsn: 500n },
    ]);
    expect(isInHistory(pos(1, 500n), ranges)).toBe(true);
    expect(isInHistory(pos(1, 501n), ranges)).toBe(false);
    // a target below an ancestor's fork LSN bounds the ancestor too (prune with a lagging replica)
    expect(historyRanges(pos(3, 700n), forks)).toEqual([
      { timelineId: 3, maxLsn: 700n },
      { timelineId: 2, maxLsn: 700n },
      { timelineId: 1, maxLsn: 500n },
    ]);
  });

  it('trusts no parent when two recorded forks claim the same child timeline, and ignores cycles', () => {
    const conflicting: RecordedFork[] = [
      { timelineId: 1, forkLsn: 500n, nextTimelineId: 3 },
      { timelineId: 2, forkLsn: 600n, nextTimelineId: 3 },
    ];
    expect(historyRanges(pos(3, 1000n), conflicting)).toEqual([{ timelineId: 3, maxLsn: 1000n }]);
    const bogus: RecordedFork[] = [{ timelineId: 5, forkLsn: 10n, nextTimelineId: 3 }];
    expect(historyRanges(pos(3, 1000n), bogus)).toEqual([{ timelineId: 3, maxLsn: 1000n }]);
  });
});

describe('isSqliteBusy (both SQLite drivers)', () => {
  it('recognises SQLITE_BUSY from better-sqlite3 and from node:sqlite, and nothing else', () => {
    expect(isSqliteBusy(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' }))).toBe(true);
    expect(isSqliteBusy(Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY_SNAPSHOT' }))).toBe(true);
    expect(isSqliteBusy(Object.assign(new Error('database is locked'), { code: 'ERR_SQLITE_ERROR', errcode: 5 }))).toBe(true);
    expect(isSqliteBusy(Object.assign(new Error('snapshot'), { code: 'ERR_SQLITE_ERROR', errcode: 517 }))).toBe(true);
    expect(isSqliteBusy(Object.assign(new Error('SQL logic error'), { code: 'ERR_SQLITE_ERROR', errcode: 1 }))).toBe(false);
    expect(isSqliteBusy(Object.assign(new Error('constraint'), { code: 'SQLITE_CONSTRAINT' }))).toBe(false);
    expect(isSqliteBusy(new Error('plain'))).toBe(false);
  });
});
