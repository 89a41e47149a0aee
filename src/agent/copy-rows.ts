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

/** Separates payloads in the converter's input: a control character, so never part of valid JSON text. */
export const PAYLOAD_SEPARATOR = '\u001e';

/** A stream's target columns as the converter needs them: UTF-8 names in COPY column order, and their kinds. */
export interface CopyPlan {
  readonly names: readonly Buffer[];
  readonly kinds: readonly ColumnKind[];
}

export function copyPlan(columns: readonly string[], kinds: readonly ColumnKind[]): CopyPlan {
  return { names: columns.map((c) => Buffer.from(c, 'utf8')), kinds };
}

const SEPARATOR = PAYLOAD_SEPARATOR.charCodeAt(0);
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const TAB = 0x09;
const NEWLINE = 0x0a;
// A column's field in the current payload: a byte range of the input (start >= 0), or one of these.
const MISSING = -1;
const JSON_NULL = -2;
const ESCAPED = -3; // a string with escapes, decoded into `decoded`

/**
 * Converts `count` JSON payloads (UTF-8, separated by PAYLOAD_SEPARATOR) into COPY text data for the plan's
 * columns, giving each column exactly the value json_populate_record would give it; or returns null when
 * that cannot be guaranteed by this small scanner (nested values, a string for a json column, \u0000 or
 * unpaired surrogates, duplicate or unknown keys, anything that is not strictly valid JSON, a payload count
 * other than `count`): the caller then uses the INSERT path, which lets PostgreSQL decide.
 * Works on bytes: field text is copied from the input as it is (number text unchanged, exact beyond 2^53),
 * and only strings holding escapes are decoded (null if those are not UTF-8). Other bytes that are not
 * valid UTF-8 are passed on, and PostgreSQL refuses the COPY (the caller then falls back to INSERT as for
 * any refused COPY).
 */
export function payloadsToCopyData(input: Buffer, count: number, plan: CopyPlan): Buffer | null {
  const { names, kinds } = plan;
  const columns = names.length;
  // Every field's text is at most as long as its JSON token (escapes never grow), plus \N, tabs and newline.
  const out = Buffer.allocUnsafe(input.length + count * (3 * columns + 1));
  const starts = new Int32Array(columns);
  const ends = new Int32Array(columns);
  const decoded: string[] = new Array(columns);
  const n = input.length;
  let o = 0;
  let i = 0;
  let records = 0;
  while (records < count) {
    starts.fill(MISSING);
    i = skipWhitespace(input, i);
    if (input[i] !== 0x7b /* { */) return null;
    i = skipWhitespace(input, i + 1);
    if (input[i] === 0x7d /* } */) {
      i += 1;
    } else {
      let expected = 0;
      for (;;) {
        if (input[i] !== QUOTE) return null;
        const keyEnd = stringEnd(input, i);
        if (keyEnd < 0) return null;
        const column = sawEscape ? escapedColumn(input, i, keyEnd, names) : columnAt(input, i + 1, keyEnd - 1, names, expected);
        if (column < 0 || starts[column] !== MISSING) return null;
        expected = column + 1 === columns ? 0 : column + 1;
        i = skipWhitespace(input, keyEnd);
        if (input[i] !== 0x3a /* : */) return null;
        i = skipWhitespace(input, i + 1);
        const kind = kinds[column];
        if (kind === 'other') return null;
        const c = input[i]!;
        let end: number;
        if (c === QUOTE) {
          if (kind !== 'scalar') return null;
          end = stringEnd(input, i);
          if (end < 0) return null;
          if (sawEscape) {
            const text = decodeString(input, i, end);
            if (text === null) return null;
            decoded[column] = copyTextField(text);
            starts[column] = ESCAPED;
          } else {
            starts[column] = i + 1;
            ends[column] = end - 1;
          }
        } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
          end = numberEnd(input, i);
          if (end < 0) return null;
          starts[column] = i;
          ends[column] = end;
        } else if (literalAt(input, i, TRUE)) {
          end = i + 4;
          starts[column] = i;
          ends[column] = end;
        } else if (literalAt(input, i, FALSE)) {
          end = i + 5;
          starts[column] = i;
          ends[column] = end;
        } else if (literalAt(input, i, NULL)) {
          end = i + 4;
          starts[column] = JSON_NULL;
        } else {
          return null; // object, array or not JSON
        }
        i = skipWhitespace(input, end);
        const separator = input[i];
        if (separator === 0x2c /* , */) {
          i = skipWhitespace(input, i + 1);
          continue;
        }
        if (separator !== 0x7d) return null;
        i += 1;
        break;
      }
    }
    i = skipWhitespace(input, i);
    records += 1;
    if (records < count ? input[i] !== SEPARATOR : i !== n) return null;
    i += 1;
    for (let column = 0; column < columns; column++) {
      if (column > 0) out[o++] = TAB;
      const start = starts[column]!;
      if (start >= 0) {
        const end = ends[column]!;
        if (end - start > 24) o += input.copy(out, o, start, end);
        else for (let k = start; k < end; k++) out[o++] = input[k]!;
      } else if (start === ESCAPED) {
        const text = decoded[column]!;
        const written = out.write(text, o, 'utf8');
        if (written !== Buffer.byteLength(text, 'utf8')) throw new Error(`payloadsToCopyData: output overflow writing ${Buffer.byteLength(text, 'utf8')} bytes at ${o}`);
        o += written;
      } else {
        out[o++] = BACKSLASH; // MISSING or JSON_NULL: \N
        out[o++] = 0x4e;
      }
    }
    out[o++] = NEWLINE;
  }
  // A write past the end would have been dropped silently: never send data that lost part of a row.
  if (o > out.length) throw new Error(`payloadsToCopyData: output overflow (${o} > ${out.length} bytes)`);
  return count === 0 && n !== 0 ? null : out.subarray(0, o);
}

