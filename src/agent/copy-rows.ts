import { copyTextField } from './pg-copy.js';

/**
 * How a target column turns a JSON value into its own value under json_populate_record (the reference
 * semantics of the INSERT path, docs/buffer.md):
 * - 'scalar': any type read by its input function (text, numbers, bool, timestamps, uuid, enums, ranges,
 *   domains over those). A JSON string gives its decoded text, a number/true/false its literal text.
 * - 'json': json/jsonb. A number/true/false gives its literal text; a string would be re-quoted (not handled here).
 * - 'other': arrays and composites, which json_populate_record builds from nested JSON: never converted.
 */
export type ColumnKind = 'scalar' | 'json' | 'other';

/**
 * Converts one stored JSON payload into one line of COPY text for `columns`, giving each column exactly
 * the value json_populate_record would give it, or returns null when that cannot be guaranteed by this
 * small scanner (nested values, a string for a json column, \u0000 or unpaired surrogates, duplicate or
 * unknown keys, anything that is not strictly valid JSON): the caller then uses the INSERT path, which lets
 * PostgreSQL decide. Never parses numbers: their text goes through unchanged (exact beyond 2^53).
 */
export function payloadToCopyLine(payload: string, columns: ReadonlyMap<string, number>, kinds: readonly ColumnKind[]): string | null {
  const fields: (string | undefined)[] = new Array(kinds.length);
  const n = payload.length;
  let i = skipWhitespace(payload, 0);
  if (payload.charCodeAt(i) !== 0x7b /* { */) return null;
  i = skipWhitespace(payload, i + 1);
  if (payload.charCodeAt(i) === 0x7d /* } */) {
    i += 1;
  } else {
    for (;;) {
      if (payload.charCodeAt(i) !== 0x22) return null;
      const keyEnd = stringEnd(payload, i);
      if (keyEnd < 0) return null;
      const key = decodeString(payload, i, keyEnd, sawEscape);
      if (key === null) return null;
      const column = columns.get(key);
      if (column === undefined || fields[column] !== undefined) return null;
      i = skipWhitespace(payload, keyEnd);
      if (payload.charCodeAt(i) !== 0x3a /* : */) return null;
      i = skipWhitespace(payload, i + 1);
      const kind = kinds[column]!;
      if (kind === 'other') return null;
      const c = payload.charCodeAt(i);
      let end: number;
      if (c === 0x22) {
        if (kind !== 'scalar') return null;
        end = stringEnd(payload, i);
        if (end < 0) return null;
        const text = decodeString(payload, i, end, sawEscape);
        if (text === null) return null;
        fields[column] = NEEDS_COPY_ESCAPE.test(text) ? copyTextField(text) : text;
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        end = numberEnd(payload, i);
        if (end < 0) return null;
        fields[column] = payload.slice(i, end);
      } else if (payload.startsWith('true', i)) {
        end = i + 4;
        fields[column] = 'true';
      } else if (payload.startsWith('false', i)) {
        end = i + 5;
        fields[column] = 'false';
      } else if (payload.startsWith('null', i)) {
        end = i + 4;
        fields[column] = '\\N';
      } else {
        return null; // object, array or not JSON
      }
      i = skipWhitespace(payload, end);
      const separator = payload.charCodeAt(i);
      if (separator === 0x2c /* , */) {
        i = skipWhitespace(payload, i + 1);
        continue;
      }
      if (separator !== 0x7d) return null;
      i += 1;
      break;
    }
  }
  if (skipWhitespace(payload, i) !== n) return null;
  let line = fields[0] ?? '\\N';
  for (let k = 1; k < kinds.length; k++) line += '\t' + (fields[k] ?? '\\N');
  return line;
}

function skipWhitespace(s: string, i: number): number {
  for (;;) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i += 1;
  }
}

const NEEDS_COPY_ESCAPE = /[\\\t\n\r]/;

/** Whether the last string `stringEnd` scanned holds a backslash escape. */
let sawEscape = false;

/** Index just past the closing quote of the string starting at `start`, or -1 (unterminated, raw control character). */
function stringEnd(s: string, start: number): number {
  sawEscape = false;
  for (let i = start + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) return i + 1;
    if (c === 0x5c) {
      sawEscape = true;
      i += 1;
    } else if (c < 0x20) return -1;
  }
  return -1;
}

/** The decoded string token s[start, end), or null when PostgreSQL could refuse it (\u0000, unpaired surrogates, bad escapes). */
function decodeString(s: string, start: number, end: number, escaped: boolean): string | null {
  let text = s.slice(start + 1, end - 1);
  if (escaped) {
    try {
      text = JSON.parse(s.slice(start, end)) as string;
    } catch {
      return null;
    }
    if (text.includes('\u0000') || UNPAIRED_SURROGATE.test(text)) return null;
  }
  // Without escapes the text came from SQLite as UTF-8, which holds no unpaired surrogates.
  return text;
}

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Index just past the JSON number at `start` (strict JSON grammar), or -1. */
function numberEnd(s: string, start: number): number {
  NUMBER.lastIndex = start;
  if (!NUMBER.test(s)) return -1;
  const end = NUMBER.lastIndex;
  const next = s.charCodeAt(end);
  // "01", "1.", "1e" and the like: the match stopped inside something that is not a JSON number.
  if ((next >= 0x30 && next <= 0x39) || next === 0x2e || next === 0x65 || next === 0x45 || next === 0x2b || next === 0x2d) return -1;
  return end;
}
