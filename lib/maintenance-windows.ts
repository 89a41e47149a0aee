/**
 * Weekly and daily maintenance/backup windows (UTC), parsed into minute intervals on a circular week so
 * that any two can be checked for overlap. Pure: no CDK, no I/O.
 *
 * Forms (the RDS ones):
 * - weekly `ddd:hh24:mi-ddd:hh24:mi`, e.g. `sun:04:00-sun:04:30` (may wrap from sat to sun);
 * - daily `hh24:mi-hh24:mi`, e.g. `22:00-22:30` (may wrap past midnight), which recurs every day.
 */

export const MINUTES_PER_DAY = 24 * 60;
export const MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY;
export const WEEK_DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type WeekDay = (typeof WEEK_DAYS)[number];

export const WEEKLY_WINDOW_FORM = 'ddd:hh24:mi-ddd:hh24:mi in UTC, e.g. sun:04:00-sun:04:30';
export const DAILY_WINDOW_FORM = 'hh24:mi-hh24:mi in UTC, e.g. 22:00-22:30';

/** A window as a half-open interval [start, start + duration) in minutes from Monday 00:00 UTC. */
export interface WeeklyInterval {
  readonly start: number;
  readonly durationMinutes: number;
}

export interface ParsedWeeklyWindow extends WeeklyInterval {
  readonly kind: 'weekly';
  readonly text: string;
  readonly startDay: WeekDay;
  readonly startHour: number;
  readonly startMinute: number;
}

export interface ParsedDailyWindow {
  readonly kind: 'daily';
  readonly text: string;
  /** Minutes after 00:00 UTC. */
  readonly start: number;
  readonly durationMinutes: number;
}

export type ParsedWindow = ParsedWeeklyWindow | ParsedDailyWindow;

/** Thrown by the parsers; `message` says what is wrong and the expected form. */
export class WindowFormatError extends Error {}

const TIME = '([01]\\d|2[0-3]):([0-5]\\d)';
const WEEKLY_RE = new RegExp(`^(mon|tue|wed|thu|fri|sat|sun):${TIME}-(mon|tue|wed|thu|fri|sat|sun):${TIME}$`);
const DAILY_RE = new RegExp(`^${TIME}-${TIME}$`);

function mod(n: number, m: number): number {
  return ((n % m) + m) % m;
}

export function parseWeeklyWindow(text: string): ParsedWeeklyWindow {
  const m = WEEKLY_RE.exec(text);
  if (!m) throw new WindowFormatError(`'${text}' is not a weekly window: expected ${WEEKLY_WINDOW_FORM} (lower-case day)`);
  const startDay = m[1] as WeekDay;
  const start = WEEK_DAYS.indexOf(startDay) * MINUTES_PER_DAY + Number(m[2]) * 60 + Number(m[3]);
  const end = WEEK_DAYS.indexOf(m[4] as WeekDay) * MINUTES_PER_DAY + Number(m[5]) * 60 + Number(m[6]);
  const durationMinutes = mod(end - start, MINUTES_PER_WEEK);
  if (durationMinutes === 0) throw new WindowFormatError(`'${text}' starts and ends at the same time`);
  return { kind: 'weekly', text, start, durationMinutes, startDay, startHour: Number(m[2]), startMinute: Number(m[3]) };
}

export function parseDailyWindow(text: string): ParsedDailyWindow {
  const m = DAILY_RE.exec(text);
  if (!m) throw new WindowFormatError(`'${text}' is not a daily window: expected ${DAILY_WINDOW_FORM}`);
  const start = Number(m[1]) * 60 + Number(m[2]);
  const end = Number(m[3]) * 60 + Number(m[4]);
  const durationMinutes = mod(end - start, MINUTES_PER_DAY);
  if (durationMinutes === 0) throw new WindowFormatError(`'${text}' starts and ends at the same time`);
  return { kind: 'daily', text, start, durationMinutes };
}

/** The weekly intervals a window occupies: one for a weekly window, seven for a daily one. */
export function weeklyIntervals(window: ParsedWindow): WeeklyInterval[] {
  if (window.kind === 'weekly') return [{ start: window.start, durationMinutes: window.durationMinutes }];
  return WEEK_DAYS.map((_, day) => ({ start: day * MINUTES_PER_DAY + window.start, durationMinutes: window.durationMinutes }));
}

/** Half-open intervals on the circular week: touching windows (one ends when the other starts) do not overlap. */
export function intervalsOverlap(a: WeeklyInterval, b: WeeklyInterval): boolean {
  const bStartFromA = mod(b.start - a.start, MINUTES_PER_WEEK);
  const aStartFromB = mod(a.start - b.start, MINUTES_PER_WEEK);
  return bStartFromA < a.durationMinutes || aStartFromB < b.durationMinutes;
}

export function windowsOverlap(a: ParsedWindow, b: ParsedWindow): boolean {
  return weeklyIntervals(a).some((ia) => weeklyIntervals(b).some((ib) => intervalsOverlap(ia, ib)));
}

export interface NamedWindow {
  /** What the window belongs to, used in error messages (e.g. `database.windows.a.maintenance`). */
  readonly name: string;
  readonly window: ParsedWindow;
}

export interface WindowCollision {
  readonly first: NamedWindow;
  readonly second: NamedWindow;
}

/** Every pair of windows that overlap, in input order. */
export function findCollisions(windows: readonly NamedWindow[]): WindowCollision[] {
  const collisions: WindowCollision[] = [];
  for (let i = 0; i < windows.length; i++) {
    for (let j = i + 1; j < windows.length; j++) {
      if (windowsOverlap(windows[i].window, windows[j].window)) collisions.push({ first: windows[i], second: windows[j] });
    }
  }
  return collisions;
}

export function describeCollision(c: WindowCollision): string {
  return `${c.first.name} '${c.first.window.text}' overlaps ${c.second.name} '${c.second.window.text}'`;
}

/**
 * An SSM Maintenance Window schedule for a weekly window: `cron(mi hh ? * DDD *)` plus its duration in whole hours
 * (SSM durations are 1-24 hours).
 */
export function toSsmSchedule(window: ParsedWeeklyWindow): { schedule: string; durationHours: number } {
  if (window.durationMinutes % 60 !== 0 || window.durationMinutes < 60 || window.durationMinutes > MINUTES_PER_DAY) {
    throw new WindowFormatError(`'${window.text}' lasts ${window.durationMinutes} minutes: an SSM maintenance window lasts whole hours, 1 to 24`);
  }
  return {
    schedule: `cron(${window.startMinute} ${window.startHour} ? * ${window.startDay.toUpperCase()} *)`,
    durationHours: window.durationMinutes / 60,
  };
}

function hhmm(minutes: number): string {
  const m = mod(minutes, MINUTES_PER_DAY);
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

/** Formats a weekly window from its start (minutes from Monday 00:00) and duration. */
export function formatWeeklyWindow(start: number, durationMinutes: number): string {
  const s = mod(start, MINUTES_PER_WEEK);
  const e = mod(start + durationMinutes, MINUTES_PER_WEEK);
  const day = (m: number) => WEEK_DAYS[Math.floor(m / MINUTES_PER_DAY)];
  return `${day(s)}:${hhmm(s)}-${day(e)}:${hhmm(e)}`;
}

export function formatDailyWindow(start: number, durationMinutes: number): string {
  return `${hhmm(start)}-${hhmm(start + durationMinutes)}`;
}
