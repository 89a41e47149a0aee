import { describe, expect, it } from 'vitest';
import { coversRequest, LineReader } from '../../../src/agent/append-protocol.js';

describe('LineReader', () => {
  it('gives each line once it is complete, however the chunks cut it, and counts what is left', () => {
    const reader = new LineReader();
    expect(reader.push('{"n":1')).toEqual([]);
    expect(reader.pendingLength).toBe(6);
    expect(reader.push(',"x":2}\n{"n":2}\n\n{"n"')).toEqual(['{"n":1,"x":2}', '{"n":2}', '']);
    expect(reader.pendingLength).toBe(4);
    expect(reader.push(':3')).toEqual([]);
    expect(reader.push('}\n')).toEqual(['{"n":3}']);
    expect(reader.pendingLength).toBe(0);
    reader.push('half');
    reader.reset();
    expect(reader.pendingLength).toBe(0);
    expect(reader.push('new\n')).toEqual(['new']);
  });

  it('a line of a million one-character chunks comes out whole', () => {
    const reader = new LineReader();
    for (let i = 0; i < 1_000_000; i++) expect(reader.push('x').length).toBe(0);
    expect(reader.pendingLength).toBe(1_000_000);
    expect(reader.push('\n')).toEqual(['x'.repeat(1_000_000)]);
  });
});

describe('coversRequest', () => {
  it('an answer accounts for every row: an id each, or one for each row before the rejected one', () => {
    expect(coversRequest({ n: 1, ids: ['a', 'b'] }, 2)).toBe(true);
    expect(coversRequest({ n: 1, ids: ['a'] }, 2)).toBe(false);
    expect(coversRequest({ n: 1, ids: [] }, 1)).toBe(false);
    expect(coversRequest({ n: 1, ids: ['a', 'b', 'c'] }, 2)).toBe(false);
    expect(coversRequest({ n: 1, ids: ['a'], rejected: { index: 1, message: 'm' } }, 2)).toBe(true);
    expect(coversRequest({ n: 1, ids: [], rejected: { index: 1, message: 'm' } }, 2)).toBe(false);
    expect(coversRequest({ n: 1, ids: ['a', 'b'], rejected: { index: 2, message: 'm' } }, 2)).toBe(false); // no row 2
  });
});
