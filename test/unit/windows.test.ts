import { describe, expect, it } from 'vitest';
import {
  MINUTES_PER_DAY,
  MINUTES_PER_WEEK,
  describeCollision,
  findCollisions,
  formatDailyWindow,
  formatWeeklyWindow,
  parseDailyWindow,
  parseWeeklyWindow,
  toSsmSchedule,
  windowsOverlap,
} from '../../lib/maintenance-windows.js';

const sunday = 6 * MINUTES_PER_DAY;

describe('parsing windows', () => {
  it('parses a weekly window into minutes from Monday 00:00', () => {
    const w = parseWeeklyWindow('sun:04:00-sun:04:30');
    expect(w.start).toBe(sunday + 4 * 60);
    expect(w.durationMinutes).toBe(30);
    expect([w.startDay, w.startHour, w.startMinute]).toEqual(['sun', 4, 0]);
  });

  it('parses a weekly window that wraps from Sunday into Monday', () => {
    const w = parseWeeklyWindow('sun:23:30-mon:00:30');
    expect(w.start).toBe(sunday + 23 * 60 + 30);
    expect(w.durationMinutes).toBe(60);
  });

  it('parses a daily window, also across midnight', () => {
    expect(parseDailyWindow('22:00-22:30')).toMatchObject({ start: 22 * 60, durationMinutes: 30 });
    expect(parseDailyWindow('23:45-00:15')).toMatchObject({ start: 23 * 60 + 45, durationMinutes: 30 });
  });

  it.each([
    ['Sun:04:00-sun:04:30', 'not a weekly window'],
    ['sun:4:00-sun:04:30', 'not a weekly window'],
    ['sun:24:00-mon:00:30', 'not a weekly window'],
    ['sunday:04:00-sunday:05:00', 'not a weekly window'],
    ['sun:04:00-sun:04:00', 'starts and ends at the same time'],
  ])('rejects weekly %s with a message naming the expected form', (text, reason) => {
    expect(() => parseWeeklyWindow(text)).toThrow(reason);
    if (reason.startsWith('not')) expect(() => parseWeeklyWindow(text)).toThrow('ddd:hh24:mi-ddd:hh24:mi');
  });

  it.each(['22:00', '22:00-22:60', 'mon:22:00-mon:23:00', '10:00-10:00'])('rejects daily %s', (text) => {
    expect(() => parseDailyWindow(text)).toThrow(/daily window|same time/);
  });
});

describe('overlap', () => {
  const w = parseWeeklyWindow;
  const d = parseDailyWindow;

  it('windows that only touch do not overlap (half-open intervals)', () => {
    expect(windowsOverlap(w('sun:04:00-sun:04:30'), w('sun:04:30-sun:05:00'))).toBe(false);
    expect(windowsOverlap(w('sun:04:00-sun:04:31'), w('sun:04:30-sun:05:00'))).toBe(true);
  });

  it('a window containing another overlaps it, in both argument orders', () => {
    expect(windowsOverlap(w('sat:20:00-sun:08:00'), w('sun:04:00-sun:04:30'))).toBe(true);
    expect(windowsOverlap(w('sun:04:00-sun:04:30'), w('sat:20:00-sun:08:00'))).toBe(true);
  });

  it('detects overlap across the week boundary (Sunday night into Monday)', () => {
    expect(windowsOverlap(w('sun:23:30-mon:00:30'), w('mon:00:00-mon:00:45'))).toBe(true);
    expect(windowsOverlap(w('sun:23:30-mon:00:30'), w('mon:00:30-mon:01:00'))).toBe(false);
  });

  it('a daily window collides with a weekly window on any day', () => {
    expect(windowsOverlap(d('04:15-04:45'), w('wed:04:00-wed:04:30'))).toBe(true);
    expect(windowsOverlap(d('04:30-05:00'), w('wed:04:00-wed:04:30'))).toBe(false);
    // A daily window crossing midnight reaches into the next day, including Monday after Sunday.
    expect(windowsOverlap(d('23:45-00:15'), w('mon:00:00-mon:00:30'))).toBe(true);
  });

  it('findCollisions names both windows of every colliding pair', () => {
    const collisions = findCollisions([
      { name: 'database.windows.a.maintenance', window: w('sun:04:00-sun:04:30') },
      { name: 'database.windows.b.maintenance', window: w('sun:04:15-sun:04:45') },
      { name: 'database.windows.c.maintenance', window: w('sun:06:00-sun:06:30') },
      { name: 'workers.maintenanceWindow', window: w('sun:04:40-sun:05:40') },
    ]);
    expect(collisions.map(describeCollision)).toEqual([
      "database.windows.a.maintenance 'sun:04:00-sun:04:30' overlaps database.windows.b.maintenance 'sun:04:15-sun:04:45'",
      "database.windows.b.maintenance 'sun:04:15-sun:04:45' overlaps workers.maintenanceWindow 'sun:04:40-sun:05:40'",
    ]);
  });

  it('checks every minute of the week consistently with a brute-force occupancy map', () => {
    const windows = ['sat:23:00-sun:01:00', 'sun:00:30-sun:01:30', 'wed:12:00-wed:12:30', 'wed:12:30-wed:13:00', 'fri:10:00-sat:10:00'].map(w);
    const occupied = (start: number, duration: number) => {
      const set = new Set<number>();
      for (let m = 0; m < duration; m++) set.add((start + m) % MINUTES_PER_WEEK);
      return set;
    };
    for (const a of windows) {
      for (const b of windows) {
        const sa = occupied(a.start, a.durationMinutes);
        const bruteForce = [...occupied(b.start, b.durationMinutes)].some((m) => sa.has(m));
        expect(windowsOverlap(a, b), `${a.text} vs ${b.text}`).toBe(bruteForce);
      }
    }
  });
});

describe('SSM schedule and formatting', () => {
  it('turns a weekly window of whole hours into a cron schedule and a duration', () => {
    expect(toSsmSchedule(parseWeeklyWindow('sun:12:00-sun:14:00'))).toEqual({ schedule: 'cron(0 12 ? * SUN *)', durationHours: 2 });
    expect(toSsmSchedule(parseWeeklyWindow('tue:23:15-wed:01:15'))).toEqual({ schedule: 'cron(15 23 ? * TUE *)', durationHours: 2 });
  });

  it('rejects windows SSM cannot express', () => {
    expect(() => toSsmSchedule(parseWeeklyWindow('sun:12:00-sun:12:30'))).toThrow('lasts 30 minutes: an SSM maintenance window lasts whole hours, 1 to 24');
    expect(() => toSsmSchedule(parseWeeklyWindow('sun:12:00-mon:14:00'))).toThrow('whole hours, 1 to 24');
  });

  it('formats windows in the RDS forms, wrapping at the end of the day and week', () => {
    expect(formatWeeklyWindow(sunday + 23 * 60 + 30, 60)).toBe('sun:23:30-mon:00:30');
    expect(formatDailyWindow(23 * 60 + 45, 30)).toBe('23:45-00:15');
    expect(parseWeeklyWindow(formatWeeklyWindow(2 * MINUTES_PER_DAY + 125, 45)).text).toBe('wed:02:05-wed:02:50');
  });
});
