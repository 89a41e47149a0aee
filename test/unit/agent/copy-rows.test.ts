import { describe, expect, it } from 'vitest';
import { payloadToCopyLine, type ColumnKind } from '../../../src/agent/copy-rows.js';

const columns = new Map([
  ['id', 0],
  ['body', 1],
  ['n', 2],
]);
const scalars: ColumnKind[] = ['scalar', 'scalar', 'scalar'];
const line = (payload: string, kinds: ColumnKind[] = scalars) => payloadToCopyLine(payload, columns, kinds);

describe('payloadToCopyLine (JSON payload -> COPY text, as json_populate_record maps it)', () => {
  it('keeps number text exactly, decodes strings, escapes COPY specials and sends missing columns as NULL', () => {
    expect(line('{"id":"a-1","body":"hello","n":12345678901234567890}')).toBe('a-1\thello\t12345678901234567890');
    expect(line(' { "n" : -1.50e+3 , "id" : "x" } ')).toBe('x\t\\N\t-1.50e+3');
    expect(line('{"id":"t\\tab","body":"line\\nbreak \\\\ back\\r","n":null}')).toBe('t\\tab\tline\\nbreak \\\\ back\\r\t\\N');
    expect(line('{"id":"\\u00e9\\ud83d\\ude00\\"q\\"","body":true,"n":false}')).toBe('é😀"q"\ttrue\tfalse');
    expect(line('{"id":"\\\\N"}')).toBe('\\\\N\t\\N\t\\N');
    expect(line('{}')).toBe('\\N\t\\N\t\\N');
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
      '{"id":"a\\u0000"}', // NUL: PostgreSQL text cannot hold it
      '{"id":"\\ud800"}', // unpaired surrogate
      '{"id":"a\\x"}', // bad escape
      '{"id":"a\tb"}', // raw control character: not JSON
      '{"n":01}',
      '{"n":1.}',
      '{"n":.5}',
      '{"n":+1}',
      '{"n":1e}',
      '{"n":NaN}',
      '{"id":"a",}',
      '{"id":"a"} x',
      '{"id":"a"',
      '["a"]',
      '',
    ];
    for (const payload of declined) expect(line(payload), payload).toBeNull();
    expect(line('{"id":"a","body":"b"}', ['scalar', 'other', 'scalar'])).toBeNull();
  });
});
