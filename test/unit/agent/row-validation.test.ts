import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/agent/config.js';
import { RowRejectedError, rowText, validateRow } from '../../../src/agent/row-validation.js';

/** The same cases the Python client is tested against (clients/python/tests): one contract, two implementations. */
interface Case {
  name: string;
  stream: string;
  text: string;
  expect: { id?: string; payload?: string; error?: string; errorStartsWith?: string };
  textOnly?: boolean;
}
const shared = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'support', 'row-validation-cases.json'), 'utf8')) as { streams: unknown; cases: Case[] };
const streams = parseConfig({ streams: shared.streams }).streams;

function outcome(stream: string, row: unknown): { id?: string; payload?: string; error?: string } {
  try {
    return validateRow(stream, streams[stream], row);
  } catch (error) {
    if (!(error instanceof RowRejectedError)) throw error;
    return { error: error.message };
  }
}

function check(result: { id?: string; payload?: string; error?: string }, expected: Case['expect']): void {
  if (expected.errorStartsWith !== undefined) {
    expect(result.error?.startsWith(expected.errorStartsWith), result.error).toBe(true);
  } else if (expected.error !== undefined) {
    expect(result.error).toBe(expected.error);
  } else {
    expect(result.error).toBeUndefined();
    expect(result.id).toBe(expected.id);
  }
}

describe('row rules shared with the Python client (test/support/row-validation-cases.json)', () => {
  it.each(shared.cases.map((c) => [c.name, c] as const))('%s, given as text', (_name, c) => {
    const result = outcome(c.stream, c.text);
    check(result, c.expect);
    if (result.error === undefined) expect(result.payload).toBe(c.expect.payload ?? c.text);
  });

  it.each(shared.cases.filter((c) => !c.textOnly && c.expect.errorStartsWith === undefined).map((c) => [c.name, c] as const))('%s, given as a value', (_name, c) => {
    check(outcome(c.stream, JSON.parse(c.text)), c.expect);
  });
});

describe('rowText', () => {
  it('keeps text (trimmed), writes values as JSON, and refuses what has no JSON text', () => {
    expect(rowText('  {"id": 1} ')).toBe('{"id": 1}');
    expect(rowText({ id: 'a', skipped: undefined })).toBe('{"id":"a"}');
    expect(() => rowText({ id: 1n })).toThrow(/^row cannot be serialized to JSON: /);
    expect(() => rowText(undefined)).toThrow("row must be a JSON object with the stream's columns, got undefined undefined");
  });

  it('refuses text with a lone surrogate (no UTF-8 form), keeps pairs', () => {
    expect(rowText('{"id":"\u{1F600}"}')).toBe('{"id":"\u{1F600}"}');
    expect(() => rowText('{"id":"a\uDC00"}')).toThrow('row cannot be serialized to JSON: it has a lone surrogate U+DC00 at index 8, which has no UTF-8 form');
    expect(() => rowText('{"id":"\uD83D"}')).toThrow(/lone surrogate U\+D83D at index 7/);
    expect(rowText({ id: '\uD800' })).toBe('{"id":"\\ud800"}'); // a value: JSON.stringify escapes it, nothing is altered
  });

  it('a field whose value is undefined is neither stored nor checked, as the daemon sees the row', () => {
    expect(validateRow('events', streams.events, { id: 'a', colour: undefined })).toEqual({ id: 'a', payload: '{"id":"a"}' });
  });
});
