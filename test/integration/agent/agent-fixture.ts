import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Epoch } from '../../../src/core/lineage.js';
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
