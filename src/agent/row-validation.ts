import type { StreamConfig } from './config.js';

/** An append the buffer refused; nothing was written for it. */
export class RowRejectedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RowRejectedError';
  }
}

export interface ValidRow {
  /** The outbox id: the key value (one key column) or the JSON array of key values (several). */
  readonly id: string;
  /** The JSON object text stored in the outbox and sent to PostgreSQL. */
  readonly payload: string;
}

/**
 * Checks one row against its stream before it is written. A string is kept byte-for-byte (after trimming)
 * so that numbers beyond 2^53 in non-key fields reach PostgreSQL exactly; PostgreSQL parses the JSON. The
 * stored text is what is checked, for objects too: the agent's daemon checks rows that reach it as text.
 */
export function validateRow(streamName: string, stream: StreamConfig | undefined, row: unknown): ValidRow {
  if (stream === undefined) throw new RowRejectedError(`unknown stream '${streamName}': add it to the config's streams`);
  const payload = rowText(row);
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch (error) {
    throw new RowRejectedError(`row is not valid JSON (${(error as Error).message}): expected one JSON object per row`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RowRejectedError(`row must be a JSON object with the stream's columns, got ${describe(value)}`);
  }
  const fields = value as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!stream.columns.includes(name)) {
      throw new RowRejectedError(`field '${name}' is not a column of stream '${stream.name}' (columns: ${stream.columns.join(', ')})`);
    }
  }
  const keyValues = stream.key.map((k) => keyValue(stream, k, fields[k]));
  const bytes = Buffer.byteLength(payload, 'utf8');
  if (bytes > stream.maxPayloadBytes) {
    throw new RowRejectedError(`payload is ${bytes} bytes, over maxPayloadBytes ${stream.maxPayloadBytes} of stream '${stream.name}'`);
  }
  const id = keyValues.length === 1 ? String(keyValues[0]) : JSON.stringify(keyValues);
  return { id, payload };
}

/**
 * The text a row is stored as and validated by: a string trimmed, anything else as JSON.stringify gives it
 * (so a field whose value is undefined is not stored, and not checked). Throws RowRejectedError when the
 * row has no JSON text (a BigInt, a cycle, undefined).
 */
export function rowText(row: unknown): string {
  if (typeof row === 'string') {
    // SQLite would store U+FFFD in its place: the row kept would not be the row given (JSON.stringify escapes them).
    const lone = LONE_SURROGATE.exec(row);
    if (lone !== null) {
      throw new RowRejectedError(`row cannot be serialized to JSON: it has a lone surrogate U+${lone[0].charCodeAt(0).toString(16).toUpperCase()} at index ${lone.index}, which has no UTF-8 form`);
    }
    return row.trim();
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(row);
  } catch (error) {
    throw new RowRejectedError(`row cannot be serialized to JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw new RowRejectedError(`row must be a JSON object with the stream's columns, got ${describe(row)}`);
  return text;
}

/** A UTF-16 surrogate not part of a pair. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function keyValue(stream: StreamConfig, column: string, value: unknown): string | number {
  if (value === undefined) {
    throw new RowRejectedError(`key field '${column}' is missing (stream '${stream.name}' is keyed on ${stream.key.join(', ')})`);
  }
  if (typeof value === 'string') {
    if (value === '') throw new RowRejectedError(`key field '${column}' must not be an empty string`);
    return value;
  }
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
      throw new RowRejectedError(`key field '${column}' is an integer beyond 2^53 that JSON parsers round: send it as a string`);
    }
    return value;
  }
  throw new RowRejectedError(`key field '${column}' must be a string or a number, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}
