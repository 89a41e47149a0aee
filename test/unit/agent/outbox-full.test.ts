/** A full buffer refuses appends clearly and stores nothing of them; everything acknowledged before stays. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, type StreamConfig } from '../../../src/agent/config.js';
import type { Epoch } from '../../../src/core/lineage.js';
import { BufferFullError, Outbox } from '../../../src/agent/outbox.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';

const config = parseConfig({ streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } });
const events = config.streams.events as StreamConfig;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'outbox-full-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Appends one row at a time until the buffer refuses one; returns the ids it acknowledged and the refusal. */
function fill(append: (id: string) => string, prefix: string, max = 10_000): { acked: string[]; refusal: unknown } {
  const acked: string[] = [];
  for (let i = 0; i < max; i++) {
    try {
      acked.push(append(`${prefix}-${i}`));
    } catch (error) {
      return { acked, refusal: error };
    }
  }
  return { acked, refusal: undefined };
}

describe('Outbox with a size cap (the volume is full)', () => {
  it('refuses the append that does not fit with BufferFullError naming the file; nothing of it is stored, all before it is', () => {
    const file = path.join(dir, 'w.sqlite');
    const outbox = Outbox.open(file);
    for (let i = 0; i < 50; i++) outbox.append('events', events, { id: `a-${i}`, body: 'x'.repeat(100) });
    outbox.setMaxBytes(outbox.databaseBytes()); // no room beyond what the database has now
    const { acked, refusal } = fill((id) => outbox.append('events', events, { id, body: 'y'.repeat(100) }), 'b');
    expect(refusal).toBeInstanceOf(BufferFullError);
    expect((refusal as Error).message).toContain(`buffer ${file} is full`);
    expect((refusal as Error).message).toMatch(/nothing of it was stored/);
    const ids = outbox.rows().map((r) => r.id);
    expect(ids).toEqual([...Array.from({ length: 50 }, (_, i) => `a-${i}`), ...acked]);
    expect(ids).not.toContain(`b-${acked.length}`);
    outbox.close();
  });

  it('a batch that does not fit is refused whole (one transaction)', () => {
    const outbox = Outbox.open(path.join(dir, 'w.sqlite'));
    outbox.append('events', events, { id: 'first', body: '' });
    outbox.setMaxBytes(outbox.databaseBytes());
    const rows = Array.from({ length: 500 }, (_, i) => ({ id: `m-${i}`, body: 'z'.repeat(200) }));
    expect(() => outbox.appendMany('events', events, rows)).toThrow(BufferFullError);
    expect(outbox.rows().map((r) => r.id)).toEqual(['first']);
    outbox.close();
  });

  it('only appends are capped: marking rows synced on the same connection still works when full', () => {
    const outbox = Outbox.open(path.join(dir, 'w.sqlite'));
    for (let i = 0; i < 20; i++) outbox.append('events', events, { id: `a-${i}`, body: 'x'.repeat(100) });
    outbox.setMaxBytes(outbox.databaseBytes());
    fill((id) => outbox.append('events', events, { id, body: 'y'.repeat(100) }), 'b');
    const seqs = outbox.rows().map((r) => r.seq);
    const root: Epoch = { id: '00000000-0000-4000-8000-000000000001', parentId: null, generation: 1, forkLsn: null, timelineId: 1, nodeId: 'pg-0', executionId: null, createdAt: '2026-12-01T00:00:00.000Z' };
    outbox.mergeLineage([root]);
    expect(outbox.markSynced(seqs, { epochId: root.id, timelineId: 1, lsn: '0/3000060' })).toBe(true);
    expect(outbox.pendingCount()).toBe(0);
    outbox.close();
  });

  it('appends succeed again once the cap is lifted (space returned)', () => {
    const outbox = Outbox.open(path.join(dir, 'w.sqlite'));
    outbox.setMaxBytes(outbox.databaseBytes());
    expect(fill((id) => outbox.append('events', events, { id, body: 'y'.repeat(100) }), 'b').refusal).toBeInstanceOf(BufferFullError);
    outbox.setMaxBytes(null);
    expect(outbox.maxBytes).toBeNull();
    expect(outbox.append('events', events, { id: 'after', body: 'ok' })).toBe('after');
    outbox.close();
  });

  it('maxBufferBytes in the agent config caps a WriteBuffer; a bad value names the field', () => {
    const capped = parseConfig({ maxBufferBytes: 64 * 1024, streams: { events: { table: 'events', key: ['id'], columns: ['id', 'body'] } } });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'w.sqlite'), config: capped });
    expect(buffer.outbox.maxBytes).toBeLessThanOrEqual(64 * 1024);
    const { acked, refusal } = fill((id) => buffer.append('events', { id, body: 'p'.repeat(500) }), 'c');
    expect(refusal).toBeInstanceOf(BufferFullError);
    expect((refusal as Error).message).toMatch(/maxBufferBytes \(\d+ bytes\)/);
    expect(acked.length * 500).toBeLessThanOrEqual(64 * 1024); // the database's pages, not counting the WAL (see docs/buffer.md)
    expect(buffer.status().pendingRows).toBe(acked.length);
    void buffer.close();
    const bad = () => parseConfig({ maxBufferBytes: 10 }, dir, { allowNoStreams: true });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/maxBufferBytes: expected an integer from 65536/);
  });
});
