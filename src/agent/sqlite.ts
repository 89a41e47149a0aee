/**
 * The part of better-sqlite3's API the outbox uses, served by better-sqlite3 (a native addon, built by
 * `npm ci`) or by Node's built-in node:sqlite (Node 22.16+: what the worker bundle runs on, since no native
 * addon has to be built for the workers' platform). Same SQLite file format, same WAL and locking.
 * RDS_FAILOVER_SQLITE=better-sqlite3|node picks one; by default better-sqlite3 when it loads, else node:sqlite.
 */
export interface SqliteStatement<P extends unknown[] = unknown[], R = unknown> {
  run(...params: P): { changes: number };
  get(...params: P): R | undefined;
  all(...params: P): R[];
  /** Rows as arrays of column values. */
  raw(toggle?: boolean): SqliteStatement<P, unknown[]>;
  /** The first column's value instead of a row. */
  pluck(toggle?: boolean): SqliteStatement<P, unknown>;
}

export interface SqliteTransaction<T> {
  (): T;
  immediate(): T;
  deferred(): T;
}

export interface SqliteDatabase {
  prepare<P extends unknown[] = unknown[], R = unknown>(sql: string): SqliteStatement<P, R>;
  /** Runs `fn` in a transaction (BEGIN, or BEGIN IMMEDIATE / DEFERRED), rolled back if it throws. */
  transaction<T>(fn: () => T): SqliteTransaction<T>;
  /** `PRAGMA source`: its rows, or with `simple` the first column of the first row. */
  pragma(source: string, options?: { simple?: boolean }): unknown;
  exec(sql: string): void;
  readonly open: boolean;
  close(): void;
}

export type SqliteDriver = 'better-sqlite3' | 'node';

/** Opens `file` with no busy handler (callers retry SQLITE_BUSY themselves: see retryWhileBusy). */
export function openSqlite(file: string, options: { readonly?: boolean } = {}): SqliteDatabase {
  const driver = sqliteDriver();
  if (driver === 'better-sqlite3') {
    const BetterSqlite3 = require('better-sqlite3') as typeof import('better-sqlite3');
    return new BetterSqlite3(file, { timeout: 0, readonly: options.readonly ?? false }) as unknown as SqliteDatabase;
  }
  return new NodeSqliteDatabase(file, options.readonly ?? false);
}

let chosen: SqliteDriver | undefined;

export function sqliteDriver(): SqliteDriver {
  if (chosen !== undefined) return chosen;
  const wanted = process.env.RDS_FAILOVER_SQLITE;
  if (wanted !== undefined && wanted !== 'better-sqlite3' && wanted !== 'node') {
    throw new Error(`RDS_FAILOVER_SQLITE: expected better-sqlite3 or node, got '${wanted}'`);
  }
  if (wanted !== 'node') {
    try {
      // Loading the module is not enough: an addon built for another Node.js fails only when a database opens.
      const BetterSqlite3 = require('better-sqlite3') as typeof import('better-sqlite3');
      new BetterSqlite3(':memory:').close();
      return (chosen = 'better-sqlite3');
    } catch (error) {
      if (wanted === 'better-sqlite3') throw error;
    }
  }
  if (!hasNodeSqlite()) {
    throw new Error(`no SQLite driver: better-sqlite3 does not load here and node:sqlite needs Node.js 22.16 or newer (this is ${process.version})`);
  }
  return (chosen = 'node');
}

function hasNodeSqlite(): boolean {
  try {
    const { StatementSync } = require('node:sqlite') as NodeSqlite;
    return typeof StatementSync.prototype.setReturnArrays === 'function';
  } catch {
    return false;
  }
}

/** SQLITE_BUSY (or a BUSY extended code), from either driver. */
export function isSqliteBusy(error: unknown): boolean {
  const e = error as { code?: unknown; errcode?: unknown };
  if (typeof e?.code === 'string' && e.code.startsWith('SQLITE_BUSY')) return true; // better-sqlite3
  return e?.code === 'ERR_SQLITE_ERROR' && typeof e.errcode === 'number' && (e.errcode & 0xff) === 5; // node:sqlite
}

