/**
 * Configuration of the lag monitor and its alerting: thresholds, hysteresis, sampling and message pacing.
 * Pure: shared by the lag-monitor Lambda (which reads it from its environment) and by the Monitoring construct
 * (which validates it at synth time and uses the same thresholds for its CloudWatch alarms).
 */

export interface LagThresholds {
  /** Replay lag in seconds at or above which a replica is WARN. */
  readonly warnSeconds: number;
  /** Replay lag in seconds at or above which a replica is CRIT. */
  readonly critSeconds: number;
  /** Bytes of WAL the replica has not replayed yet at or above which it is WARN. */
  readonly warnBytes: number;
  /** Bytes of WAL the replica has not replayed yet at or above which it is CRIT. */
  readonly critBytes: number;
}

export interface BacklogThresholds {
  /** Age of a worker's oldest unsynced row (seconds) at or above which the worker is WARN. */
  readonly warnOldestPendingSeconds: number;
  readonly critOldestPendingSeconds: number;
  /** Rows waiting in a worker's buffer at or above which the worker is WARN. */
  readonly warnPendingRows: number;
  readonly critPendingRows: number;
}

export interface MonitorConfig {
  readonly lag: LagThresholds;
  readonly backlog: BacklogThresholds;
  /** Hysteresis: a replica's state changes only after the new state held for this many consecutive samples. */
  readonly samplesToChange: number;
  /** Time between two samples within one run. */
  readonly sampleIntervalMs: number;
  /** How long one run (one Lambda invocation) keeps sampling; samples are taken at 0, S, 2S ... up to this. */
  readonly runDurationMs: number;
  /** Remind every so often while a subject stays not OK. */
  readonly reminderIntervalMs: number;
  /** Never more than one message per this interval on the channel (Slack allows one per second). */
  readonly minMessageIntervalMs: number;
}

const MiB = 1024 * 1024;

export const DEFAULT_MONITOR_CONFIG: MonitorConfig = {
  lag: { warnSeconds: 30, critSeconds: 120, warnBytes: 64 * MiB, critBytes: 512 * MiB },
  backlog: { warnOldestPendingSeconds: 60, critOldestPendingSeconds: 300, warnPendingRows: 10_000, critPendingRows: 100_000 },
  samplesToChange: 3,
  sampleIntervalMs: 10_000,
  runDurationMs: 50_000,
  reminderIntervalMs: 30 * 60_000,
  minMessageIntervalMs: 1_000,
};

