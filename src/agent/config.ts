import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { METRIC_NAMESPACE } from '../core/metric-names.js';

/** The smallest maxBufferBytes the config accepts (a smaller buffer could not hold one batch of rows). */
export const MIN_MAX_BUFFER_BYTES = 64 * 1024;

/** Where the agent finds the PostgreSQL writer. */
export type WriterSourceConfig =
  | { readonly kind: 'url'; readonly url: string }
  /**
   * A file holding one postgres URL, replaced atomically by the controller (local stand-in for the Route 53 record).
   * follow 'watch': a replaced file ends the session before the next batch; 'reconnect': read again only when a
   * new session is opened, as an AWS worker resolves the writer's DNS name (a session lives until it breaks).
   */
  | { readonly kind: 'file'; readonly path: string; readonly follow: 'watch' | 'reconnect' }
  /** AWS: the writer's DNS name, credentials from Secrets Manager, TLS required. */
  | {
      readonly kind: 'aws';
      readonly host: string;
      readonly port: number;
      readonly database: string;
      readonly secretArn: string;
      /** PEM bundle to verify the server certificate (the RDS CA bundle); default: Node's CAs + NODE_EXTRA_CA_CERTS. */
      readonly tlsCaFile?: string;
    };

export interface StreamConfig {
  readonly name: string;
  /** Target table, 'name' or 'schema.name'. */
  readonly table: string;
  /** Columns of the table's primary or unique key: the idempotency key. */
  readonly key: readonly string[];
  /** Every payload field that is sent; a payload field outside this list is rejected. Includes the key columns. */
  readonly columns: readonly string[];
  readonly maxPayloadBytes: number;
}

