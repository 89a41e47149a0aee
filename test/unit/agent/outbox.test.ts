import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpoint } from '../../../src/agent/checkpoint.js';
import { parseConfig, type StreamConfig } from '../../../src/agent/config.js';
import { historyRanges } from '../../../src/agent/lineage.js';
import { SCHEMA_SQL, SCHEMA_VERSION } from '../../../src/agent/outbox-schema.js';
import { Outbox, type ResendSelection } from '../../../src/agent/outbox.js';
import { RowRejectedError } from '../../../src/agent/row-validation.js';
import { openSqlite } from '../../../src/agent/sqlite.js';

const config = parseConfig({
  streams: {
    events: { table: 'events', key: ['id'], columns: ['id', 'body', 'n'], maxPayloadBytes: 200 },
    pairs: { table: 'pairs', key: ['a', 'b'], columns: ['a', 'b', 'v'] },
  },
});
const events = config.streams.events as StreamConfig;
const pairs = config.streams.pairs as StreamConfig;

let dir: string;
let outbox: Outbox;

/**
 * The ids of the rows a drain block re-sends (pending and synced), in seq order; checks on the way that each
 * synced group's payload buffer holds exactly its rows' payloads (the rows here have payload {"id": id}).
 */
function resentIds(selection: ResendSelection, limit = 100): string[] {
  // the first block with something to re-send (a block of rows none of which is re-sent just moves `end` on)
  let block = outbox.resendBlock(['events'], selection, 0, outbox.maxSeq(), limit);
  while (block.pending.length === 0 && block.synced.length === 0 && block.end < outbox.maxSeq()) {
    block = outbox.resendBlock(['events'], selection, block.end, outbox.maxSeq(), limit);
  }
  const ids = new Map(outbox.rows().map((r) => [r.seq, r.id]));
  for (const group of block.synced) {
    const inBuffer = group.payloads.toString('utf8').split('\u001e').map((p) => (JSON.parse(p) as { id: string }).id);
    expect(inBuffer.sort()).toEqual(group.seqs.map((seq) => ids.get(seq)!).sort());
  }
  const seqs = [...block.pending.map((r) => r.seq), ...block.synced.flatMap((g) => g.seqs)].sort((a, b) => a - b);
  return seqs.map((seq) => ids.get(seq)!);
}
beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'outbox-'));
  outbox = Outbox.open(path.join(dir, 'buffer.db'));
});
afterEach(() => {
  outbox.close();
  rmSync(dir, { recursive: true, force: true });
});