/** The part of node:sqlite (Node 22.16+) used here; the installed @types/node predates it. */
interface NodeSqlite {
  DatabaseSync: new (file: string, options: { readOnly: boolean; timeout: number }) => NodeDatabaseSync;
  StatementSync: { prototype: { setReturnArrays?: unknown } };
}
interface NodeDatabaseSync {
  readonly isOpen: boolean;
  readonly isTransaction: boolean;
  prepare(sql: string): NodeStatementSync;
  exec(sql: string): void;
  close(): void;
}
interface NodeStatementSync {
  setReturnArrays(enabled: boolean): void;
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

class NodeSqliteDatabase implements SqliteDatabase {
  private readonly db: NodeDatabaseSync;

  constructor(file: string, readOnly: boolean) {
    const { DatabaseSync } = require('node:sqlite') as NodeSqlite;
    this.db = new DatabaseSync(file, { readOnly, timeout: 0 });
  }

  get open(): boolean {
    return this.db.isOpen;
  }

  prepare<P extends unknown[] = unknown[], R = unknown>(sql: string): SqliteStatement<P, R> {
    return new NodeSqliteStatement<P, R>(this.db.prepare(sql), 'rows');
  }

  /** Not nestable (better-sqlite3 nests with savepoints): the outbox never nests its transactions. */
  transaction<T>(fn: () => T): SqliteTransaction<T> {
    const run = (begin: string) => (): T => {
      this.db.exec(begin);
      let result: T;
      try {
        result = fn();
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
        throw error;
      }
      try {
        this.db.exec('COMMIT');
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK'); // e.g. SQLITE_BUSY on a deferred write
        throw error;
      }
      return result;
    };
    return Object.assign(run('BEGIN'), { immediate: run('BEGIN IMMEDIATE'), deferred: run('BEGIN DEFERRED') });
  }

  pragma(source: string, options: { simple?: boolean } = {}): unknown {
    const statement = this.prepare(`PRAGMA ${source}`);
    return options.simple ? statement.pluck().get() : statement.all();
  }

  exec(sql: string): void {
    this.db.exec(sql);
  }

  close(): void {
    this.db.close();
  }
}

type Shape = 'rows' | 'arrays' | 'first';

class NodeSqliteStatement<P extends unknown[], R> implements SqliteStatement<P, R> {
  constructor(
    private readonly statement: NodeStatementSync,
    private readonly shape: Shape,
  ) {
    statement.setReturnArrays(shape !== 'rows');
  }

  run(...params: P): { changes: number } {
    return { changes: Number(this.statement.run(...params).changes) };
  }

  get(...params: P): R | undefined {
    this.statement.setReturnArrays(this.shape !== 'rows');
    const row = this.statement.get(...params);
    return row === undefined ? undefined : this.shaped(row);
  }

  all(...params: P): R[] {
    this.statement.setReturnArrays(this.shape !== 'rows');
    return this.statement.all(...params).map((row) => this.shaped(row));
  }

  raw(toggle = true): SqliteStatement<P, unknown[]> {
    return new NodeSqliteStatement<P, unknown[]>(this.statement, toggle ? 'arrays' : 'rows');
  }

  pluck(toggle = true): SqliteStatement<P, unknown> {
    return new NodeSqliteStatement<P, unknown>(this.statement, toggle ? 'first' : 'rows');
  }

  /** BLOBs come back as Uint8Array: as Buffer, as better-sqlite3 gives them. */
  private shaped(row: unknown): R {
    if (this.shape === 'first') return blobAsBuffer((row as unknown[])[0]) as R;
    if (this.shape === 'arrays') return (row as unknown[]).map(blobAsBuffer) as R;
    const record = row as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = blobAsBuffer(record[key]);
    return record as R;
  }
}

function blobAsBuffer(value: unknown): unknown {
  return value instanceof Uint8Array && !Buffer.isBuffer(value) ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
}
