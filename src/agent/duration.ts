const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Parses '90s', '15m', '2h', '1d' (or a bare number of seconds) into seconds. */
export function parseDurationSeconds(value: string, field: string): number {
  const match = /^(\d+(?:\.\d+)?)([smhd]?)$/.exec(value.trim());
  if (!match) throw new Error(`${field}: expected a duration like 90s, 15m, 2h or 1d, got '${value}'`);
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] || 's']!;
  if (!(seconds > 0)) throw new Error(`${field}: the duration must be greater than zero, got '${value}'`);
  return seconds;
}
