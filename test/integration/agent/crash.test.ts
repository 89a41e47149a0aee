import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/agent/config.js';
import { Outbox } from '../../../src/agent/outbox.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { collect, EVENTS_DDL, EVENTS_STREAM, forkEpoch, idsIn, runAgent, sleep, spawnAgent, sql, waitForStderr, writeConfig } from './agent-fixture.js';

/** kill -9 at random points of append, sync and drain: no acknowledged row is ever lost or doubled. */
let cluster: LocalCluster;
let dir: string;
let buffer: string;
let config: string;
const DB = 'crash';

beforeAll(async () => {
  cluster = await LocalCluster.start({ replicas: 0 });
  await cluster.createDatabase(DB);
  await sql(cluster, 'pg-0', EVENTS_DDL, DB);
  dir = mkdtempSync(path.join(os.tmpdir(), 'agent-crash-'));
  buffer = path.join(dir, 'crash.db');
  config = writeConfig(path.join(dir, 'crash.json'), { writerUrl: cluster.connectionString('pg-0', DB), batchSize: 100, streams: { events: EVENTS_STREAM } });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function bufferIds(): { all: Set<string>; synced: Set<string>; pending: number } {
  const outbox = Outbox.open(buffer);
  try {
    const rows = outbox.rows();
    return { all: new Set(rows.map((r) => r.id)), synced: new Set(rows.filter((r) => r.state === 'synced').map((r) => r.id)), pending: outbox.pendingCount() };
  } finally {
    outbox.close();
  }
}

const randomMs = (max: number) => Math.floor(Math.random() * max);

/** Ids the buffer has marked synced on `epochId`. */
function markedOn(epochId: string): Set<string> {
  const outbox = Outbox.open(buffer);
  try {
    return new Set(outbox.rows().filter((r) => r.state === 'synced' && r.markerEpoch === epochId).map((r) => r.id));
  } finally {
    outbox.close();
  }
}

describe('crash safety (SIGKILL)', () => {
  const acknowledged = new Set<string>();

  it('an appending process killed at 20 random points: every id it printed is in the buffer after restart', async () => {
    for (let trial = 0; trial < 20; trial++) {
      const child = spawnAgent(['append', '--stream', 'events', '--buffer', buffer, '--config', config]);
      let stdout = '';
      let firstAck: () => void;
      const acked = new Promise<void>((resolve) => (firstAck = resolve));
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        stdout += s;
        if (stdout.includes('\n')) firstAck();
      });
      child.stdin!.on('error', () => undefined);
      child.stderr!.resume(); // an unread pipe would keep 'close' from firing
      const closed = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_code, signal) => resolve(signal)));
      // a steady producer: 10 rows per millisecond tick, each write a separate chunk for the agent
      let n = 0;
      const feeder = setInterval(() => {
        const lines = Array.from({ length: 10 }, () => JSON.stringify({ id: `a${trial}-${n}`, body: 'append', n: n++ })).join('\n');
        child.stdin!.write(`${lines}\n`);
      }, 1);
      await acked;
      await sleep(randomMs(250));
      child.kill('SIGKILL');
      const signal = await closed;
      clearInterval(feeder);
      expect(signal).toBe('SIGKILL');
      const printed = stdout.split('\n');
      printed.pop(); // a line cut by the kill is not an acknowledgement
      expect(printed.length).toBeGreaterThan(0);
      const inBuffer = bufferIds().all;
      const lost = printed.filter((id) => !inBuffer.has(id));
      expect(lost).toEqual([]);
      for (const id of printed) acknowledged.add(id);
    }
    const { all } = bufferIds();
    expect(all.size).toBeGreaterThanOrEqual(acknowledged.size);

    const sync = await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config]);
    expect(sync.code).toBe(0);
    const inPg = await idsIn(cluster, 'pg-0', DB);
    expect(inPg.rows).toBe(all.size);
    expect(inPg.ids).toEqual(all);
    for (const id of acknowledged) expect(inPg.ids.has(id)).toBe(true);
  });

  it('a sync killed at 10 random points: rows marked synced are always in PostgreSQL; in the end every row arrives once', async () => {
    const streams = loadConfig(config).streams;
    let killedMidSync = 0;
    for (let trial = 0; trial < 10; trial++) {
      const outbox = Outbox.open(buffer);
      const result = outbox.appendMany('events', streams.events, Array.from({ length: 4000 }, (_, i) => ({ id: `s${trial}-${i}`, body: 'sync', n: i })));
      outbox.close();
      expect(result.ids).toHaveLength(4000);
      const child = spawnAgent(['sync-once', '--json', '--buffer', buffer, '--config', config]);
      const done = collect(child);
      await waitForStderr(child, 'connected to writer');
      await sleep(randomMs(120));
      child.kill('SIGKILL');
      const run = await done;
      if (run.signal === 'SIGKILL' && run.stdout === '') killedMidSync += 1;
      const { synced } = bufferIds();
      const inPg = await idsIn(cluster, 'pg-0', DB);
      const syncedButAbsent = [...synced].filter((id) => !inPg.ids.has(id));
      expect(syncedButAbsent).toEqual([]);
    }
    expect(killedMidSync).toBeGreaterThanOrEqual(5);
    expect(bufferIds().pending).toBeGreaterThan(0);

    const final = await runAgent(['sync-once', '--json', '--buffer', buffer, '--config', config]);
    expect(final.code).toBe(0);
    expect(JSON.parse(final.stdout).pendingRows).toBe(0);
    const { all } = bufferIds();
    const inPg = await idsIn(cluster, 'pg-0', DB);
    expect(inPg.rows).toBe(all.size);
    expect(inPg.ids).toEqual(all);
  });

  it('a drain killed at 10 random points, then run to the end: every row is back in PostgreSQL once', async () => {
    const { all } = bufferIds();
    // The writer lost everything the buffer synced (as a promoted replica that saw none of it): its new epoch keeps
    // none of the old one, so every row is outside the new history.
    await sql(cluster, 'pg-0', 'TRUNCATE events', DB);
    const epoch = await forkEpoch(cluster, 'pg-0', DB);
    const drainArgs = ['drain', '--json', '--epoch', epoch.id, '--buffer', buffer, '--config', config];
    let killedMidDrain = 0;
    for (let trial = 0; trial < 10; trial++) {
      const child = spawnAgent(drainArgs);
      const done = collect(child);
      await waitForStderr(child, 'connected to writer');
      await sleep(randomMs(150));
      child.kill('SIGKILL');
      const run = await done;
      if (run.signal === 'SIGKILL' && run.stdout === '') killedMidDrain += 1;
      const inPg = await idsIn(cluster, 'pg-0', DB);
      expect([...inPg.ids].filter((id) => !all.has(id))).toEqual([]);
      expect(inPg.rows).toBe(inPg.ids.size);
      // a row marked on the new epoch is on the new writer: a killed drain never marks what it did not commit
      const marked = markedOn(epoch.id);
      expect([...marked].filter((id) => !inPg.ids.has(id))).toEqual([]);
    }
    expect(killedMidDrain).toBeGreaterThanOrEqual(8);
    const before = (await idsIn(cluster, 'pg-0', DB)).rows;
    expect(before).toBeLessThan(all.size);
    const alreadyMarked = markedOn(epoch.id).size;

    const final = await runAgent(drainArgs);
    expect(final.code).toBe(0);
    // The killed drains' marked rows are in the new history: not sent again. The rest (some committed, not marked) are.
    expect(JSON.parse(final.stdout)).toEqual({
      epochId: epoch.id,
      examined: all.size,
      resent: all.size - alreadyMarked,
      inserted: all.size - before,
      alreadyPresent: before - alreadyMarked,
      remainingPending: 0,
      rejected: 0,
    });
    const inPg = await idsIn(cluster, 'pg-0', DB);
    expect(inPg.rows).toBe(all.size);
    expect(inPg.ids).toEqual(all);
  });
});
