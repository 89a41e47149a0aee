/**
 * PostgreSQL log sequence numbers as PostgreSQL prints them ('16/B374D848').
 * Compared as 64-bit integers; byte distances fit a JS number (2^53 bytes = 8 PiB of WAL).
 */
export type Lsn = string;

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function isLsn(value: unknown): value is Lsn {
  return typeof value === 'string' && LSN_PATTERN.test(value);
}

export function parseLsn(value: string): bigint {
  const match = LSN_PATTERN.exec(value);
  if (!match) throw new Error(`invalid LSN '${value}': expected the form X/Y with hexadecimal X and Y, e.g. 0/3000060`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function formatLsn(value: bigint): Lsn {
  if (value < 0n) throw new Error(`invalid LSN value ${value}: must not be negative`);
  return `${(value >> 32n).toString(16).toUpperCase()}/${(value & 0xffffffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  const x = parseLsn(a);
  const y = parseLsn(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Bytes from `from` to `to` (negative when `to` is behind). */
export function lsnDiff(to: Lsn, from: Lsn): number {
  return Number(parseLsn(to) - parseLsn(from));
}

export function maxLsn(values: readonly Lsn[]): Lsn | undefined {
  return values.reduce<Lsn | undefined>((best, v) => (best === undefined || compareLsn(v, best) > 0 ? v : best), undefined);
}

export function minLsn(values: readonly Lsn[]): Lsn | undefined {
  return values.reduce<Lsn | undefined>((best, v) => (best === undefined || compareLsn(v, best) < 0 ? v : best), undefined);
}
