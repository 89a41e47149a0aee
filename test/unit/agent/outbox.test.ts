import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpoint } from '../../../src/agent/checkpoint.js';
import { parseConfig, type StreamConfig } from '../../../src/agent/config.js';
import { SCHEMA_VERSION } from '../../../src/agent/outbox-schema.js';
import { Outbox, type ResendSelection, type SyncMarker } from '../../../src/agent/outbox.js';
import { historyOf, type Epoch } from '../../../src/core/lineage.js';
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

const epoch = (n: number, parent: Epoch | null, forkLsn: string | null, timelineId: number, generation: number): Epoch => ({
  id: `00000000-0000-4000-8000-00000000000${n}`,
  parentId: parent?.id ?? null,
  generation,
  forkLsn,
  timelineId,
  nodeId: `pg-${n}`,
  executionId: null,
  createdAt: `2026-12-0${n}T00:00:00.000Z`,
});
const A = epoch(1, null, null, 1, 1);
const B = epoch(2, A, '0/4000000', 2, 2);
const B_LOW = epoch(3, A, '0/500', 2, 2);
const C = epoch(4, B_LOW, '0/1000', 3, 3);
const D = epoch(5, C, '0/5000', 4, 4);
const C_SIBLING = epoch(6, A, '0/200', 2, 3);
const at = (e: Epoch, lsn: string): SyncMarker => ({ epochId: e.id, timelineId: e.timelineId, lsn });

