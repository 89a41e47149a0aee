import Database from 'better-sqlite3';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/agent/config.js';
import { SCHEMA_SQL, SCHEMA_VERSION } from '../../../src/agent/outbox-schema.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { PgSink } from '../../../src/agent/sink.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { compareLsn } from '../../../src/core/lsn.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { insertEpoch } from '../../../src/pg/lineage.js';
import { collect, EVENTS_DDL, EVENTS_STREAM, forkEpoch, grantLineage, idsIn, ndjson, runAgent, sleep, spawnAgent, sql, waitForReportedReplay, waitForStderr, writeConfig } from './agent-fixture.js';

let cluster: LocalCluster;
let dir: string;
let agentUrl: (node: string, database: string) => string;

beforeAll(async () => {
  // Standbys report their replay position every second (default 10 s): prune reads it from pg_stat_replication.
  cluster = await LocalCluster.start({ replicas: 1, settings: { wal_receiver_status_interval: '1s' } });
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-sync-'));
  for (const db of ['sync', 'sync_b', 'outage', 'prune', 'typed', 'zombie']) {
    await cluster.createDatabase(db);
    await sql(cluster, 'pg-0', EVENTS_DDL, db);
  }
  // The agent runs as a plain role, as on RDS: INSERT on its tables plus SELECT on the key columns (ON CONFLICT
  // reads them), pg_read_all_stats for prune, reading the lineage and recording its confirmations. Nothing else.
  await sql(cluster, 'pg-0', "CREATE ROLE agent LOGIN PASSWORD 'agent-pw'; GRANT pg_read_all_stats TO agent");
  for (const db of ['sync', 'sync_b', 'outage', 'prune', 'zombie']) {
    await sql(cluster, 'pg-0', 'GRANT INSERT, SELECT (id) ON events TO agent', db);
    await grantLineage(cluster, 'agent', db);
  }
  await grantLineage(cluster, 'agent', 'typed');
  await sql(cluster, 'pg-0', `${TYPED_DDL.replace('TABLE typed', 'TABLE reference')}; ${TYPED_DDL}; GRANT INSERT, SELECT (id) ON typed TO agent`, 'typed');
  agentUrl = (node, database) => cluster.connectionString(node, database).replace(/\/\/[^@]*@/, '//agent:agent-pw@');
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Rows in a COPY data buffer. */
const lineCount = (data: Buffer) => data.toString('utf8').split('\n').length - 1;

const TYPED_DDL = `CREATE TABLE typed (id text PRIMARY KEY, t text, i int, big numeric, f float8, b bool, ts timestamptz, u uuid, d date, j jsonb,
  arr int[], pos int CHECK (pos >= 0))`;
const TYPED_STREAM = { table: 'typed', key: ['id'], columns: ['id', 't', 'i', 'big', 'f', 'b', 'ts', 'u', 'd', 'j', 'arr', 'pos'] };

const rows = (prefix: string, count: number, extra: object = {}) => Array.from({ length: count }, (_, i) => ({ id: `${prefix}-${i}`, body: `row ${i}`, n: i, ...extra }));

describe('sync to the writer', () => {
  it('sync-once sends pending rows in batches exactly once and records each batch marker', async () => {
    const buffer = path.join(dir, 'once.db');
    const config = writeConfig(path.join(dir, 'once.json'), { writerUrl: agentUrl('pg-0', 'sync'), batchSize: 100, streams: { events: EVENTS_STREAM } });
    const append = await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('once', 250)));
    expect(append.code).toBe(0);
    expect(append.stdout.trim().split('\n')).toHaveLength(250);

    const first = await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config]);
    expect(first.stderr).not.toContain('"level":"warn"');
    expect(first.code).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result).toMatchObject({ sent: 250, inserted: 250, rejected: 0, batches: 3, complete: true, pendingRows: 0 });
    expect(result.marker.timelineId).toBe(1);

    const again = JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout);
    expect(again).toMatchObject({ sent: 0, inserted: 0, batches: 0, pendingRows: 0 });

    const inPg = await idsIn(cluster, 'pg-0', 'sync');
    expect(inPg.rows).toBe(250);
    expect([...inPg.ids].sort()).toEqual(rows('once', 250).map((r) => r.id).sort());

    const [{ lsn }] = await sql<{ lsn: string }>(cluster, 'pg-0', 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const outbox = Outbox.open(buffer);
    const stored = outbox.rows();
    outbox.close();
    expect(stored.every((r) => r.state === 'synced' && r.markerTimeline === 1)).toBe(true);
    // three batches, three markers, in commit order, none beyond the writer's position now
    const markers = [...new Set(stored.map((r) => r.markerLsn!))];
    expect(markers).toHaveLength(3);
    expect([...markers].sort(compareLsn)).toEqual(markers);
    expect(compareLsn(markers[2]!, lsn!)).toBeLessThanOrEqual(0);
    expect(stored.slice(0, 100).every((r) => r.markerLsn === markers[0])).toBe(true);

    const status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status).toMatchObject({ pendingRows: 0, syncedRows: 250, rejectedRows: 0, lastSyncError: null, consecutiveFailures: 0, currentWriter: agentUrl('pg-0', 'sync').replace(':agent-pw@', ':***@') });
    expect(status.lastSyncMarker).toEqual(result.marker);
  });

  it('rows reach PostgreSQL exactly as json_populate_record maps them, by COPY where it is exact, by INSERT otherwise or on conflict', async () => {
    // Payload texts as stored (other writers' spacing, number spellings and escapes included).
    const payloads = [
      '{"id":"k1","t":"plain","i":1,"big":12345678901234567890.000100,"f":1.5e3,"b":true,"ts":"2026-01-02T03:04:05.123+02:00","u":"6ec0bd7f-11c0-43da-975e-2a8ad9ebae0b","d":"2026-01-02","j":42,"pos":0}',
      '{ "id" : "k2" , "t" : "tab\\there, line\\nbreak, back\\\\slash, cr\\r, \\\\N, quote \\" and \\u00e9\\ud83d\\ude00" , "i" : -7 , "b" : "t" , "f" : -0.0 }',
      '{"id":"k3","t":42,"i":"8","big":"-1e-3","b":false,"j":null,"ts":null}',
      '{"id":"k4","t":true,"i":0,"f":1E+2,"d":"epoch"}',
      '{"id":"k5","j":{"nested":[1,"two",{"x":null}]},"arr":[1,2,3]}', // nested: INSERT path
      '{"id":"k6","j":"a json string"}', // a string for jsonb: INSERT path
      '{"id":"k7","t":"\\\\.","i":2147483647}',
      '{"id":"k8","t":"already there"}', // present in PostgreSQL before the sync: its COPY fails, INSERT goes through
      '{"id":"k9","pos":-1}', // violates the CHECK: narrowed down and rejected alone
      '{"id":"k10","t":"after the conflict"}',
    ];
    await sql(cluster, 'pg-0', `INSERT INTO typed (id, t) VALUES ('k8', 'first copy wins')`, 'typed');
    const file = path.join(dir, 'typed.db');
    const config = parseConfig({ writerUrl: agentUrl('pg-0', 'typed'), batchSize: 2, streams: { typed: TYPED_STREAM } });
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    const appended = payloads.map((p) => buffer.append('typed', p));
    const copy = vi.spyOn(PgSink.prototype, 'copy');
    const insert = vi.spyOn(PgSink.prototype, 'insert');
    try {
      expect(await buffer.syncOnce()).toMatchObject({ sent: 9, inserted: 8, rejected: 1, complete: true });
      // batches: [k1,k2] COPY; [k3,k4] COPY; [k5,k6] INSERT (not convertible); [k7,k8] COPY fails on k8 -> INSERT;
      // [k9,k10] INSERT (after a conflict, until an INSERT adds every row it sent): fails on the CHECK, narrowed.
      expect(copy.mock.calls.map(([, data]) => lineCount(data))).toEqual([2, 2, 2]);
      expect(insert.mock.calls.map(([batch]) => batch.payloads.length)).toEqual([2, 2, 2, 1, 1]);
    } finally {
      copy.mockRestore();
      insert.mockRestore();
    }
    expect(buffer.outbox.rows().map((r) => [r.id, r.state])).toEqual(appended.map((id) => [id, id === 'k9' ? 'rejected' : 'synced']));
    await buffer.close();

    // The reference: the same payloads through json_populate_recordset by the table owner.
    await sql(
      cluster,
      'pg-0',
      `INSERT INTO reference SELECT * FROM json_populate_recordset(NULL::reference, '[${payloads.filter((p) => !p.includes('"k9"')).join(',').replace(/'/g, "''")}]'::json)
       ON CONFLICT (id) DO NOTHING; UPDATE reference SET t = 'first copy wins' WHERE id = 'k8'`,
      'typed',
    );
    const dump = (table: string) => sql<{ row: unknown }>(cluster, 'pg-0', `SELECT to_jsonb(x) - 'id' || jsonb_build_object('id', x.id) AS row FROM ${table} x ORDER BY id`, 'typed');
    const reference = await dump('reference');
    expect(reference).toHaveLength(9);
    expect(await dump('typed')).toEqual(reference);

    // The same rows re-sent by a drain to a writer that lost them (a failover that kept none of them): synced rows
    // come from the buffer as one block of payloads per statement (2 rows here), converted to COPY data where exact.
    await sql(cluster, 'pg-0', `DELETE FROM typed; INSERT INTO typed (id, t) VALUES ('k8', 'first copy wins')`, 'typed');
    await forkEpoch(cluster, 'pg-0', 'typed');
    const drainer = WriteBuffer.open({ bufferPath: file, config: parseConfig({ writerUrl: agentUrl('pg-0', 'typed'), drain: { batchSize: 2 }, streams: { typed: TYPED_STREAM } }) });
    const drainCopy = vi.spyOn(PgSink.prototype, 'copy');
    try {
      expect(await drainer.drain({})).toMatchObject({ resent: 9, inserted: 8, alreadyPresent: 1 });
      expect(drainCopy.mock.calls.map(([, data]) => lineCount(data))).toEqual([2, 2, 2]); // [k7,k8] fails on k8 -> INSERT
    } finally {
      drainCopy.mockRestore();
    }
    await drainer.close();
    expect(await dump('typed')).toEqual(reference);
  });

  it('rows a COPY did not load are never marked: the same rows go out again by INSERT', async () => {
    await sql(cluster, 'pg-0', 'CREATE TABLE events_short (LIKE events INCLUDING ALL)', 'typed');
    const config = parseConfig({ writerUrl: cluster.connectionString('pg-0', 'typed'), streams: { e: { ...EVENTS_STREAM, table: 'events_short' } } });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'short.db'), config });
    buffer.appendMany('e', Array.from({ length: 50 }, (_, i) => ({ id: `s${i}`, body: 'x', n: i })));
    expect((await buffer.syncOnce()).sent).toBe(50);
    await sql(cluster, 'pg-0', 'TRUNCATE events_short', 'typed');
    await forkEpoch(cluster, 'pg-0', 'typed');
    // a converter that lost the last row: COPY commits 49 rows and says so
    const original = PgSink.prototype.copy;
    const copy = vi.spyOn(PgSink.prototype, 'copy').mockImplementation(function (this: PgSink, stream, data) {
      const text = data.toString('utf8');
      return original.call(this, stream, Buffer.from(text.slice(0, text.lastIndexOf('\n', text.length - 2) + 1), 'utf8'));
    });
    try {
      expect(await buffer.drain({})).toMatchObject({ resent: 50, inserted: 50 });
      expect(copy).toHaveBeenCalledTimes(1);
    } finally {
      copy.mockRestore();
    }
    await buffer.close();
    expect(await sql<{ n: number }>(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM events_short', 'typed')).toEqual([{ n: 50 }]);
  });

  it('a synced row the new writer refuses on a drain becomes rejected (kept, in status), and the drain says how many', async () => {
    await sql(cluster, 'pg-0', 'CREATE TABLE events_refused (LIKE events INCLUDING ALL, UNIQUE (body))', 'typed');
    const config = parseConfig({ writerUrl: cluster.connectionString('pg-0', 'typed'), streams: { e: { ...EVENTS_STREAM, table: 'events_refused' } } });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'refused.db'), config });
    buffer.appendMany('e', Array.from({ length: 5 }, (_, i) => ({ id: `f${i}`, body: `body-${i}`, n: i })));
    expect((await buffer.syncOnce()).sent).toBe(5);
    // the new primary lost them, and meanwhile took a row of its own with the same body as f3
    await sql(cluster, 'pg-0', `TRUNCATE events_refused; INSERT INTO events_refused (id, body, n) VALUES ('direct', 'body-3', 0)`, 'typed');
    const epoch = await forkEpoch(cluster, 'pg-0', 'typed');
    expect(await buffer.drain({ epochId: epoch.id })).toEqual({ epochId: epoch.id, examined: 5, resent: 4, inserted: 4, alreadyPresent: 0, remainingPending: 0, rejected: 1 });
    const f3 = buffer.outbox.rows().find((r) => r.id === 'f3')!;
    expect(f3.state).toBe('rejected');
    expect(f3.error).toMatch(/duplicate key value violates unique constraint/);
    expect(buffer.status().rejectedRows).toBe(1);
    await buffer.close();
  });

  it('a drain records a resync range only over runs of rows it re-sent in one statement, with no other row between', async () => {
    await sql(cluster, 'pg-0', 'CREATE TABLE events_b (LIKE events INCLUDING ALL)', 'typed');
    const file = path.join(dir, 'runs.db');
    const config = parseConfig({
      writerUrl: cluster.connectionString('pg-0', 'typed'),
      drain: { batchSize: 7 },
      streams: { a: EVENTS_STREAM, b: { ...EVENTS_STREAM, table: 'events_b' } },
    });
    const buffer = WriteBuffer.open({ bufferPath: file, config });
    // a a a b a a a a b b a a ... : the streams interleave
    const pattern = 'aaabaaaabbaaaaaaabaa';
    [...pattern].forEach((stream, i) => buffer.append(stream, { id: `r${i}`, body: 'x', n: i }));
    expect((await buffer.syncOnce()).sent).toBe(pattern.length);
    // rows synced below the fork (r5, r12) are in the new history, not re-sent: they must end up in no range
    const db = new Database(file);
    db.prepare("UPDATE outbox SET synced_at_ms = 0, marker_lsn = 0 WHERE id IN ('r5', 'r12')").run();
    db.close();
    buffer.append('a', { id: 'pending-1', body: 'x', n: 1 }); // pending rows are marked row by row (their state changes)
    await forkEpoch(cluster, 'pg-0', 'typed', '0/1');
    const summary = await buffer.drain({});
    expect(summary).toMatchObject({ resent: pattern.length - 2 + 1, inserted: 1 });

    const check = new Database(file, { readonly: true });
    const ranges = check.prepare('SELECT first_seq, last_seq FROM outbox_resync ORDER BY first_seq').all() as { first_seq: number; last_seq: number }[];
    const rowsByseq = new Map((check.prepare('SELECT seq, stream, id, synced_at_ms FROM outbox').all() as { seq: number; stream: string; id: string; synced_at_ms: number }[]).map((r) => [r.seq, r]));
    check.close();
    // batches of 7 scanned rows: seq 1-7, 8-14, 15-21 (seq n holds r(n-1)); a run breaks at a row of the
    // other stream, at an unselected row (r5 = seq 6, r12 = seq 13), at a pending row (seq 21) and at a batch
    // boundary; single rows have no range
    expect(ranges.map((r) => [r.first_seq, r.last_seq])).toEqual([[1, 3], [9, 10], [11, 12], [15, 17], [19, 20]]);
    for (const { first_seq, last_seq } of ranges) {
      const covered = [...rowsByseq.values()].filter((r) => r.seq >= first_seq && r.seq <= last_seq);
      expect(covered.length).toBe(last_seq - first_seq + 1);
      expect(new Set(covered.map((r) => r.stream)).size).toBe(1);
      expect(covered.map((r) => r.id)).not.toContain('r5');
      expect(covered.map((r) => r.id)).not.toContain('r12');
    }
    // every re-sent row now has the drain's marker time (effective), the two old rows kept theirs
    const recent = buffer.outbox.counts(Date.now() - 600_000);
    expect(recent).toMatchObject({ syncedRows: pattern.length + 1, syncedBeforeMs: 2, pendingRows: 0 });
    // they are in the history now: a drain re-sends nothing; after the next fork it picks them again, by the ranges' markers
    expect((await buffer.drain({})).resent).toBe(0);
    await forkEpoch(cluster, 'pg-0', 'typed', '0/1');
    expect((await buffer.drain({})).resent).toBe(pattern.length - 1);
    await buffer.close();
  });

  it('a writer on an older epoch than the buffer knows (a zombie primary) is refused before anything is sent: sync, drain and prune fail with exit 1, marking nothing', async () => {
    const buffer = path.join(dir, 'zombie.db');
    const config = writeConfig(path.join(dir, 'zombie.json'), { writerUrl: agentUrl('pg-0', 'zombie'), batchSize: 10, streams: { events: EVENTS_STREAM } });
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('synced', 40)))).code).toBe(0);
    expect(JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout)).toMatchObject({ sent: 40, marker: { timelineId: 1 } });
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('pending', 10)))).code).toBe(0);
    // Rows the writer lost: any re-send would bring them back.
    await sql(cluster, 'pg-0', "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 10)", 'zombie');
    const snapshot = () => {
      const db = new Database(buffer, { readonly: true });
      try {
        return ['outbox ORDER BY seq', 'outbox_resync ORDER BY first_seq'].map((t) => db.prepare(`SELECT * FROM ${t}`).all());
      } finally {
        db.close();
      }
    };
    // The buffer learned (from the promoted primary, elsewhere) a newer epoch continuing pg-0's up to 0/1.
    const outbox = Outbox.open(buffer);
    const [writerEpoch] = outbox.lineage();
    const promoted = { ...writerEpoch!, id: randomUUID(), parentId: writerEpoch!.id, generation: 2, forkLsn: '0/1', timelineId: 2, nodeId: 'pg-9' };
    outbox.mergeLineage([promoted]);
    outbox.close();
    const before = snapshot();
    expect(before[0]).toHaveLength(50);

    const refusal = `is on epoch ${writerEpoch!.id.slice(0, 8)} (generation 1, pg-0), but this buffer knows the newer epoch ${promoted.id.slice(0, 8)} (generation 2, pg-9): it is a stale or zombie primary`;
    for (const command of [['sync-once', '--json'], ['drain', '--json'], ['drain', '--json', '--epoch', promoted.id], ['prune', '--json']]) {
      const run = await runAgent([...command, '--buffer', buffer, '--config', config]);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(refusal);
      expect(snapshot()).toEqual(before);
    }
    const inPg = await idsIn(cluster, 'pg-0', 'zombie');
    expect(inPg.rows).toBe(30);
    expect([...inPg.ids].some((id) => id.startsWith('pending-'))).toBe(false);
    const status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status).toMatchObject({ pendingRows: 10, syncedRows: 40, lineage: { epoch: promoted.id, generation: 2, epochsKnown: 2, resendDue: true, outsideHistoryRows: 40 } });
    expect(status.lineage.writerRefusals).toBe(4);
    expect(status.lastSyncError).toContain(refusal);
  });

  it('a batch committed while its writer was superseded (a zombie finishing a statement in flight) is not marked, and goes out again to the new writer', async () => {
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'raced.db'), config: parseConfig({ writerUrl: agentUrl('pg-0', 'zombie'), streams: { events: EVENTS_STREAM } }) });
    buffer.appendMany('events', rows('raced', 5));
    const blocker = new pg.Client(cluster.clientConfig('pg-0', 'zombie'));
    await blocker.connect();
    try {
      await blocker.query('BEGIN; LOCK TABLE events IN EXCLUSIVE MODE');
      const pass = buffer.syncOnce();
      // the statement is on the writer, waiting for the lock (asked outside the blocker's transaction, whose view of
      // pg_stat_activity is the one it took first)
      for (let waited = 0; ; waited += 20) {
        const waiting = await sql(cluster, 'pg-0', "SELECT 1 FROM pg_stat_activity WHERE application_name = 'rds-failover-agent' AND wait_event_type = 'Lock'", 'zombie');
        if (waiting.length > 0) break;
        if (waited > 20_000) throw new Error('the sync statement never waited for the lock');
        await sleep(20);
      }
      // meanwhile the buffer learns (from a drain, another process) a newer epoch continuing the writer's
      const [head] = buffer.outbox.lineage().sort((a, b) => b.generation - a.generation);
      const newer = { ...head!, id: randomUUID(), parentId: head!.id, generation: head!.generation + 1, forkLsn: '0/1', nodeId: 'pg-0', executionId: 'test' };
      buffer.outbox.mergeLineage([newer]);
      await blocker.query('COMMIT');
      expect(await pass).toMatchObject({ sent: 0, outsideHistory: 5 });
      expect(buffer.outbox.rows().filter((r) => r.id.startsWith('raced-')).map((r) => r.state)).toEqual(Array(5).fill('pending'));
      expect(buffer.status().lineage).toMatchObject({ supersededCommits: 5, epoch: newer.id });
      // the writer is not on the newer epoch: refused; once it is (the epoch recorded there), the rows go out again
      await expect(buffer.syncOnce()).rejects.toThrow(/it is a stale or zombie primary/);
      await insertEpoch(blocker, newer);
      expect(await buffer.syncOnce()).toMatchObject({ sent: 5, inserted: 0, outsideHistory: 0 });
      expect(buffer.outbox.rows().filter((r) => r.id.startsWith('raced-')).every((r) => r.state === 'synced' && r.markerEpoch === newer.id)).toBe(true);
    } finally {
      await blocker.end();
      await buffer.close();
    }
  });

  it('a drain for an epoch the writer is not on (the writer record still names the old primary) fails with exit 1, sending nothing', async () => {
    const buffer = path.join(dir, 'not-there.db');
    const config = writeConfig(path.join(dir, 'not-there.json'), { writerUrl: agentUrl('pg-0', 'zombie'), streams: { events: EVENTS_STREAM } });
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('nt', 5)))).code).toBe(0);
    const elsewhere = randomUUID();
    const run = await runAgent(['drain', '--json', '--epoch', elsewhere, '--buffer', buffer, '--config', config]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`is not on epoch ${elsewhere} or a newer one descending from it: it is not the promoted primary`);
    expect([...(await idsIn(cluster, 'pg-0', 'zombie')).ids].some((id) => id.startsWith('nt-'))).toBe(false);
    const bad = await runAgent(['drain', '--epoch', 'not-a-uuid', '--buffer', buffer, '--config', config]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--epoch: expected the epoch's UUID");
  });

  it('a read-only writer (a standby, a fenced primary) is a sync failure: rows stay pending, status shows why', async () => {
    const buffer = path.join(dir, 'readonly.db');
    const config = writeConfig(path.join(dir, 'readonly.json'), { writerUrl: agentUrl('pg-0', 'sync'), streams: { events: EVENTS_STREAM } });
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('ro', 5)))).code).toBe(0);

    const onStandby = await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config, '--writer', agentUrl('pg-1', 'sync')]);
    expect(onStandby.code).toBe(1);
    expect(onStandby.stderr).toContain('the writer is a standby (in recovery): it accepts no writes');
    let status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status).toMatchObject({ pendingRows: 5, syncedRows: 0, consecutiveFailures: 1 });
    expect(status.lastSyncError).toBe('the writer is a standby (in recovery): it accepts no writes');

    // a fenced old primary: default_transaction_read_only for new sessions
    await sql(cluster, 'pg-0', 'ALTER DATABASE sync SET default_transaction_read_only = on');
    try {
      const fenced = await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config]);
      expect(fenced.code).toBe(1);
      expect(fenced.stderr).toContain('read-only transaction');
      status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
      expect(status).toMatchObject({ pendingRows: 5, consecutiveFailures: 2 });
      expect((await sql(cluster, 'pg-0', "SELECT id FROM events WHERE id LIKE 'ro-%'", 'sync')).length).toBe(0);
    } finally {
      await sql(cluster, 'pg-0', 'ALTER DATABASE sync RESET default_transaction_read_only');
    }
    const ok = JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout);
    expect(ok).toMatchObject({ sent: 5, inserted: 5, pendingRows: 0 });
    status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status.consecutiveFailures).toBe(0);
  });

  it('a row PostgreSQL refuses is set aside alone as rejected; the rest of its batch is synced', async () => {
    const buffer = path.join(dir, 'poison.db');
    const config = writeConfig(path.join(dir, 'poison.json'), { writerUrl: agentUrl('pg-0', 'sync'), streams: { events: EVENTS_STREAM } });
    const input = rows('poison', 40);
    input[17] = { id: 'poison-17', body: 'violates CHECK (n >= 0)', n: -1 };
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(input))).code).toBe(0);
    const result = JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout);
    expect(result).toMatchObject({ sent: 39, inserted: 39, rejected: 1, pendingRows: 0 });
    const outbox = Outbox.open(buffer);
    const rejected = outbox.rows().filter((r) => r.state === 'rejected');
    outbox.close();
    expect(rejected.map((r) => r.id)).toEqual(['poison-17']);
    expect(rejected[0]!.error).toContain('violates check constraint "events_n_check" (23514)');
    expect((await sql(cluster, 'pg-0', "SELECT count(*)::int AS n FROM events WHERE id LIKE 'poison-%'", 'sync'))[0]).toEqual({ n: 39 });
    const status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status.rejectedRows).toBe(1);
  });

  it('rows another program inserts with plain SQL (docs/buffer.md contract) are synced; malformed ones are set aside', async () => {
    const buffer = path.join(dir, 'foreign.db');
    const config = writeConfig(path.join(dir, 'foreign.json'), { writerUrl: agentUrl('pg-0', 'sync'), streams: { events: EVENTS_STREAM } });
    // A non-Node writer: its own connection, the documented pragmas and statement, the documented schema.
    const db = new Database(buffer, { timeout: 5000 });
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA_SQL);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
    const insert = db.prepare('INSERT INTO outbox (stream, id, payload) VALUES (?, ?, ?) ON CONFLICT (stream, id) DO NOTHING');
    insert.run('events', 'py-1', '{"id": "py-1", "body": "from python", "n": 12345678901234567}');
    insert.run('events', 'py-1', '{"id": "py-1", "body": "from python", "n": 12345678901234567}'); // a retried insert
    insert.run('events', 'py-2', '[1, 2]');
    insert.run('events', 'py-3', '{"id": "py-3", "colour": "red"}');
    insert.run('later', 'py-4', '{"id": "py-4"}'); // a stream this agent does not know (yet)
    db.close();

    const result = JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout);
    expect(result).toMatchObject({ sent: 1, inserted: 1, rejected: 2, pendingRows: 1 });
    expect(await sql(cluster, 'pg-0', "SELECT id, body, n::text FROM events WHERE id LIKE 'py-%'", 'sync')).toEqual([{ id: 'py-1', body: 'from python', n: '12345678901234567' }]);
    const outbox = Outbox.open(buffer);
    expect(outbox.rows().map((r) => [r.id, r.state, r.error])).toEqual([
      ['py-1', 'synced', null],
      ['py-2', 'rejected', "row must be a JSON object with the stream's columns, got an array"],
      ['py-3', 'rejected', "field 'colour' is not a column of stream 'events' (columns: id, body, n)"],
      ['py-4', 'pending', null],
    ]);
    outbox.close();
  });

  it('the daemon follows the writer file, re-reads its config on SIGHUP and finishes on SIGTERM with exit 0', async () => {
    const buffer = path.join(dir, 'daemon.db');
    const writerFile = path.join(dir, 'writer.url');
    const replaceWriterFile = (url: string) => {
      writeFileSync(`${writerFile}.tmp`, `${url}\n`);
      renameSync(`${writerFile}.tmp`, writerFile);
    };
    replaceWriterFile(agentUrl('pg-0', 'sync'));
    const configFile = path.join(dir, 'daemon.json');
    writeConfig(configFile, { writerFile, pollIntervalMs: 50, streams: { events: EVENTS_STREAM } });
    const daemon = spawnAgent(['run', '--buffer', buffer, '--config', configFile]);
    const done = collect(daemon);
    await waitForStderr(daemon, 'agent started');
    const appendAndWait = async (prefix: string, database: string) => {
      expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', configFile], ndjson(rows(prefix, 20)))).code).toBe(0);
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const [{ n }] = await sql<{ n: number }>(cluster, 'pg-0', `SELECT count(*)::int AS n FROM events WHERE id LIKE '${prefix}-%'`, database);
        if (n === 20) return;
        await sleep(50);
      }
      throw new Error(`rows ${prefix}-* did not reach ${database}`);
    };
    await appendAndWait('file-a', 'sync');
    replaceWriterFile(agentUrl('pg-0', 'sync_b'));
    await appendAndWait('file-b', 'sync_b');
    expect((await sql(cluster, 'pg-0', "SELECT count(*)::int AS n FROM events WHERE id LIKE 'file-b-%'", 'sync'))[0]).toEqual({ n: 0 });

    writeConfig(configFile, { writerUrl: agentUrl('pg-0', 'sync'), pollIntervalMs: 50, streams: { events: EVENTS_STREAM } });
    daemon.kill('SIGHUP');
    await waitForStderr(daemon, 'reloaded config and writer (SIGHUP)');
    await appendAndWait('hup', 'sync');

    daemon.kill('SIGTERM');
    const exit = await done;
    expect(exit.code).toBe(0);
    expect(exit.stderr).toContain('"message":"agent stopped","pending":0');
  });

  it('a replaced writer file ends a backoff wait at once (follow watch); a DNS-like writer (follow reconnect) waits it out', async () => {
    const nowhere = 'postgres://agent:agent-pw@127.0.0.1:1/sync'; // refused: every attempt fails at once
    const backoff = { initialMs: 600_000, maxMs: 600_000 }; // a failed attempt waits 5-10 minutes
    const started = async (follow: 'watch' | 'reconnect') => {
      const writerFile = path.join(dir, `backoff-${follow}.url`);
      writeFileSync(writerFile, `${nowhere}\n`);
      const config = parseConfig({ writerFile, writerFileFollow: follow, pollIntervalMs: 20, backoff, streams: { events: EVENTS_STREAM } });
      const buffer = WriteBuffer.open({ bufferPath: path.join(dir, `backoff-${follow}.db`), config });
      const daemon = buffer.startDaemon();
      const ids = rows(`backoff-${follow}`, 5).map((r) => buffer.append('events', r));
      const deadline = Date.now() + 10_000;
      while (buffer.status().consecutiveFailures < 1 && Date.now() < deadline) await sleep(20);
      expect(buffer.status()).toMatchObject({ consecutiveFailures: 1, pendingRows: 5 }); // now in its backoff wait
      writeFileSync(`${writerFile}.tmp`, `${agentUrl('pg-0', 'sync')}\n`);
      renameSync(`${writerFile}.tmp`, writerFile);
      return { buffer, daemon, ids };
    };
    const sent = async (ids: string[]) => {
      const inPg = await idsIn(cluster, 'pg-0', 'sync');
      return ids.filter((id) => inPg.ids.has(id)).length;
    };

    const watch = await started('watch');
    const deadline = Date.now() + 15_000;
    while ((await sent(watch.ids)) < 5 && Date.now() < deadline) await sleep(50);
    expect(await sent(watch.ids)).toBe(5);
    expect(watch.buffer.status()).toMatchObject({ pendingRows: 0, consecutiveFailures: 0 });
    await watch.daemon.stop();
    await watch.buffer.close();

    const dns = await started('reconnect');
    await sleep(1000);
    expect(await sent(dns.ids)).toBe(0);
    expect(dns.buffer.status()).toMatchObject({ pendingRows: 5, consecutiveFailures: 1 });
    dns.daemon.retryNow(); // what the SIGHUP a drain sends does
    const hupDeadline = Date.now() + 15_000;
    while ((await sent(dns.ids)) < 5 && Date.now() < hupDeadline) await sleep(50);
    expect(await sent(dns.ids)).toBe(5);
    await dns.daemon.stop();
    await dns.buffer.close();
  });

  it('outage: with the primary stopped appends keep succeeding; after it returns every row arrives exactly once', async () => {
    const writerFile = path.join(dir, 'outage.url');
    writeFileSync(writerFile, `${cluster.connectionString('pg-0', 'outage')}\n`);
    const config = parseConfig({ writerFile, pollIntervalMs: 20, backoff: { initialMs: 50, maxMs: 400 }, streams: { events: EVENTS_STREAM } });
    const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'outage.db'), config });
    const daemon = buffer.startDaemon();
    const acknowledged: string[] = [];
    let appending = true;
    const appender = (async () => {
      for (let i = 0; appending; i++) {
        acknowledged.push(buffer.append('events', { id: `outage-${i}`, body: 'x', n: i }));
        await sleep(2);
      }
    })();
    await sleep(300);
    await cluster.stopNode('pg-0', 'fast');
    const ackedAtStop = acknowledged.length;
    await sleep(2000);
    const during = buffer.status();
    expect(acknowledged.length - ackedAtStop).toBeGreaterThan(100); // appends never stopped
    expect(during.pendingRows).toBeGreaterThan(100);
    expect(during.consecutiveFailures).toBeGreaterThanOrEqual(2);
    expect(during.lastSyncError).toMatch(/ECONNREFUSED|terminating connection|Connection terminated|the database system is shutting down/);
    await cluster.startNode('pg-0');
    await sleep(500);
    appending = false;
    await appender;
    const deadline = Date.now() + 20_000;
    while (buffer.status().pendingRows > 0 && Date.now() < deadline) await sleep(50);
    await daemon.stop();
    expect(buffer.status()).toMatchObject({ pendingRows: 0, consecutiveFailures: 0 });
    await buffer.close();
    const inPg = await idsIn(cluster, 'pg-0', 'outage');
    expect(inPg.rows).toBe(acknowledged.length);
    expect(inPg.ids).toEqual(new Set(acknowledged));
  });

  it('a drain after a fork re-sends the rows outside the new history; prune waits for retention and for every replica', async () => {
    const buffer = path.join(dir, 'prune.db');
    const base = { writerUrl: agentUrl('pg-0', 'prune'), streams: { events: EVENTS_STREAM } };
    const shortRetention = { retention: { seconds: 1, minReplicas: 1 } };
    const config = writeConfig(path.join(dir, 'prune.json'), { ...base, ...shortRetention });
    expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('old', 30)))).code).toBe(0);
    expect(JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout).sent).toBe(30);

    // lose 10 rows on the writer and play a failover that kept none of them: every synced row is re-sent, the lost ones come back
    await sql(cluster, 'pg-0', "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT 10)", 'prune');
    const epoch = await forkEpoch(cluster, 'pg-0', 'prune');
    const drained = await runAgent(['drain', '--json', '--epoch', epoch.id, '--buffer', buffer, '--config', config]);
    expect(drained.code).toBe(0);
    expect(JSON.parse(drained.stdout)).toEqual({ epochId: epoch.id, examined: 30, resent: 30, inserted: 10, alreadyPresent: 20, remainingPending: 0, rejected: 0 });
    expect((await idsIn(cluster, 'pg-0', 'prune')).rows).toBe(30);

    // pg-1 holds replay: rows synced now stay above its replay LSN and must be kept
    await waitForReportedReplay(cluster, 'pg-0', 1);
    await cluster.pauseReplay('pg-1');
    try {
      expect((await runAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config], ndjson(rows('new', 5)))).code).toBe(0);
      expect(JSON.parse((await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config])).stdout).sent).toBe(5);

      await sleep(1100); // the drained rows are now past the 1 s retention
      const strict = writeConfig(path.join(dir, 'prune-strict.json'), { ...base, ...shortRetention, retention: { seconds: 1, minReplicas: 2 } });
      const skipped = JSON.parse((await runAgent(['prune', '--json', '--buffer', buffer, '--config', strict])).stdout);
      expect(skipped).toMatchObject({ pruned: 0, replicas: 1, skippedBecause: 'the writer shows 1 replica(s) in pg_stat_replication, retention.minReplicas is 2' });

      const keepAll = writeConfig(path.join(dir, 'prune-keep.json'), { ...base, retention: { seconds: 3600, minReplicas: 1 } });
      expect(JSON.parse((await runAgent(['prune', '--json', '--buffer', buffer, '--config', keepAll])).stdout)).toMatchObject({ pruned: 0, skippedBecause: null });

      const pruned = JSON.parse((await runAgent(['prune', '--json', '--buffer', buffer, '--config', config])).stdout);
      expect(pruned).toMatchObject({ pruned: 30, writerTimeline: 1, replicas: 1, skippedBecause: null });
      const outbox = Outbox.open(buffer);
      expect(outbox.rows().map((r) => r.id)).toEqual(rows('new', 5).map((r) => r.id));
      outbox.close();
    } finally {
      await cluster.resumeReplay('pg-1');
    }
    await waitForReportedReplay(cluster, 'pg-0', 1);
    await sleep(1100);
    const rest = JSON.parse((await runAgent(['prune', '--json', '--buffer', buffer, '--config', config])).stdout);
    expect(rest).toMatchObject({ pruned: 5 });
    const status = JSON.parse((await runAgent(['status', '--json', '--buffer', buffer])).stdout);
    expect(status).toMatchObject({ pendingRows: 0, syncedRows: 0 });
    expect(status.lastPrune).toMatchObject({ pruned: 5, skippedBecause: null });
  });
});