type DeepPartial<T> = { -readonly [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };
export type MonitorConfigInput = DeepPartial<MonitorConfig>;

/**
 * Fills defaults and validates. Collects every problem and throws one error listing them, each naming the
 * field path (under `path`) and the expected form.
 */
export function resolveMonitorConfig(input: unknown = {}, path = 'monitor'): MonitorConfig {
  const errors: string[] = [];
  const root = asRecord(input, path, errors);
  const lagIn = asRecord(root.lag ?? {}, `${path}.lag`, errors);
  const backlogIn = asRecord(root.backlog ?? {}, `${path}.backlog`, errors);
  const known = new Set(Object.keys(DEFAULT_MONITOR_CONFIG));
  for (const key of Object.keys(root)) if (!known.has(key)) errors.push(`${path}.${key}: unknown field; expected one of ${[...known].join(', ')}`);
  checkKnown(lagIn, DEFAULT_MONITOR_CONFIG.lag, `${path}.lag`, errors);
  checkKnown(backlogIn, DEFAULT_MONITOR_CONFIG.backlog, `${path}.backlog`, errors);

  const num = (record: Record<string, unknown>, key: string, fallback: number, at: string, rule: NumberRule): number => {
    const value = record[key] ?? fallback;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      errors.push(`${at}.${key}: expected ${rule.describe}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    if (!rule.test(value)) errors.push(`${at}.${key}: expected ${rule.describe}, got ${value}`);
    return value;
  };
  const d = DEFAULT_MONITOR_CONFIG;
  const lag: LagThresholds = {
    warnSeconds: num(lagIn, 'warnSeconds', d.lag.warnSeconds, `${path}.lag`, POSITIVE),
    critSeconds: num(lagIn, 'critSeconds', d.lag.critSeconds, `${path}.lag`, POSITIVE),
    warnBytes: num(lagIn, 'warnBytes', d.lag.warnBytes, `${path}.lag`, POSITIVE_INT),
    critBytes: num(lagIn, 'critBytes', d.lag.critBytes, `${path}.lag`, POSITIVE_INT),
  };
  const backlog: BacklogThresholds = {
    warnOldestPendingSeconds: num(backlogIn, 'warnOldestPendingSeconds', d.backlog.warnOldestPendingSeconds, `${path}.backlog`, POSITIVE),
    critOldestPendingSeconds: num(backlogIn, 'critOldestPendingSeconds', d.backlog.critOldestPendingSeconds, `${path}.backlog`, POSITIVE),
    warnPendingRows: num(backlogIn, 'warnPendingRows', d.backlog.warnPendingRows, `${path}.backlog`, POSITIVE_INT),
    critPendingRows: num(backlogIn, 'critPendingRows', d.backlog.critPendingRows, `${path}.backlog`, POSITIVE_INT),
  };
  const config: MonitorConfig = {
    lag,
    backlog,
    samplesToChange: num(root, 'samplesToChange', d.samplesToChange, path, { describe: 'an integer from 1 to 60', test: (v) => Number.isInteger(v) && v >= 1 && v <= 60 }),
    sampleIntervalMs: num(root, 'sampleIntervalMs', d.sampleIntervalMs, path, { describe: 'an integer number of milliseconds from 50 to 600000', test: (v) => Number.isInteger(v) && v >= 50 && v <= 600_000 }),
    runDurationMs: num(root, 'runDurationMs', d.runDurationMs, path, { describe: 'an integer number of milliseconds from 0 to 900000', test: (v) => Number.isInteger(v) && v >= 0 && v <= 900_000 }),
    reminderIntervalMs: num(root, 'reminderIntervalMs', d.reminderIntervalMs, path, { describe: 'an integer number of milliseconds of at least 1000', test: (v) => Number.isInteger(v) && v >= 1000 }),
    minMessageIntervalMs: num(root, 'minMessageIntervalMs', d.minMessageIntervalMs, path, {
      describe: 'an integer number of milliseconds of at least 1000 (Slack accepts one message per second per channel)',
      test: (v) => Number.isInteger(v) && v >= 1000,
    }),
  };
  if (lag.warnSeconds >= lag.critSeconds) errors.push(`${path}.lag: warnSeconds (${lag.warnSeconds}) must be below critSeconds (${lag.critSeconds})`);
  if (lag.warnBytes >= lag.critBytes) errors.push(`${path}.lag: warnBytes (${lag.warnBytes}) must be below critBytes (${lag.critBytes})`);
  if (backlog.warnOldestPendingSeconds >= backlog.critOldestPendingSeconds) {
    errors.push(`${path}.backlog: warnOldestPendingSeconds (${backlog.warnOldestPendingSeconds}) must be below critOldestPendingSeconds (${backlog.critOldestPendingSeconds})`);
  }
  if (backlog.warnPendingRows >= backlog.critPendingRows) {
    errors.push(`${path}.backlog: warnPendingRows (${backlog.warnPendingRows}) must be below critPendingRows (${backlog.critPendingRows})`);
  }
  if (config.reminderIntervalMs < config.minMessageIntervalMs) {
    errors.push(`${path}.reminderIntervalMs (${config.reminderIntervalMs}) must not be below minMessageIntervalMs (${config.minMessageIntervalMs})`);
  }
  if (errors.length > 0) throw new Error(`invalid monitor configuration:\n  - ${errors.join('\n  - ')}`);
  return config;
}

interface NumberRule {
  readonly describe: string;
  readonly test: (value: number) => boolean;
}
const POSITIVE: NumberRule = { describe: 'a number above 0', test: (v) => v > 0 };
const POSITIVE_INT: NumberRule = { describe: 'an integer above 0', test: (v) => Number.isInteger(v) && v > 0 };

function asRecord(value: unknown, at: string, errors: string[]): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  errors.push(`${at}: expected an object, got ${JSON.stringify(value)}`);
  return {};
}

function checkKnown(record: Record<string, unknown>, defaults: object, at: string, errors: string[]): void {
  const known = Object.keys(defaults);
  for (const key of Object.keys(record)) if (!known.includes(key)) errors.push(`${at}.${key}: unknown field; expected one of ${known.join(', ')}`);
}