function skipWhitespace(s: Buffer, i: number): number {
  for (;;) {
    const c = s[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i += 1;
  }
}

/** Whether the last string `stringEnd` scanned holds a backslash escape. */
let sawEscape = false;

/** Index just past the closing quote of the string starting at `start`, or -1 (unterminated, raw control character). */
function stringEnd(s: Buffer, start: number): number {
  sawEscape = false;
  for (let i = start + 1; i < s.length; i++) {
    const c = s[i]!;
    if (c === QUOTE) return i + 1;
    if (c === BACKSLASH) {
      sawEscape = true;
      i += 1;
    } else if (c < 0x20) return -1;
  }
  return -1;
}

/** The column whose UTF-8 name is s[start, end), trying `expected` (the next column in order) first; -1 if none. */
function columnAt(s: Buffer, start: number, end: number, names: readonly Buffer[], expected: number): number {
  const length = end - start;
  for (let k = 0, column = expected; k < names.length; k++, column = column + 1 === names.length ? 0 : column + 1) {
    const name = names[column]!;
    if (name.length !== length) continue;
    let j = 0;
    while (j < length && s[start + j] === name[j]) j++;
    if (j === length) return column;
  }
  return -1;
}

function escapedColumn(s: Buffer, start: number, end: number, names: readonly Buffer[]): number {
  const key = decodeString(s, start, end);
  return key === null ? -1 : names.findIndex((name) => name.toString('utf8') === key);
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The decoded string token s[start, end), or null when PostgreSQL could refuse it (\u0000, unpaired
 * surrogates, bad escapes) or its bytes are not UTF-8 (decoding would put U+FFFD in: a different value, and
 * longer than the token, which the output size relies on).
 */
function decodeString(s: Buffer, start: number, end: number): string | null {
  let text: string;
  try {
    text = JSON.parse(UTF8.decode(s.subarray(start, end))) as string;
  } catch {
    return null;
  }
  return text.includes('\u0000') || UNPAIRED_SURROGATE.test(text) ? null : text;
}

const UNPAIRED_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

function literalAt(s: Buffer, i: number, literal: Buffer): boolean {
  for (let k = 0; k < literal.length; k++) if (s[i + k] !== literal[k]) return false;
  return true;
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= 0x30 && c <= 0x39;
}

/** Index just past the JSON number at `start` (strict JSON grammar), or -1. */
function numberEnd(s: Buffer, start: number): number {
  let i = start;
  if (s[i] === 0x2d) i += 1;
  if (s[i] === 0x30) i += 1;
  else if (isDigit(s[i])) while (isDigit(s[i])) i += 1;
  else return -1;
  if (s[i] === 0x2e /* . */) {
    const digits = ++i;
    while (isDigit(s[i])) i += 1;
    if (i === digits) return -1;
  }
  if (s[i] === 0x65 || s[i] === 0x45 /* e E */) {
    i += 1;
    if (s[i] === 0x2b || s[i] === 0x2d) i += 1;
    const digits = i;
    while (isDigit(s[i])) i += 1;
    if (i === digits) return -1;
  }
  // "01", "1.", "1e" and the like: the number stopped inside something that is not a JSON number.
  const next = s[i];
  if (isDigit(next) || next === 0x2e || next === 0x65 || next === 0x45 || next === 0x2b || next === 0x2d) return -1;
  return i;
}