export interface AgentConfig {
  readonly writer?: WriterSourceConfig;
  /** The buffer file, used when the CLI gets no --buffer (the worker's systemd unit passes both). */
  readonly bufferPath?: string;
  readonly streams: Readonly<Record<string, StreamConfig>>;
  readonly clusterId?: string;
  readonly workerId?: string;
  /** Rows per PostgreSQL transaction. */
  readonly batchSize: number;
  /** How often the daemon looks for new rows when idle (appends from other processes). */
  readonly pollIntervalMs: number;
  /** SQLite busy timeout: how long an append waits for another process's write lock (or for the daemon's answer). */
  readonly busyTimeoutMs: number;
  /**
   * Appends that would grow the buffer's database beyond this are refused (BufferFullError, nothing stored) instead
   * of filling the volume; syncing and pruning are not limited. The WAL file comes on top (up to ~4 MiB between
   * automatic checkpoints). Unset: only the volume's free space limits appends.
   */
  readonly maxBufferBytes?: number;
  /**
   * The daemon's append socket (group commit, docs/buffer.md): a path, or false for none. Default: the
   * buffer file's path plus '.sock'.
   */
  readonly appendSocket?: string | false;
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
  /** Exponential backoff with full jitter between failed sync attempts. */
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly retention: {
    /** Synced rows are kept at least this long after every replica replayed past them (a margin for late failovers). */
    readonly seconds: number;
    /**
     * Prune only when the writer shows at least this many replicas (each with a readable replay LSN). Only the
     * replicas connected at that moment are consulted: set it to the number of replicas that may be promoted,
     * so that one disconnected (down, rebuilding) blocks prune instead of being ignored.
     */
    readonly minReplicas: number;
    /** How often the daemon prunes. */
    readonly pruneIntervalSeconds: number;
  };
  readonly drain: {
    /** Rows per statement in a drain (bigger than batchSize: a drain moves a backlog at once). */
    readonly batchSize: number;
    /** A drain retries a failing writer until this deadline, then fails. */
    readonly timeoutSeconds: number;
  };
  readonly metrics: {
    readonly enabled: boolean;
    readonly namespace: string;
    readonly dimensions: Readonly<Record<string, string>>;
    readonly intervalSeconds: number;
  };
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

const STREAM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Reads and validates a config file; relative paths inside it resolve against the file's directory. */
export function loadConfig(file: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  return parseConfig(raw, path.dirname(path.resolve(file)));
}

/** `allowNoStreams` is for commands that only read the buffer file (status, checkpoint) when no config is given. */
export function parseConfig(raw: unknown, baseDir = process.cwd(), options: { allowNoStreams?: boolean } = {}): AgentConfig {
  const root = object(raw, 'config');
  allowOnly(root, 'config', [
    'writerUrl',
    'writerFile',
    'writerFileFollow',
    'writerHost',
    'writerPort',
    'database',
    'secretArn',
    'tlsCaFile',
    'bufferPath',
    'streams',
    'clusterId',
    'workerId',
    'batchSize',
    'pollIntervalMs',
    'busyTimeoutMs',
    'maxBufferBytes',
    'appendSocket',
    'connectTimeoutMs',
    'queryTimeoutMs',
    'backoff',
    'retention',
    'drain',
    'metrics',
  ]);
  const backoff = optionalObject(root.backoff, 'backoff');
  allowOnly(backoff, 'backoff', ['initialMs', 'maxMs']);
  const initialMs = int(backoff.initialMs, 'backoff.initialMs', 250, 1);
  const maxMs = int(backoff.maxMs, 'backoff.maxMs', 30_000, 1);
  if (maxMs < initialMs) throw new ConfigError(`backoff.maxMs (${maxMs}) must be >= backoff.initialMs (${initialMs})`);
  const retention = optionalObject(root.retention, 'retention');
  allowOnly(retention, 'retention', ['seconds', 'minReplicas', 'pruneIntervalSeconds']);
  const drain = optionalObject(root.drain, 'drain');
  allowOnly(drain, 'drain', ['batchSize', 'timeoutSeconds']);
  const metrics = optionalObject(root.metrics, 'metrics');
  allowOnly(metrics, 'metrics', ['enabled', 'namespace', 'dimensions', 'intervalSeconds']);
  const retentionSeconds = int(retention.seconds, 'retention.seconds', 24 * 3600, 0);
  const clusterId = optionalString(root.clusterId, 'clusterId');
  const workerId = optionalString(root.workerId, 'workerId');
  const bufferPath = optionalString(root.bufferPath, 'bufferPath');
  return {
    writer: parseWriter(root, baseDir),
    bufferPath: bufferPath === undefined ? undefined : path.resolve(baseDir, bufferPath),
    streams: options.allowNoStreams && root.streams === undefined ? {} : parseStreams(root.streams),
    clusterId,
    workerId,
    batchSize: int(root.batchSize, 'batchSize', 1000, 1, 50_000),
    pollIntervalMs: int(root.pollIntervalMs, 'pollIntervalMs', 200, 1),
    busyTimeoutMs: int(root.busyTimeoutMs, 'busyTimeoutMs', 5000, 0),
    ...(root.maxBufferBytes === undefined ? {} : { maxBufferBytes: int(root.maxBufferBytes, 'maxBufferBytes', 0, MIN_MAX_BUFFER_BYTES) }),
    appendSocket: parseAppendSocket(root.appendSocket, baseDir),
    connectTimeoutMs: int(root.connectTimeoutMs, 'connectTimeoutMs', 5000, 1),
    queryTimeoutMs: int(root.queryTimeoutMs, 'queryTimeoutMs', 60_000, 1),
    backoff: { initialMs, maxMs },
    retention: {
      seconds: retentionSeconds,
      minReplicas: int(retention.minReplicas, 'retention.minReplicas', 1, 0),
      pruneIntervalSeconds: int(retention.pruneIntervalSeconds, 'retention.pruneIntervalSeconds', 600, 1),
    },
    drain: {
      batchSize: int(drain.batchSize, 'drain.batchSize', 5000, 1, 100_000),
      timeoutSeconds: int(drain.timeoutSeconds, 'drain.timeoutSeconds', 300, 1),
    },
    metrics: {
      enabled: bool(metrics.enabled, 'metrics.enabled', false),
      namespace: optionalString(metrics.namespace, 'metrics.namespace') ?? METRIC_NAMESPACE,
      dimensions: parseDimensions(metrics.dimensions, clusterId, workerId),
      intervalSeconds: int(metrics.intervalSeconds, 'metrics.intervalSeconds', 60, 1),
    },
  };
}

/** Parses a writer URL given on the command line or in a writer file. */
export function parseWriterUrl(value: string, field: string): string {
  const url = value.trim();
  if (!/^postgres(ql)?:\/\/\S+$/.test(url)) {
    throw new ConfigError(`${field}: expected a postgres URL like postgres://user:password@host:5432/db, got '${redactUrl(url)}'`);
  }
  return url;
}

/** The URL without its password, for logs and status output. */
export function redactUrl(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:/@\s]*):[^@\s]*@/, '$1:***@');
}

function parseWriter(root: Json, baseDir: string): WriterSourceConfig | undefined {
  const awsFields = ['writerHost', 'writerPort', 'database', 'secretArn', 'tlsCaFile'].filter((f) => root[f] !== undefined);
  const given = [root.writerUrl !== undefined && 'writerUrl', root.writerFile !== undefined && 'writerFile', awsFields.length > 0 && 'writerHost']
    .filter(Boolean);
  if (given.length > 1) {
    throw new ConfigError(`config: give only one writer source (writerUrl, writerFile, or writerHost+writerPort+database+secretArn), got ${given.join(' and ')}`);
  }
  if (root.writerFileFollow !== undefined && root.writerFile === undefined) throw new ConfigError('writerFileFollow: only with writerFile');
  if (root.writerUrl !== undefined) return { kind: 'url', url: parseWriterUrl(string(root.writerUrl, 'writerUrl'), 'writerUrl') };
  if (root.writerFile !== undefined) {
    const follow = root.writerFileFollow ?? 'watch';
    if (follow !== 'watch' && follow !== 'reconnect') throw new ConfigError(`writerFileFollow: expected 'watch' or 'reconnect', got ${JSON.stringify(follow)}`);
    return { kind: 'file', path: path.resolve(baseDir, string(root.writerFile, 'writerFile')), follow };
  }
  if (awsFields.length === 0) return undefined;
  const tlsCaFile = optionalString(root.tlsCaFile, 'tlsCaFile');
  return {
    kind: 'aws',
    host: string(root.writerHost, 'writerHost'),
    port: int(root.writerPort, 'writerPort', 5432, 1, 65_535),
    database: string(root.database, 'database'),
    secretArn: arn(root.secretArn, 'secretArn'),
    tlsCaFile: tlsCaFile === undefined ? undefined : path.resolve(baseDir, tlsCaFile),
  };
}

