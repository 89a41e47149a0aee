import { describe, expect, it } from 'vitest';
import { copyPlan, PAYLOAD_SEPARATOR, payloadsToCopyData, type ColumnKind } from '../../../src/agent/copy-rows.js';

const scalars: ColumnKind[] = ['scalar', 'scalar', 'scalar'];
const convert = (payloads: string[], kinds: ColumnKind[] = scalars, count = payloads.length) =>
  payloadsToCopyData(Buffer.from(payloads.join(PAYLOAD_SEPARATOR), 'utf8'), count, copyPlan(['id', 'body', 'n'], kinds))?.toString('utf8') ?? null;
/** One payload's COPY line (without its newline), or null. */
const line = (payload: string, kinds: ColumnKind[] = scalars) => convert([payload], kinds)?.replace(/\n$/, '') ?? null;

describe('payloadsToCopyData (JSON payloads -> COPY text, as json_populate_record maps them)', () => {
  it('keeps number text exactly, decodes strings, escapes COPY specials and sends missing columns as NULL', () => {
    expect(line('{"id":"a-1","body":"hello","n":12345678901234567890}')).toBe('a-1\thello\t12345678901234567890');
    expect(line(' { "n" : -1.50e+3 , "id" : "x" } ')).toBe('x\t\\N\t-1.50e+3');
    expect(line('{"id":"t\\tab","body":"line\\nbreak \\\\ back\\r","n":null}')).toBe('t\\tab\tline\\nbreak \\\\ back\\r\t\\N');
    expect(line('{"id":"\\u00e9\\ud83d\\ude00\\"q\\"","body":true,"n":false}')).toBe('é😀"q"\ttrue\tfalse');
    expect(line('{"id":"\\\\N"}')).toBe('\\\\N\t\\N\t\\N');
    expect(line('{}')).toBe('\\N\t\\N\t\\N');
    expect(line('{"id":"é 😀 ünïcode, no escapes","n":0}')).toBe('é 😀 ünïcode, no escapes\t\\N\t0');
    expect(line('{"b\\u006fdy":"escaped key","id":"k"}')).toBe('k\tescaped key\t\\N');
    expect(line('{\n\t"id" :\r\n"w"\n}\n')).toBe('w\t\\N\t\\N');
  });

  it('converts many payloads in one pass, in order, whatever order their keys come in', () => {
    const payloads = Array.from({ length: 50 }, (_, i) => (i % 2 ? `{"n":${i},"id":"r${i}"}` : `{"id":"r${i}","body":"x${'y'.repeat(i)}","n":${i}}`));
    const expected = payloads.map((_, i) => (i % 2 ? `r${i}\t\\N\t${i}` : `r${i}\tx${'y'.repeat(i)}\t${i}`)).join('\n') + '\n';
    expect(convert(payloads)).toBe(expected);
    expect(convert([])).toBe('');
  });

  it('json/jsonb columns take numbers and literals as they are, but not strings (PostgreSQL would re-quote them)', () => {
    const kinds: ColumnKind[] = ['scalar', 'json', 'scalar'];
    expect(line('{"id":"a","body":42}', kinds)).toBe('a\t42\t\\N');
    expect(line('{"id":"a","body":null}', kinds)).toBe('a\t\\N\t\\N');
    expect(line('{"id":"a","body":"text"}', kinds)).toBeNull();
  });

  it('declines what it cannot map exactly, leaving it to the INSERT path', () => {
    const declined = [
      '{"id":"a","body":{"nested":1}}', // nested object
      '{"id":"a","body":[1,2]}', // array
      '{"id":"a","colour":"red"}', // not a column
      '{"id":"a","id":"b"}', // duplicate key
      '{"id":"a","\\u0069d":"b"}', // duplicate key, spelled with an escape
      '{"id":"a\\u0000"}', // NUL: PostgreSQL text cannot hold it
      '{"id":"\\ud800"}', // unpaired surrogate
      '{"id":"a\\x"}', // bad escape
      '{"id":"a\tb"}', // raw control character: not JSON
      '{"id":"a\u001eb"}', // the separator inside a string: not JSON either
      '{"n":01}',
      '{"n":1.}',
      '{"n":.5}',
      '{"n":+1}',
      '{"n":1e}',
      '{"n":-}',
      '{"n":NaN}',
      '{"n":tru}',
      '{"id":"a",}',
      '{"id":"a"} x',
      '{"id":"a"',
      '["a"]',
      '',
    ];
    for (const payload of declined) expect(line(payload), payload).toBeNull();
    expect(line('{"id":"a","body":"b"}', ['scalar', 'other', 'scalar'])).toBeNull();
    // one bad payload among good ones declines them all (the statement goes out as one INSERT)
    expect(convert(['{"id":"a"}', '{"id":"b","x":1}', '{"id":"c"}'])).toBeNull();
  });

  it('declines a string with escapes whose bytes are not UTF-8 (decoding would change it, and grow it)', () => {
    // "\n" then 401 bytes 0xff: U+FFFD for each would triple them, past the output's size
    const payload = Buffer.concat([Buffer.from('{"id":"r1","body":"\\n'), Buffer.alloc(401, 0xff), Buffer.from('"}')]);
    expect(payloadsToCopyData(payload, 1, copyPlan(['id', 'body', 'n'], scalars))).toBeNull();
    // without escapes the bytes go through unchanged (PostgreSQL refuses them: the INSERT path follows)
    const raw = Buffer.concat([Buffer.from('{"id":"r1","body":"'), Buffer.alloc(3, 0xff), Buffer.from('"}')]);
    expect(payloadsToCopyData(raw, 1, copyPlan(['id', 'body', 'n'], scalars))).toEqual(Buffer.concat([Buffer.from('r1\t'), Buffer.alloc(3, 0xff), Buffer.from('\t\\N\n')]));
  });

  it('declines input holding more or fewer payloads than the caller counted', () => {
    expect(convert(['{"id":"a"}', '{"id":"b"}'], scalars, 1)).toBeNull();
    expect(convert(['{"id":"a"}', '{"id":"b"}'], scalars, 3)).toBeNull();
    expect(convert(['{"id":"a"}'], scalars, 0)).toBeNull();
  });
});
