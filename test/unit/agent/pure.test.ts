import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../../src/agent/backoff.js';
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