/** The `streams` map (also validated by the CDK config, which writes it into every worker's agent config). */
export function parseStreams(value: unknown): Record<string, StreamConfig> {
  const streams = object(value, 'streams');
  const names = Object.keys(streams);
  if (names.length === 0) throw new ConfigError('streams: expected at least one stream, e.g. {"events": {"table": "events", "key": ["id"], "columns": ["id", "body"]}}');
  const out: Record<string, StreamConfig> = {};
  for (const name of names) {
    const field = `streams.${name}`;
    if (!STREAM_NAME.test(name)) throw new ConfigError(`${field}: stream names use letters, digits, '_', '.', '-' (1-64 characters)`);
    const s = object(streams[name], field);
    allowOnly(s, field, ['table', 'key', 'columns', 'maxPayloadBytes']);
    const table = string(s.table, `${field}.table`);
    if (table.split('.').length > 2 || table.split('.').some((part) => part === '')) {
      throw new ConfigError(`${field}.table: expected 'table' or 'schema.table', got '${table}'`);
    }
    const columns = nameList(s.columns, `${field}.columns`);
    const key = nameList(s.key, `${field}.key`);
    for (const k of key) {
      if (!columns.includes(k)) throw new ConfigError(`${field}.key: key column '${k}' must also be listed in ${field}.columns`);
    }
    out[name] = { name, table, key, columns, maxPayloadBytes: int(s.maxPayloadBytes, `${field}.maxPayloadBytes`, DEFAULT_MAX_PAYLOAD_BYTES, 2, 1 << 30) };
  }
  return out;
}

/** Longest path a Unix socket address holds on Linux (sun_path is 108 bytes with the terminating NUL). */
export const UNIX_SOCKET_PATH_MAX_BYTES = 107;

function parseAppendSocket(value: unknown, baseDir: string): string | false | undefined {
  if (value === undefined || value === false) return value;
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(`appendSocket: expected a socket path or false, got ${JSON.stringify(value)}`);
  const socket = path.resolve(baseDir, value);
  checkSocketPathLength(socket, 'appendSocket');
  return socket;
}

/** Throws a ConfigError naming `field` when `socket` does not fit a Unix socket address. */
export function checkSocketPathLength(socket: string, field: string): void {
  const bytes = Buffer.byteLength(socket);
  if (bytes > UNIX_SOCKET_PATH_MAX_BYTES) {
    throw new ConfigError(`${field}: the socket path ${socket} is ${bytes} bytes, over the ${UNIX_SOCKET_PATH_MAX_BYTES} a Unix socket path may have: set appendSocket to a shorter path, or false`);
  }
}

function parseDimensions(value: unknown, clusterId: string | undefined, workerId: string | undefined): Record<string, string> {
  const given = optionalObject(value, 'metrics.dimensions');
  const out: Record<string, string> = {};
  if (clusterId !== undefined) out.ClusterId = clusterId;
  if (workerId !== undefined) out.WorkerId = workerId;
  for (const [name, v] of Object.entries(given)) out[name] = string(v, `metrics.dimensions.${name}`);
  if (Object.keys(out).length > 30) throw new ConfigError('metrics.dimensions: CloudWatch allows at most 30 dimensions');
  return out;
}

function nameList(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError(`${field}: expected a non-empty array of column names`);
  const names = value.map((v, i) => string(v, `${field}[${i}]`));
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new ConfigError(`${field}: column '${dup}' is listed twice`);
  return names;
}

function object(value: unknown, field: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(`${field}: expected a JSON object`);
  return value as Json;
}

function optionalObject(value: unknown, field: string): Json {
  return value === undefined ? {} : object(value, field);
}

function allowOnly(obj: Json, field: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) throw new ConfigError(`${field}: unknown field '${key}' (allowed: ${allowed.join(', ')})`);
  }
}

function string(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new ConfigError(`${field}: expected a non-empty string`);
  return value;
}

function optionalString(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : string(value, field);
}

function arn(value: unknown, field: string): string {
  const s = string(value, field);
  if (!s.startsWith('arn:')) throw new ConfigError(`${field}: expected a Secrets Manager ARN (arn:aws:secretsmanager:...), got '${s}'`);
  return s;
}

function bool(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ConfigError(`${field}: expected true or false`);
  return value;
}

function int(value: unknown, field: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${field}: expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}
