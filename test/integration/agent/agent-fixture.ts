import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { expect } from 'vitest';
import type { AppendServerStats } from '../../../src/agent/append-server.js';
import type { Epoch } from '../../../src/core/lineage.js';
import { compareLsn } from '../../../src/core/lsn.js';
import type { LocalCluster } from '../../../src/local/local-cluster.js';
import { grantLineageToAgent, recordChildEpoch } from '../../../src/pg/lineage.js';

export const REPO_ROOT = path.join(__dirname, '..', '..', '..');
export const AGENT = [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'bin', 'rds-failover-agent.ts')];

export interface AgentRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts the agent CLI as a child process (the way SSM and the drill run it). */
export function spawnAgent(args: readonly string[]): ChildProcess {
  return spawn(AGENT[0]!, [...AGENT.slice(1), ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
}

export function collect(child: ChildProcess, input?: string): Promise<AgentRun> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin!.on('error', () => undefined);
  if (input !== undefined) child.stdin!.end(input);
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

export function runAgent(args: readonly string[], input = ''): Promise<AgentRun> {
  return collect(spawnAgent(args), input);
}

/** Resolves when the child's stderr contains `text` (a log message). */
export function waitForStderr(child: ChildProcess, text: string, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no '${text}' on stderr within ${timeoutMs} ms: ${seen.slice(-500)}`)), timeoutMs);
    const onData = (chunk: Buffer | string) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    child.on('close', () => {
      clearTimeout(timer);
      if (!seen.includes(text)) reject(new Error(`agent exited before '${text}': ${seen.slice(-500)}`));
    });
  });
}

export function writeConfig(file: string, config: Record<string, unknown>): string {
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export const EVENTS_STREAM = { table: 'events', key: ['id'], columns: ['id', 'body', 'n'] };
export const EVENTS_DDL = 'CREATE TABLE events (id text PRIMARY KEY, body text, n bigint CHECK (n >= 0))';

export async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(cluster: LocalCluster, node: string, text: string, database = 'postgres'): Promise<T[]> {
  return withClient(cluster, node, database, async (c) => (await c.query<T>(text)).rows);
}

/**
 * Waits until the writer's pg_stat_replication shows `replicas` standbys that replayed everything inserted so far.
 * The agent's sync markers are insert LSNs (sink.ts), which can be past pg_current_wal_lsn(): WAL inserted but
 * not yet written (autovacuum, the background writer), or the start of a new page's header when a commit ended a
 * page. A committed transaction with an xid flushes past that point, so the standbys receive and replay it.
 */
export async function waitForReportedReplay(cluster: LocalCluster, writer: string, replicas: number, timeoutMs = 20_000): Promise<void> {
  const [{ lsn }] = await sql<{ lsn: string }>(cluster, writer, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await sql(cluster, writer, 'SELECT txid_current()');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const peers = await sql<{ replay: string | null }>(cluster, writer, 'SELECT replay_lsn::text AS replay FROM pg_stat_replication');
    if (peers.length === replicas && peers.every((p) => p.replay !== null && compareLsn(p.replay, lsn!) >= 0)) return;
    if (Date.now() > deadline) throw new Error(`${writer}'s ${replicas} replica(s) did not report replay up to ${lsn}: ${JSON.stringify(peers)}`);
    await sleep(50);
  }
}

/** Every id in the table, and how many rows carry each (to catch duplicates in a table without a key). */
export async function idsIn(cluster: LocalCluster, node: string, database: string, table = 'events'): Promise<{ ids: Set<string>; rows: number }> {
  const rows = await sql<{ id: string }>(cluster, node, `SELECT id FROM ${table}`, database);
  return { ids: new Set(rows.map((r) => r.id)), rows: rows.length };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function ndjson(rows: readonly object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}

/** The ids in a buffer file, in seq order (read-only, as another process would). */
export function storedIds(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT id FROM outbox ORDER BY seq').all() as { id: string }[]).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** `rds-failover-agent run` as its own process, once it serves the append socket. */
export interface RunningDaemon {
  readonly child: ChildProcess;
  /** SIGKILL, at any point. */
  kill(): Promise<void>;
  /** SIGTERM (exit 0 expected); the group-commit counters it logs on the way out. */
  stop(): Promise<AppendServerStats>;
}

export async function startDaemon(args: readonly string[]): Promise<RunningDaemon> {
  const child = spawnAgent(['run', ...args]);
  const done = collect(child);
  await waitForStderr(child, 'append socket ready', 90_000); // tsx starts slowly on a busy 2-core machine
  return {
    child,
    async kill() {
      child.kill('SIGKILL');
      expect((await done).signal).toBe('SIGKILL');
    },
    async stop() {
      child.kill('SIGTERM');
      const run = await done;
      expect(run.code, run.stderr).toBe(0);
      const stopped = run.stderr.split('\n').find((line) => line.includes('"agent stopped"'));
      return (JSON.parse(stopped!) as { groupCommits: AppendServerStats }).groupCommits;
    },
  };
}

/**
 * After a crash test: nothing acknowledged twice, every acknowledged id in PostgreSQL, each row there once,
 * and PostgreSQL holds exactly the rows of the buffer (sync ran to the end first).
 */
export async function expectEachAcknowledgedRowOnce(cluster: LocalCluster, database: string, bufferFile: string, acknowledged: readonly string[]): Promise<void> {
  const inPg = await idsIn(cluster, 'pg-0', database);
  expect(new Set(acknowledged).size).toBe(acknowledged.length);
  expect(acknowledged.filter((id) => !inPg.ids.has(id))).toEqual([]);
  expect(inPg.rows).toBe(inPg.ids.size);
  expect(inPg.ids).toEqual(new Set(storedIds(bufferFile)));
}

/** The agent role's lineage grants in a database (what the stack's custom resource gives it). */
export async function grantLineage(cluster: LocalCluster, role: string, database: string): Promise<void> {
  await withClient(cluster, 'pg-0', database, (c) => grantLineageToAgent(c, role));
}

/**
 * Plays a failover on the writer itself: a new epoch continuing the current one up to `forkLsn` (null: keeping none of
 * it), so every row a buffer synced above the fork is outside the new history and re-sent.
 */
export async function forkEpoch(cluster: LocalCluster, node: string, database: string, forkLsn: string | null = null): Promise<Epoch> {
  return withClient(cluster, node, database, (c) => recordChildEpoch(c, { id: randomUUID(), nodeId: node, forkLsn }));
}

export async function withClient<T>(cluster: LocalCluster, node: string, database: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client(cluster.clientConfig(node, database));
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