/** The version 2 schema (before the lineage), as older agents created it. */
const V2_SCHEMA = `
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, stream TEXT NOT NULL, id TEXT NOT NULL, payload TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'synced', 'rejected')),
  synced_at_ms INTEGER, marker_timeline INTEGER, marker_lsn INTEGER, error TEXT, UNIQUE (stream, id),
  CHECK (state <> 'synced' OR (synced_at_ms IS NOT NULL AND marker_timeline IS NOT NULL AND marker_lsn IS NOT NULL)));
CREATE INDEX outbox_pending ON outbox (seq) WHERE state = 'pending';
CREATE INDEX outbox_synced_at ON outbox (synced_at_ms) WHERE state = 'synced';
CREATE TABLE agent_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE outbox_resync (first_seq INTEGER PRIMARY KEY, last_seq INTEGER NOT NULL, synced_at_ms INTEGER NOT NULL,
  marker_timeline INTEGER NOT NULL, marker_lsn INTEGER NOT NULL, CHECK (last_seq >= first_seq));
CREATE TABLE timeline_forks (timeline INTEGER PRIMARY KEY, fork_lsn INTEGER NOT NULL, next_timeline INTEGER NOT NULL, recorded_at_ms INTEGER NOT NULL);
`;

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
    expect(columns).toEqual(['seq', 'stream', 'id', 'payload', 'created_at_ms', 'state', 'synced_at_ms', 'marker_timeline', 'marker_lsn', 'error', 'marker_epoch']);
    const lineage = (db.prepare('PRAGMA table_info(lineage)').all() as { name: string }[]).map((c) => c.name);
    expect(lineage).toEqual(['epoch', 'parent_epoch', 'generation', 'fork_lsn', 'timeline', 'node_id', 'execution_id', 'created_at', 'learned_at_ms']);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('user_version', { simple: true })).toBe(3);
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

  it('marks synced rows with their epoch marker and selects re-sends by the newest epoch\'s history', () => {
    for (let i = 1; i <= 6; i++) outbox.append('events', events, { id: `r${i}` });
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.mergeLineage([A]);
    expect(outbox.markSynced(seqs.slice(0, 2), at(A, '0/3000000'), 10_000)).toBe(true);
    outbox.markSynced(seqs.slice(2, 4), at(A, '0/5000000'), 20_000);
    outbox.mergeLineage([B]); // B keeps A up to 0/4000000
    outbox.markSynced(seqs.slice(4, 5), at(B, '0/5100000'), 30_000);
    // r6 stays pending
    expect(outbox.rows().map((r) => [r.id, r.state, r.markerEpoch, r.markerTimeline, r.markerLsn])).toEqual([
      ['r1', 'synced', A.id, 1, '0/3000000'],
      ['r2', 'synced', A.id, 1, '0/3000000'],
      ['r3', 'synced', A.id, 1, '0/5000000'],
      ['r4', 'synced', A.id, 1, '0/5000000'],
      ['r5', 'synced', B.id, 2, '0/5100000'],
      ['r6', 'pending', null, null, null],
    ]);
    const selection = { history: historyOf(outbox.lineage(), B.id) };
    expect(resentIds(selection)).toEqual(['r3', 'r4', 'r6']);
    expect(resentIds(selection, 3)).toEqual(['r3']);
    // r1 and r2 are in the new history: their block holds nothing but ends after them (a short read transaction)
    expect(outbox.resendBlock(['events'], selection, 0, outbox.maxSeq(), 2)).toEqual({ end: seqs[1], pending: [], synced: [] });
    expect(outbox.counts(0).outsideHistoryRows).toBe(2);
    expect(outbox.countExamined(outbox.maxSeq())).toBe(6);
    expect(outbox.countExamined(seqs[1]!)).toBe(2);
  });

  it('marks nothing when the marker is outside the newest epoch\'s history: the batch raced a fork', () => {
    for (let i = 1; i <= 3; i++) outbox.append('events', events, { id: `z${i}` });
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    // nothing is known yet: no marker is in any history
    expect(outbox.markSynced(seqs, at(A, '0/100'), 1_000)).toBe(false);
    outbox.mergeLineage([A]);
    outbox.markSynced([seqs[0]!], at(A, '0/100'), 1_000);
    outbox.mergeLineage([B]);
    // a zombie A above B's fork, or a sibling epoch: refused, the rows stay pending and the state is still written
    expect(outbox.markSynced([seqs[1]!], at(A, '0/5000000'), 2_000, { note: 'kept' })).toBe(false);
    expect(outbox.markSynced([seqs[2]!], at(C_SIBLING, '0/100'), 2_000)).toBe(false);
    expect(outbox.markSynced([], at(A, '0/5000000'), 2_000, undefined, [[seqs[0]!, seqs[0]!]])).toBe(false);
    expect(outbox.getState('note')).toBe('kept');
    expect(outbox.rows().map((r) => [r.id, r.state, r.markerEpoch])).toEqual([
      ['z1', 'synced', A.id],
      ['z2', 'pending', null],
      ['z3', 'pending', null],
    ]);
    // A below B's fork is still in the history
    expect(outbox.markSynced([seqs[1]!], at(A, '0/3000000'), 3_000)).toBe(true);
  });

  it('merges epochs once, bumping the lineage version only when something is new; the newest epoch is the head', () => {
    expect(outbox.lineageHead()).toBeUndefined();
    expect(outbox.mergeLineage([A, B])).toEqual({ added: 2, version: 1 });
    expect(outbox.mergeLineage([A])).toEqual({ added: 0, version: 1 });
    expect(outbox.lineageHead()?.id).toBe(B.id);
    expect(outbox.mergeLineage([C_SIBLING])).toEqual({ added: 1, version: 2 });
    expect(outbox.lineageHead()?.id).toBe(C_SIBLING.id); // generation 3 beats B's 2
    expect(outbox.lineage().map((e) => e.id).sort()).toEqual([A.id, B.id, C_SIBLING.id].sort());
    expect(outbox.lineage().find((e) => e.id === B.id)).toEqual(B);
  });

  it('prunes only synced rows old enough and inside the history', () => {
    for (let i = 1; i <= 4; i++) outbox.append('events', events, { id: `p${i}` });
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.mergeLineage([A]);
    outbox.markSynced([seqs[0]!], at(A, '0/100'), 1_000);
    outbox.markSynced([seqs[1]!], at(A, '0/900'), 1_000);
    outbox.markSynced([seqs[2]!], at(A, '0/100'), 9_000);
    expect(outbox.pruneChunk(historyOf(outbox.lineage(), A.id, 0x500n), 5_000, 100)).toBe(1);
    expect(outbox.rows().map((r) => r.id)).toEqual(['p2', 'p3', 'p4']);
  });

  it('a resend marks runs of adjacent re-sent rows as resync ranges: effective markers everywhere, folded into rows before prune', () => {
    for (let i = 1; i <= 8; i++) outbox.append('events', events, { id: `s${i}` });
    outbox.append('other', { ...events, name: 'other' }, { id: 'o9' }); // unknown stream: stays pending
    const seqs = outbox.pendingBatch(['events'], 10).map((r) => r.seq);
    outbox.mergeLineage([A]);
    outbox.markSynced(seqs.slice(0, 3), at(A, '0/100'), 1_000); // s1-s3: in the history below
    outbox.markRejected(seqs[4]!, 'bad'); // s5: not re-sent, so it splits the run
    outbox.markSynced(seqs.slice(3, 7), at(A, '0/900'), 2_000); // s4, s6, s7: past the fork
    const fork = { history: historyOf([A, B_LOW], B_LOW.id) }; // keeps A up to 0/500
    const max = outbox.maxSeq();
    const block = outbox.resendBlock(['events'], fork, 0, max, 100);
    // s8 is pending (sent and marked row by row); s4 stands alone (s5 between); s6-s7 is a run
    expect(block.end).toBe(max);
    expect(block.pending.map((r) => r.id)).toEqual(['s8']);
    expect(block.synced.map(({ payloads, ...group }) => ({ ...group, payloads: payloads.toString().split('\u001e').sort() }))).toEqual([
      { stream: 'events', seqs: [seqs[3], seqs[5], seqs[6]], runs: [[seqs[5], seqs[6]]], singles: [seqs[3]], payloads: ['{"id":"s4"}', '{"id":"s6"}', '{"id":"s7"}'] },
    ]);
    // what the engine does after the statements committed on the B_LOW writer
    outbox.mergeLineage([B_LOW]);
    outbox.markSynced([seqs[7]!], at(B_LOW, '0/2000'), 5_000);
    outbox.markSynced([seqs[3]!], at(B_LOW, '0/2000'), 5_000, undefined, [[seqs[5]!, seqs[6]!]]);
    const effective = () => outbox.rows().map((r) => [r.id, r.state, r.markerTimeline, r.markerLsn]);
    expect(effective()).toEqual([
      ['s1', 'synced', 1, '0/100'],
      ['s2', 'synced', 1, '0/100'],
      ['s3', 'synced', 1, '0/100'],
      ['s4', 'synced', 2, '0/2000'],
      ['s5', 'rejected', null, null],
      ['s6', 'synced', 2, '0/2000'],
      ['s7', 'synced', 2, '0/2000'],
      ['s8', 'synced', 2, '0/2000'],
      ['o9', 'pending', null, null],
    ]);
    // the next fork reads the range's marker: C keeps B_LOW up to 0/1000 (and so A up to 0/500)
    outbox.mergeLineage([C]);
    const afterC = { history: historyOf(outbox.lineage(), C.id) };
    expect(resentIds(afterC)).toEqual(['s4', 's6', 's7', 's8']);
    expect(resentIds(afterC, 5)).toEqual(['s4']); // the block scans s1..s5
    expect(resentIds({ history: historyOf(outbox.lineage(), B_LOW.id) })).toEqual([]);
    expect(outbox.counts(4_000).syncedBeforeMs).toBe(3);
    expect(outbox.counts(0).outsideHistoryRows).toBe(4);

    // a newer range over part of an older one replaces that part only
    outbox.markSynced([], at(C, '0/3000'), 6_000, undefined, [[seqs[6]!, seqs[6]!]]);
    expect(effective().map((r) => r[2])).toEqual([1, 1, 1, 2, null, 2, 3, 2, null]);
    // a row marked row by row takes over from the range (the range is folded into its rows first)
    outbox.mergeLineage([D]);
    outbox.markSynced([seqs[5]!], at(D, '0/4000'), 7_000);
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
    expect(outbox.pruneChunk([{ epochId: B_LOW.id, maxLsn: 0x2000n }], 5_500, 100)).toBe(2); // s4 and s8
    expect(raw()).toEqual({ ranges: 0, timelines: [1, 1, 1, null, 4, 3, null] });
    expect(outbox.rows().map((r) => r.id)).toEqual(['s1', 's2', 's3', 's5', 's6', 's7', 'o9']);
  });

  it('opens a version 2 buffer and migrates it to version 3 in place: its synced rows have no epoch, so they are outside any history', () => {
    outbox.close();
    const file = path.join(dir, 'v2.db');
    const db = openSqlite(file);
    db.pragma('journal_mode = WAL');
    db.exec(V2_SCHEMA);
    db.pragma('user_version = 2');
    db.prepare('INSERT INTO outbox (stream, id, payload) VALUES (?, ?, ?)').run('events', 'v1', '{"id":"v1"}');
    db.prepare("INSERT INTO outbox (stream, id, payload, state, synced_at_ms, marker_timeline, marker_lsn) VALUES ('events', 'v2', '{\"id\":\"v2\"}', 'synced', 1, 1, 16)").run();
    db.prepare('INSERT INTO outbox_resync (first_seq, last_seq, synced_at_ms, marker_timeline, marker_lsn) VALUES (2, 2, 1, 1, 16)').run();
    db.close();
    outbox = Outbox.open(file);
    expect(outbox.pendingBatch(['events'], 10).map((r) => r.id)).toEqual(['v1']);
    outbox.mergeLineage([A]);
    expect(outbox.counts(0).outsideHistoryRows).toBe(1);
    expect(resentIds({ history: historyOf(outbox.lineage(), A.id) })).toEqual(['v1', 'v2']);
    outbox.markSynced([1], at(A, '0/10'), 1, undefined, [[2, 2]]);
    expect(outbox.counts(0).outsideHistoryRows).toBe(0);
    const check = openSqlite(file, { readonly: true });
    expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    expect((check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'timeline_forks'").get() as { n: number }).n).toBe(0);
    expect((check.prepare('SELECT marker_epoch AS e FROM outbox_resync').get() as { e: string }).e).toBe(A.id);
    check.close();
    // and opening it again changes nothing
    outbox.close();
    outbox = Outbox.open(file);
    expect(outbox.rows().map((r) => [r.id, r.markerEpoch])).toEqual([
      ['v1', A.id],
      ['v2', A.id],
    ]);
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
