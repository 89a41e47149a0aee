import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { PgOsUser } from './os-user.js';
import { postmasterStatus } from './pg-conf.js';
import { isAlive } from './processes.js';

/** Environment for PostgreSQL programs: no PG* variables of the caller leak in (PGPORT, PGDATA...). */
function pgEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { LC_ALL: 'C', LANG: 'C', PATH: process.env.PATH ?? '/usr/bin:/bin' };
  return env;
}

function identity(user: PgOsUser | undefined): { uid?: number; gid?: number } {
  return user ? { uid: user.uid, gid: user.gid } : {};
}

/** Last lines of a log file, for error messages. */
export function logTail(file: string, lines = 8): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Run a PostgreSQL program to completion as the PostgreSQL OS user; throws with its output on failure. */
export function runPgProgram(what: string, program: string, args: readonly string[], user: PgOsUser | undefined): void {
  const result = spawnSync(program, args, { ...identity(user), env: pgEnv(), encoding: 'utf8', cwd: path.dirname(program) });
  if (result.error) throw new Error(`${what}: could not run ${program}: ${result.error.message}`);
  if (result.status !== 0) {
    const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-8).join('\n');
    throw new Error(`${what}: ${path.basename(program)} exited with ${result.status ?? result.signal}: ${output}`);
  }
}

/**
 * Start `postgres -D dataDir` detached (own session: a Ctrl-C in the terminal reaches us, and we stop it
 * in order), output appended to logFile. Returns the postmaster pid once it is running.
 */
export function spawnPostmaster(postgres: string, dataDir: string, logFile: string, user: PgOsUser | undefined): number {
  const log = openSync(logFile, 'a');
  try {
    const child = spawn(postgres, ['-D', dataDir], {
      ...identity(user),
      env: pgEnv(),
      cwd: dataDir,
      detached: true,
      stdio: ['ignore', log, log],
    });
    // Keep the exit event from holding the event loop open (the CLI's `up` exits with the cluster running).
    child.unref();
    child.on('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start ${postgres}`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

export type ReadyState = 'ready' | 'standby';

/**
 * Wait until the postmaster is up (postmaster.pid status line, as pg_ctl -w does): 'ready' = accepting
 * connections (a primary, or a hot standby once consistent); 'standby' = a standby with hot_standby=off.
 * Throws with the log tail if it dies or times out.
 */
export async function waitUntilAccepting(
  nodeId: string,
  pid: number,
  dataDir: string,
  logFile: string,
  timeoutMs: number,
): Promise<ReadyState> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let status: string | undefined;
    try {
      const parsed = postmasterStatus(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8'));
      if (parsed?.pid === pid) status = parsed.status;
    } catch {
      // not written yet
    }
    if (status === 'ready' || status === 'standby') return status;
    if (!isAlive(pid)) throw new Error(`${nodeId}: postgres exited during start-up: ${logTail(logFile)}`);
    if (Date.now() > deadline) throw new Error(`${nodeId}: postgres did not accept connections within ${timeoutMs} ms: ${logTail(logFile)}`);
    await sleep(10);
  }
}