function rowCount(): number {
  const db = openSqlite(outbox.file, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('outbox', () => {
  it('creates the documented schema in WAL mode', () => {
    const db = openSqlite(outbox.file, { readonly: true });
    const columns = (db.prepare('PRAGMA table_info(outbox)').all() as { name: string }[]).map((c) => c.name);
    expect(columns).toEqual(['seq', 'stream', 'id', 'payload', 'created_at_ms', 'state', 'synced_at_ms', 'marker_timeline', 'marker_lsn', 'error']);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(2);
    db.close();
  });

  it('returns the key as the id, keeps the payload text byte for byte and stores it pending', () => {
    expect(outbox.append('events', events, '  {"id":"e-1","n":12345678901234567890}  ', 1000)).toBe('e-1');
    expect(outbox.append('events', events, { id: 7, body: 'x' }, 1001)).toBe('7');
    expect(outbox.append('pairs', pairs, { a: 'x', b: 2, v: 1 })).toBe('["x",2]');
    const batch = outbox.pendingBatch(['events', 'pairs'], 10);
    expect(batch.map((r) => [r.stream, r.id, r.payload])).toEqual([
      ['events', 'e-1', '{"id":"e-1","n":12345678901234567890}'],
      ['events', '7', '{"id":7,"body":"x"}'],
      ['pairs', '["x",2]', '{"a":"x","b":2,"v":1}'],
    ]);
    expect(outbox.rows().map((r) => r.state)).toEqual(['pending', 'pending', 'pending']);
  });

  it.each([
    ['unknown stream', 'nope', '{"id":"1"}', "unknown stream 'nope': add it to the config's streams"],
    ['not JSON', 'events', '{"id": 1', 'row is not valid JSON'],
    ['an array', 'events', '[1,2]', "row must be a JSON object with the stream's columns, got an array"],
    ['null', 'events', 'null', "row must be a JSON object with the stream's columns, got null"],
    ['a string', 'events', '"hello"', 'row must be a JSON object with the stream\'s columns, got string "hello"'],
    ['a missing key field', 'events', '{"body":"x"}', "key field 'id' is missing (stream 'events' is keyed on id)"],
    ['a null key', 'events', '{"id":null}', "key field 'id' must be a string or a number, got null"],
    ['an object key', 'events', '{"id":{"x":1}}', "key field 'id' must be a string or a number, got an object"],
    ['an unsafe integer key', 'events', '{"id":9007199254740993}', "key field 'id' is an integer beyond 2^53"],
    ['an empty key', 'events', '{"id":""}', "key field 'id' must not be an empty string"],
    ['an unknown field', 'events', '{"id":"1","colour":"red"}', "field 'colour' is not a column of stream 'events' (columns: id, body, n)"],
    ['an oversized payload', 'events', JSON.stringify({ id: 'big', body: 'x'.repeat(300) }), "over maxPayloadBytes 200 of stream 'events'"],
    ['one missing field of a composite key', 'pairs', '{"a":"x"}', "key field 'b' is missing (stream 'pairs' is keyed on a, b)"],
  ])('rejects %s with a clear message and writes nothing', (_case, stream, row, message) => {
    const config = stream === 'pairs' ? pairs : stream === 'events' ? events : undefined;
    let error: unknown;
    try {
      outbox.append(stream, config, row);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RowRejectedError);
    expect((error as Error).message).toContain(message);
    expect(rowCount()).toBe(0);
  });

  it('acknowledges a retried append of the same row once, and rejects the same id with another payload', () => {
    expect(outbox.append('events', events, '{"id":"r","body":"a"}')).toBe('r');
    expect(outbox.append('events', events, '{"id":"r","body":"a"}')).toBe('r');
    expect(() => outbox.append('events', events, '{"id":"r","body":"b"}')).toThrow("id 'r' is already in the buffer for stream 'events' with a different payload");
    expect(rowCount()).toBe(1);
  });

  it('appendMany commits the rows before the first rejected one and nothing after it', () => {
    const result = outbox.appendMany('events', events, ['{"id":"1"}', '{"id":"2"}', '{"oops":1}', '{"id":"4"}']);
    expect(result.ids).toEqual(['1', '2']);
    expect(result.rejected?.index).toBe(2);
    expect(result.rejected?.error.message).toContain("field 'oops' is not a column");
    expect(outbox.rows().map((r) => r.id)).toEqual(['1', '2']);
  });

  it('leaves rows of streams the config does not know pending, out of sync batches', () => {
    outbox.append('other', { ...events, name: 'other' }, '{"id":"o"}');
    outbox.append('events', events, '{"id":"e"}');
    expect(outbox.pendingBatch(['events'], 10).map((r) => r.id)).toEqual(['e']);
    expect(outbox.pendingCount()).toBe(2);
  });

  it('marks synced rows with their marker and selects re-sends by fork point or window', () => {
    for (let i = 1; i <= 6; i++) outbox.append('events', events, { id: `r${i}` });
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.markSynced(seqs.slice(0, 2), { timelineId: 1, lsn: '0/3000000' }, 10_000);
    outbox.markSynced(seqs.slice(2, 4), { timelineId: 1, lsn: '0/5000000' }, 20_000);
    outbox.markSynced(seqs.slice(4, 5), { timelineId: 2, lsn: '0/5100000' }, 30_000);
    // r6 stays pending
    expect(outbox.rows().map((r) => [r.id, r.state, r.markerTimeline, r.markerLsn])).toEqual([
      ['r1', 'synced', 1, '0/3000000'],
      ['r2', 'synced', 1, '0/3000000'],
      ['r3', 'synced', 1, '0/5000000'],
      ['r4', 'synced', 1, '0/5000000'],
      ['r5', 'synced', 2, '0/5100000'],
      ['r6', 'pending', null, null],
    ]);
    const fork = { kind: 'outside-history' as const, ranges: historyRanges({ timelineId: 1, lsn: 0x4000000n }, []) };
    expect(resentIds(fork)).toEqual(['r3', 'r4', 'r5', 'r6']);
    expect(resentIds(fork, 2)).toEqual(['r3', 'r4']);
    // r1 and r2 are in the new history: their block holds nothing but ends after them (a short read transaction)
    expect(outbox.resendBlock(['events'], fork, 0, outbox.maxSeq(), 2)).toEqual({ end: seqs[1], pending: [], synced: [] });
    expect(resentIds({ kind: 'synced-since', sinceMs: 20_000 })).toEqual(['r3', 'r4', 'r5', 'r6']);
    expect(outbox.countExamined(outbox.maxSeq())).toBe(6);
    expect(outbox.countExamined(seqs[1]!)).toBe(2);
  });

  it('prunes only synced rows old enough and inside the history ranges', () => {
    for (let i = 1; i <= 4; i++) outbox.append('events', events, { id: `p${i}` });
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.markSynced([seqs[0]!], { timelineId: 1, lsn: '0/100' }, 1_000);
    outbox.markSynced([seqs[1]!], { timelineId: 1, lsn: '0/900' }, 1_000);
    outbox.markSynced([seqs[2]!], { timelineId: 1, lsn: '0/100' }, 9_000);
    const ranges = historyRanges({ timelineId: 1, lsn: 0x500n }, []);
    expect(outbox.pruneChunk(ranges, 5_000, 100)).toBe(1);
    expect(outbox.rows().map((r) => r.id)).toEqual(['p2', 'p3', 'p4']);
  });

  it('a drain marks runs of adjacent re-sent rows as resync ranges: effective markers everywhere, folded into rows before prune', () => {
    for (let i = 1; i <= 8; i++) outbox.append('events', events, { id: `s${i}` });
    outbox.append('other', { ...events, name: 'other' }, { id: 'o9' }); // unknown stream: stays pending
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.markSynced(seqs.slice(0, 3), { timelineId: 1, lsn: '0/100' }, 1_000); // s1-s3: in the history below
    outbox.markRejected(seqs[4]!, 'bad'); // s5: not re-sent, so it splits the run
    outbox.markSynced(seqs.slice(3, 7), { timelineId: 1, lsn: '0/900' }, 2_000); // s4, s6, s7: past the fork
    const fork = { kind: 'outside-history' as const, ranges: historyRanges({ timelineId: 1, lsn: 0x500n }, []) };
    const max = outbox.maxSeq();
    const block = outbox.resendBlock(['events'], fork, 0, max, 100);
    // s8 is pending (sent and marked row by row); s4 stands alone (s5 between); s6-s7 is a run
    expect(block.end).toBe(max);
    expect(block.pending.map((r) => r.id)).toEqual(['s8']);
    expect(block.synced.map(({ payloads, ...group }) => ({ ...group, payloads: payloads.toString().split('\u001e').sort() }))).toEqual([
      { stream: 'events', seqs: [seqs[3], seqs[5], seqs[6]], runs: [[seqs[5], seqs[6]]], singles: [seqs[3]], payloads: ['{"id":"s4"}', '{"id":"s6"}', '{"id":"s7"}'] },
    ]);
    // what the engine does after the statements committed on a timeline 2 writer
    outbox.markSynced([seqs[7]!], { timelineId: 2, lsn: '0/2000' }, 5_000);
    outbox.markSynced([seqs[3]!], { timelineId: 2, lsn: '0/2000' }, 5_000, undefined, [[seqs[5]!, seqs[6]!]]);
    const effective = () => outbox.rows().map((r) => [r.id, r.state, r.markerTimeline, r.markerLsn]);
    const expected = [
      ['s1', 'synced', 1, '0/100'],
      ['s2', 'synced', 1, '0/100'],
      ['s3', 'synced', 1, '0/100'],
      ['s4', 'synced', 2, '0/2000'],
      ['s5', 'rejected', null, null],
      ['s6', 'synced', 2, '0/2000'],
      ['s7', 'synced', 2, '0/2000'],
      ['s8', 'synced', 2, '0/2000'],
      ['o9', 'pending', null, null],
    ];
    expect(effective()).toEqual(expected);
    // the next drain and a window drain read the range's marker and time
    const fork2 = { kind: 'outside-history' as const, ranges: historyRanges({ timelineId: 2, lsn: 0x1000n }, []) };
    expect(resentIds(fork2)).toEqual(['s1', 's2', 's3', 's4', 's6', 's7', 's8']);
    expect(resentIds(fork2, 3)).toEqual(['s1', 's2', 's3']);
    expect(resentIds({ kind: 'outside-history', ranges: historyRanges({ timelineId: 2, lsn: 0x3000n }, []) })).toEqual(['s1', 's2', 's3']);
    expect(resentIds({ kind: 'synced-since', sinceMs: 4_000 })).toEqual(['s4', 's6', 's7', 's8']);
    expect(outbox.counts(4_000).syncedBeforeMs).toBe(3);

    // a newer range over part of an older one replaces that part only
    outbox.markSynced([], { timelineId: 3, lsn: '0/3000' }, 6_000, undefined, [[seqs[6]!, seqs[6]!]]);
    expect(effective().map((r) => r[2])).toEqual([1, 1, 1, 2, null, 2, 3, 2, null]);
    // a row marked row by row takes over from the range (the range is folded into its rows first)
    outbox.markSynced([seqs[5]!], { timelineId: 4, lsn: '0/4000' }, 7_000);
    expect(effective().map((r) => r[2])).toEqual([1, 1, 1, 2, null, 4, 3, 2, null]);

    // prune folds the ranges into the rows' own columns, then applies its rule to them
    const raw = () => {
      const db = openSqlite(outbox.file, { readonly: true });
      try {
        return {
          ranges: (db.prepare('SELECT count(*) AS n FROM outbox_resync').get() as { n: number }).n,
          timelines: (db.prepare('SELECT marker_timeline AS t FROM outbox ORDER BY seq').all() as { t: number | null }[]).map((r) => r.t),
        };
      } finally {
        db.close();
      }
    };
    expect(raw().ranges).toBe(1);
    expect(outbox.pruneChunk(historyRanges({ timelineId: 2, lsn: 0x2000n }, []), 5_500, 100)).toBe(2); // s4 and s8
    expect(raw()).toEqual({ ranges: 0, timelines: [1, 1, 1, null, 4, 3, null] });
    expect(outbox.rows().map((r) => r.id)).toEqual(['s1', 's2', 's3', 's5', 's6', 's7', 'o9']);
  });

  it('opens a version 1 buffer and migrates it to version 2 in place', () => {
    outbox.close();
    const file = path.join(dir, 'v1.db');
    const db = openSqlite(file);
    db.pragma('journal_mode = WAL');
    db.exec(SCHEMA_SQL.replace(/CREATE TABLE IF NOT EXISTS outbox_resync \([^;]*\);/, ''));
    db.pragma('user_version = 1');
    db.prepare('INSERT INTO outbox (stream, id, payload) VALUES (?, ?, ?)').run('events', 'v1', '{"id":"v1"}');
    expect((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'outbox_resync'").get() as { n: number }).n).toBe(0);
    db.close();
    outbox = Outbox.open(file);
    expect(outbox.pendingBatch(['events'], 10).map((r) => r.id)).toEqual(['v1']);
    outbox.markSynced([], { timelineId: 1, lsn: '0/10' }, 1, undefined, [[1, 1]]);
    const check = openSqlite(file, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect((check.prepare('SELECT count(*) AS n FROM outbox_resync').get() as { n: number }).n).toBe(1);
    check.close();
  });

  it('checkpoint truncates the WAL and reports a healthy file', async () => {
    for (let i = 0; i < 50; i++) outbox.append('events', events, { id: `c${i}` });
    expect(statSync(`${outbox.file}-wal`).size).toBeGreaterThan(0);
    const result = await checkpoint(outbox);
    expect(result).toMatchObject({ healthy: true, reason: null, journalMode: 'wal', integrity: 'ok' });
    expect(result.walBytesBefore).toBeGreaterThan(0);
    expect(result.walBytesAfter).toBe(0);
    expect(statSync(`${outbox.file}-wal`).size).toBe(0);
  });

  it('checkpoint reports busy when a reader holds the WAL', async () => {
    outbox.close();
    outbox = Outbox.open(path.join(dir, 'buffer.db'), { busyTimeoutMs: 20 });
    outbox.append('events', events, { id: 'b1' });
    const reader = openSqlite(outbox.file, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM outbox').get();
    outbox.append('events', events, { id: 'b2' });
    const result = await checkpoint(outbox, { attempts: 2, retryDelayMs: 5 });
    reader.exec('COMMIT');
    reader.close();
    expect(result.healthy).toBe(false);
    expect(result.reason).toBe('wal_checkpoint(TRUNCATE) stayed busy after 2 attempts: another connection holds a read or write lock');
  });

  it('checkpoint reports a corrupted file', async () => {
    for (let i = 0; i < 2000; i++) outbox.append('events', events, { id: `x${i}`, body: 'y'.repeat(50) });
    await checkpoint(outbox);
    outbox.close();
    // overwrite one page in the middle of the table b-tree
    const fd = openSync(path.join(dir, 'buffer.db'), 'r+');
    writeSync(fd, Buffer.alloc(4096, 0xab), 0, 4096, 4096 * 10);
    closeSync(fd);
    outbox = Outbox.open(path.join(dir, 'buffer.db'));
    const result = await checkpoint(outbox);
    expect(result.healthy).toBe(false);
    expect(result.reason).toMatch(/^integrity_check failed: /);
    expect(result.integrity).not.toBe('ok');
  });
});
