import type { AgentConfig } from './config.js';

/**
 * The append socket's wire format (docs/buffer.md, "Appending through the agent"): newline-delimited JSON
 * over a Unix socket, one request per line, answered in order on the same connection.
 *
 *   request   {"n": 7, "stream": "events", "rows": ["{\"id\":\"a\",\"n\":1}", ...]}
 *             rows are JSON object texts, stored byte for byte (after trimming) as direct appends store them
 *   answers   {"n": 7, "ids": ["a", ...]}                                        all committed, after the fsync
 *             {"n": 7, "ids": ["a"], "rejected": {"index": 1, "message": "..."}} rows before index committed
 *             {"n": 7, "error": "..."}                                           nothing committed: append directly
 *             a committed answer may carry "alone": true (see ALONE_WINDOW_MS)
 */
export interface AppendRequest {
  readonly n: number;
  readonly stream: string;
  readonly rows: readonly string[];
}

/** The rows up to the first rejected one are committed and on disk. */
export interface AppendCommitted {
  readonly n: number;
  readonly ids: readonly string[];
  readonly rejected?: { readonly index: number; readonly message: string };
  /** Only this connection appends through the daemon now: the caller may append directly for a while. */
  readonly alone?: true;
}

/**
 * A connection is "alone" when it sent at least ALONE_MIN_REQUESTS requests in the last ALONE_WINDOW_MS and
 * no other connection sent any. A process appending alone gets its row on disk sooner with an fsync of its own
 * than through the round trip to the daemon (measured: p50 0.20 against 0.40 ms, docs/buffer.md), so its
 * client appends directly for DIRECT_WHILE_ALONE_MS, then asks the daemon again. Several processes appending
 * together are never alone, and keep sharing commits.
 */
export const ALONE_WINDOW_MS = 100;
export const ALONE_MIN_REQUESTS = 5;
export const DIRECT_WHILE_ALONE_MS = 1000;

export type AppendAnswer = AppendCommitted | { readonly n: number; readonly error: string };

/** A request line longer than this (in characters) is refused (the connection is closed); clients append bigger ones directly. */
export const MAX_REQUEST_LENGTH = 32 * 1024 * 1024;

/**
 * Splits text arriving in chunks into lines, searching each chunk once: a long line in many chunks costs linear
 * time. (Appending every chunk to one string and searching it from its start again made reading a 30 MB
 * request take the daemon 29 s.)
 */
export class LineReader {
  private pending: string[] = [];
  /** Characters of the line not complete yet. */
  pendingLength = 0;

  /** The lines `chunk` completes, the first one with what earlier chunks left. */
  push(chunk: string): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let end = chunk.indexOf('\n'); end >= 0; end = chunk.indexOf('\n', start)) {
      const tail = chunk.slice(start, end);
      lines.push(this.pending.length === 0 ? tail : this.pending.join('') + tail);
      this.reset();
      start = end + 1;
    }
    if (start < chunk.length) {
      this.pending.push(chunk.slice(start));
      this.pendingLength += chunk.length - start;
    }
    return lines;
  }

  reset(): void {
    this.pending = [];
    this.pendingLength = 0;
  }
}

/** The socket the daemon serves for `bufferPath`, or undefined when the config turns the fast path off. */
export function appendSocketPath(config: AgentConfig, bufferPath: string): string | undefined {
  if (config.appendSocket === false) return undefined;
  return config.appendSocket ?? `${bufferPath}.sock`;
}

/** Parses a request line; throws with what is wrong. */
export function parseAppendRequest(line: string): AppendRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw new Error(`request is not JSON (${(error as Error).message})`);
  }
  const r = value as Partial<AppendRequest> | null;
  if (typeof r !== 'object' || r === null) throw new Error('request must be a JSON object');
  if (typeof r.n !== 'number') throw new Error("request field 'n' must be a number");
  if (typeof r.stream !== 'string') throw new Error("request field 'stream' must be a string");
  if (!Array.isArray(r.rows) || !r.rows.every((row) => typeof row === 'string')) throw new Error("request field 'rows' must be an array of strings");
  return r as AppendRequest;
}

/**
 * Whether a committed answer accounts for every row of its `rows`-row request: an id for each, or, with a
 * rejected row, for each row before it. Anything else is not the daemon's answer (the caller appends directly).
 */
export function coversRequest(answer: AppendCommitted, rows: number): boolean {
  if (answer.rejected === undefined) return answer.ids.length === rows;
  return answer.ids.length === answer.rejected.index && answer.rejected.index < rows;
}

/** The daemon's answer, or undefined when the line is not one (then the caller appends directly). */
export function parseAnswer(line: string): AppendAnswer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const a = value as Record<string, unknown> | null;
  if (typeof a !== 'object' || a === null || typeof a.n !== 'number') return undefined;
  if (typeof a.error === 'string') return a as unknown as AppendAnswer;
  if (!Array.isArray(a.ids) || !a.ids.every((id) => typeof id === 'string')) return undefined;
  const rejected = a.rejected as Record<string, unknown> | null | undefined;
  if (rejected !== undefined && (typeof rejected !== 'object' || rejected === null || !Number.isInteger(rejected.index) || typeof rejected.message !== 'string')) return undefined;
  return a as unknown as AppendAnswer;
}
