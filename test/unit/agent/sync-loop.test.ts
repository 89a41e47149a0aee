import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/agent/config.js';
import type { SyncEngine, SyncPassResult } from '../../../src/agent/sync-engine.js';
import { SyncLoop } from '../../../src/agent/sync-loop.js';

const pass = (sent: number): SyncPassResult => ({ sent, inserted: sent, rejected: 0, batches: sent > 0 ? 1 : 0, marker: null, outsideHistory: 0, resentSynced: 0, complete: true });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An engine scripted pass by pass: 'fail' throws, a number is a pass that sent that many rows. */
function scriptedEngine(script: ('fail' | number)[], options: { recordFails?: boolean } = {}) {
  const calls: { at: number; kind: string }[] = [];
  let failures = 0;
  const engine = {
    async syncPass(): Promise<SyncPassResult> {
      const step = script.shift() ?? 0;
      calls.push({ at: Date.now(), kind: String(step) });
      if (step === 'fail') throw new Error('connect ECONNREFUSED');
      return pass(step);
    },
    async recordFailure(): Promise<number> {
      if (options.recordFails) throw new Error('buffer locked');
      return ++failures;
    },
    async close(): Promise<void> {
      calls.push({ at: Date.now(), kind: 'close' });
    },
  };
  return { engine: engine as unknown as SyncEngine, calls };
}

describe('sync loop', () => {
  const config = parseConfig({ pollIntervalMs: 10_000, backoff: { initialMs: 400, maxMs: 400 }, streams: { e: { table: 't', key: ['id'], columns: ['id'] } } });

  it('syncs at start-up, backs off after a failure, and an append does not cut the backoff short', async () => {
    const { engine, calls } = scriptedEngine(['fail', 5]);
    const loop = new SyncLoop({ engine, config: () => config, log: () => undefined, random: () => 0 });
    const started = Date.now();
    void loop.start();
    await sleep(50);
    expect(calls.map((c) => c.kind)).toEqual(['fail']); // the start-up pass ran at once
    loop.wake(); // an append: must not hammer a failing writer
    await sleep(50);
    expect(calls).toHaveLength(1);
    await sleep(250); // backoff with random()=0 is half of 400 ms
    expect(calls.map((c) => c.kind)).toEqual(['fail', '5', '0']);
    expect(calls[1]!.at - started).toBeGreaterThanOrEqual(190);
    await loop.stop();
    expect(calls.at(-1)!.kind).toBe('close');
  });

  it('retryNow (SIGHUP) ends a backoff wait; wake ends an idle wait', async () => {
    const { engine, calls } = scriptedEngine(['fail', 0, 0]);
    const loop = new SyncLoop({ engine, config: () => config, log: () => undefined, random: () => 1 });
    void loop.start();
    await sleep(30);
    loop.retryNow();
    await sleep(30);
    expect(calls.map((c) => c.kind)).toEqual(['fail', '0']); // now idle for pollIntervalMs (10 s)
    loop.wake();
    await sleep(30);
    expect(calls.map((c) => c.kind)).toEqual(['fail', '0', '0']);
    const stopping = Date.now();
    await loop.stop();
    expect(Date.now() - stopping).toBeLessThan(5_000); // not the 10 s poll interval
  });

  it('after a pass that sent rows, an append does not start the next pass before the linger ends', async () => {
    const { engine, calls } = scriptedEngine([5, 0]);
    const loop = new SyncLoop({ engine, config: () => config, log: () => undefined, lingerMs: 60_000 });
    void loop.start();
    await sleep(30);
    loop.wake(); // a group commit: more rows, but the loop waits to send them together
    await sleep(30);
    expect(calls.map((c) => c.kind)).toEqual(['5']);
    loop.retryNow();
    await sleep(30);
    expect(calls.map((c) => c.kind)).toEqual(['5', '0']);
    await loop.stop();
  });

  it('keeps going when the failure cannot even be recorded in the buffer', async () => {
    const { engine, calls } = scriptedEngine(['fail', 'fail', 3], { recordFails: true });
    const logged: string[] = [];
    const fast = { ...config, backoff: { initialMs: 10, maxMs: 10 } };
    const loop = new SyncLoop({ engine, config: () => fast, log: (_l, message) => logged.push(message), random: () => 0 });
    void loop.start();
    await sleep(150);
    await loop.stop();
    expect(calls.map((c) => c.kind).slice(0, 3)).toEqual(['fail', 'fail', '3']);
    expect(logged.filter((m) => m === 'could not record the sync failure in the buffer')).toHaveLength(2);
  });
});
