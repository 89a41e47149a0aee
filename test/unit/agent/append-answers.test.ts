import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { Answers } from '../../../src/agent/append-server.js';

function fakeSocket(writable = true): net.Socket & { written: string[] } {
  const written: string[] = [];
  return { writable, written, write: (text: string) => written.push(text) } as unknown as net.Socket & { written: string[] };
}

describe('Answers (one write per connection per commit)', () => {
  it("joins a connection's answers in request order into one write, and writes nothing to a closed connection", () => {
    const a = fakeSocket();
    const b = fakeSocket();
    const gone = fakeSocket(false);
    const answers = new Answers();
    answers.add(a, { n: 1, ids: ['x'] });
    answers.add(b, { n: 7, error: 'disk full' });
    answers.add(gone, { n: 3, ids: ['z'] });
    answers.add(a, { n: 2, ids: [], rejected: { index: 0, message: 'no' } });
    answers.send();
    expect(a.written).toEqual(['{"n":1,"ids":["x"]}\n{"n":2,"ids":[],"rejected":{"index":0,"message":"no"}}\n']);
    expect(b.written).toEqual(['{"n":7,"error":"disk full"}\n']);
    expect(gone.written).toEqual([]);
  });
});
