/** postgresql.conf / pg_hba.conf contents for local cluster nodes. Pure: no I/O. */

/** Settings every node gets; `LocalClusterOptions.settings` are written after them and win. */
export const BASE_SETTINGS: Readonly<Record<string, string>> = {
  listen_addresses: '127.0.0.1',
  // TCP on loopback only: no Unix socket (socket paths would need a directory the OS user can write).
  unix_socket_directories: '',
  wal_level: 'replica',
  hot_standby: 'on',
  hot_standby_feedback: 'on',
  max_wal_senders: '10',
  max_replication_slots: '10',
  wal_keep_size: '64MB',
  // Standbys reconnect quickly after a repoint and report replay positions often enough for lag tests.
  wal_retrieve_retry_interval: '500ms',
  wal_receiver_status_interval: '1s',
  shared_buffers: '32MB',
  max_connections: '50',
  logging_collector: 'off',
  log_line_prefix: "'%m [%p] '",
  password_encryption: 'scram-sha-256',
};

const SETTING_NAME = /^[a-z_][a-z0-9_.]*$/;

export function validateSettings(settings: Readonly<Record<string, string>>): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!SETTING_NAME.test(name)) {
      throw new Error(`settings: invalid PostgreSQL setting name '${name}': expected lower-case letters, digits, '_' or '.', e.g. work_mem`);
    }
    if (typeof value !== 'string') {
      throw new Error(`settings.${name} must be a string (as written in postgresql.conf, e.g. '64MB'), got ${JSON.stringify(value)}`);
    }
    if (/[\r\n]/.test(value)) throw new Error(`settings.${name} must be a single line`);
  }
}

/** A postgresql.conf value: quoted unless it already is (so both 'on' and "'%m '" work). */
export function quoteConfValue(value: string): string {
  if (/^'.*'$/s.test(value)) return value;
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

export function renderSettings(settings: Readonly<Record<string, string>>): string {
  return Object.entries(settings)
    .map(([name, value]) => `${name} = ${quoteConfValue(value)}`)
    .join('\n');
}

/** Appended once to the primary's postgresql.conf; replicas inherit it through the copy. */
export function clusterConf(userSettings: Readonly<Record<string, string>>): string {
  return [
    '',
    '# --- rds-failover-stack local cluster ---',
    renderSettings(BASE_SETTINGS),
    renderSettings(userSettings),
    "include_if_exists = 'node.conf'",
    "include_if_exists = 'replication.conf'",
    '',
  ].join('\n');
}

/** Per-node file: only what differs between nodes. */
export function nodeConf(port: number): string {
  return `port = ${port}\n`;
}

export interface UpstreamConf {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly applicationName: string;
  readonly slotName: string;
}

/** libpq conninfo value: single-quoted, backslash and quote escaped. */
function conninfoValue(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** replication.conf of a standby: whom to stream from, through which slot. Empty on a primary. */
export function replicationConf(upstream: UpstreamConf): string {
  const conninfo = [
    `host=${conninfoValue(upstream.host)}`,
    `port=${upstream.port}`,
    `user=${conninfoValue(upstream.user)}`,
    `password=${conninfoValue(upstream.password)}`,
    `application_name=${conninfoValue(upstream.applicationName)}`,
    'connect_timeout=2',
  ].join(' ');
  return [`primary_conninfo = ${quoteConfValue(conninfo)}`, `primary_slot_name = ${quoteConfValue(upstream.slotName)}`, "recovery_target_timeline = 'latest'", ''].join('\n');
}

/** Loopback clients and replication connections with a password. */
export function hbaConf(fenced: boolean): string {
  const fence = fenced
    ? ['# FENCED by the failover runbook: no client or replication connection is accepted.', 'host all all all reject', 'host replication all all reject']
    : [];
  return [...fence, 'host all all 127.0.0.1/32 scram-sha-256', 'host replication all 127.0.0.1/32 scram-sha-256', ''].join('\n');
}

/** Physical slot name for a node id ('pg-1' -> 'pg_1'): slot names allow [a-z0-9_] only. */
export function slotNameFor(nodeId: string): string {
  return nodeId.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** Parse the status line of postmaster.pid (PostgreSQL 10+: line 8, 'starting' | 'stopping' | 'ready' | 'standby'). */
export function postmasterStatus(pidFile: string): { pid: number; port: number; status: string } | undefined {
  const lines = pidFile.split('\n');
  if (lines.length < 8) return undefined;
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, port, status: (lines[7] ?? '').trim() };
}
