/**
 * `npm run bench:buffer`: the worker write buffer measured side by side in one run, on one disk.
 *  1. durable append latency (WriteBuffer.append, WAL + synchronous=FULL) next to a raw write+fdatasync loop
 *     on the same filesystem (the physical limit), interleaved in rounds so machine load hits both alike;
 *  2. append throughput with 1 and with 8 concurrent appender processes on one buffer file;
 *  3. drain of 100k rows into PostgreSQL next to plain COPY of 100k rows into the same table (interleaved pairs) and next to
 *     one autocommit INSERT per row (the naive approach), and next to COPY of the buffer's rows.
 * Prints a table for people and a JSON line for machines; exits 1 if a target is missed.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseConfig, type AgentConfig } from '../src/agent/config.js';
import { copyFrom, copyTextField } from '../src/agent/pg-copy.js';
import { WriteBuffer } from '../src/agent/write-buffer.js';
import { renderTable } from '../src/core/format-table.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { recordChildEpoch } from '../src/pg/lineage.js';

const ROUNDS = 40;
const SAMPLES_PER_ROUND = 50;
const THROUGHPUT_MS = 3000;
const DRAIN_ROWS = 100_000;
const NAIVE_ROWS = 10_000;
const REPEATS = 3;
const PAIRS = 7;

const STREAM = { table: 'bench_events', key: ['id'], columns: ['id', 'body', 'n'] };
const DDL = 'CREATE TABLE bench_events (id text PRIMARY KEY, body text NOT NULL, n bigint NOT NULL)';
const body = 'payload '.repeat(10); // ~100-byte rows

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function stats(samples: number[]): { p50: number; p99: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
}

function benchConfig(extra: Record<string, unknown> = {}): AgentConfig {
  return parseConfig({ streams: { events: STREAM }, ...extra });
}

// ---------------------------------------------------------------- 1. latency

function rawFdatasync(file: string, count: number, into: number[]): void {
  const fd = openSync(file, 'a');
  const page = Buffer.alloc(4096, 0x61);
  try {
    for (let i = 0; i < count; i++) {
      const t = process.hrtime.bigint();
      writeSync(fd, page);
      fdatasyncSync(fd);
      into.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
  } finally {
    closeSync(fd);
  }
}

function durableAppends(buffer: WriteBuffer, prefix: string, count: number, into: number[]): void {
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    buffer.append('events', { id: `${prefix}-${i}`, body, n: i });
    into.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}

function measureLatency(dir: string): { raw: ReturnType<typeof stats>; append: ReturnType<typeof stats> } {
  const raw: number[] = [];
  const append: number[] = [];
  const buffer = WriteBuffer.open({ bufferPath: path.join(dir, 'latency.db'), config: benchConfig() });
  const rawFile = path.join(dir, 'raw.log');
  rawFdatasync(rawFile, 50, []); // warm-up
  durableAppends(buffer, 'warm', 50, []);
  for (let round = 0; round < ROUNDS; round++) {
    rawFdatasync(rawFile, SAMPLES_PER_ROUND, raw);
    durableAppends(buffer, `r${round}`, SAMPLES_PER_ROUND, append);
  }
  void buffer.close();
  return { raw: stats(raw), append: stats(append) };
}

// ---------------------------------------------------------------- 2. throughput (child processes)

async function appenderMain(bufferPath: string, startAt: number, durationMs: number, worker: string): Promise<void> {
  const buffer = WriteBuffer.open({ bufferPath, config: benchConfig() });
  while (Date.now() < startAt) await new Promise((r) => setTimeout(r, 1));
  const latencies: number[] = [];
  const end = startAt + durationMs;
  let n = 0;
  while (Date.now() < end) {
    const t = process.hrtime.bigint();
    buffer.append('events', { id: `${worker}-${n}`, body, n });
    latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
    n += 1;
  }
  await buffer.close();
  process.stdout.write(`${JSON.stringify({ count: n, ...stats(latencies) })}\n`);
}

async function measureThroughput(dir: string, processes: number): Promise<{ rowsPerSecond: number; p99: number }> {
  const bufferPath = path.join(dir, `throughput-${processes}.db`);
  WriteBuffer.open({ bufferPath, config: benchConfig() }).outbox.close(); // create the schema once
  const startAt = Date.now() + 2500; // every child loaded before the clock starts
  const results = await Promise.all(
    Array.from({ length: processes }, (_, i) => {
      const child = spawn(process.execPath, ['--import', 'tsx', __filename, 'appender', bufferPath, String(startAt), String(THROUGHPUT_MS), `w${i}`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      return new Promise<{ count: number; p99: number }>((resolve, reject) =>
        child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`appender ${i} exited ${code}`)))),
      );
    }),
  );
  const total = results.reduce((sum, r) => sum + r.count, 0);
  return { rowsPerSecond: total / (THROUGHPUT_MS / 1000), p99: Math.max(...results.map((r) => r.p99)) };
}

// ---------------------------------------------------------------- 3. PostgreSQL

/**
 * The drain of 100k rows next to plain COPY of 100k rows into the same table, in PAIRS interleaved pairs
 * (the order alternating), so that load on this shared machine hits both alike; the ratio is the median
 * of the pairs' ratios.
 */
async function measureDrainAgainstCopy(cluster: LocalCluster, client: pg.Client, dir: string): Promise<{ drain: number; copy: number; ratio: number }> {
  const bufferPath = path.join(dir, 'drain.db');
  const config = benchConfig({ writerUrl: cluster.connectionString('pg-0') });
  const buffer = WriteBuffer.open({ bufferPath, config });
  for (let i = 0; i < DRAIN_ROWS; i += 10_000) {
    buffer.appendMany('events', Array.from({ length: 10_000 }, (_, k) => ({ id: `d-${i + k}`, body, n: i + k })));
  }
  await client.query('TRUNCATE bench_events');
  await buffer.syncOnce();
  const text = Array.from({ length: DRAIN_ROWS }, (_, i) => `${copyTextField(`c-${i}`)}\t${copyTextField(body)}\t${i}`).join('\n') + '\n';
  const timed = async (run: () => Promise<number>): Promise<number> => {
    await client.query('TRUNCATE bench_events');
    await client.query('CHECKPOINT');
    const t = performance.now();
    const rows = await run();
    const seconds = (performance.now() - t) / 1000;
    if (rows !== DRAIN_ROWS) throw new Error(`loaded ${rows} of ${DRAIN_ROWS} rows`);
    return DRAIN_ROWS / seconds;
  };
  // The new primary lost every row: before each drain a new epoch keeps none of its parent's history, so the drain
  // re-sends all 100k (the epoch is recorded outside the timing).
  const drain = async () => {
    await keepNothingEpoch(client);
    return timed(async () => (await buffer.drain({})).inserted);
  };
  const copy = () => timed(() => copyFrom(client, 'COPY bench_events (id, body, n) FROM STDIN', text));
  const pairs: { drain: number; copy: number }[] = [];
  for (let r = 0; r < PAIRS; r++) {
    if (r % 2 === 0) {
      const d = await drain();
      pairs.push({ drain: d, copy: await copy() });
    } else {
      const c = await copy();
      pairs.push({ drain: await drain(), copy: c });
    }
  }
  await buffer.close();
  return {
    drain: median(pairs.map((p) => p.drain)),
    copy: median(pairs.map((p) => p.copy)),
    ratio: median(pairs.map((p) => p.drain / p.copy)),
  };
}

/** A failover that kept nothing: a new epoch keeping none of the current one (every marker is outside its history). */
async function keepNothingEpoch(client: pg.Client): Promise<void> {
  await recordChildEpoch(client, { id: randomUUID(), nodeId: 'pg-0', forkLsn: null });
}

/** The same rows taken from the buffer file and loaded with one COPY: what a drain costs without idempotency. */
async function measureCopyFromBuffer(client: pg.Client, bufferPath: string): Promise<number> {
  const rates: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    await client.query('TRUNCATE bench_events');
    await client.query('CHECKPOINT');
    const t = performance.now();
    const db = new Database(bufferPath, { readonly: true });
    const payloads = db.prepare('SELECT payload FROM outbox ORDER BY seq').pluck().all() as string[];
    db.close();
    const text = payloads.map((p) => {
      const row = JSON.parse(p) as { id: string; body: string; n: number };
      return `${copyTextField(row.id)}\t${copyTextField(row.body)}\t${row.n}`;
    });
    const rows = await copyFrom(client, 'COPY bench_events (id, body, n) FROM STDIN', text.join('\n') + '\n');
    if (rows !== DRAIN_ROWS) throw new Error(`COPY loaded ${rows} rows`);
    rates.push(DRAIN_ROWS / ((performance.now() - t) / 1000));
  }
  return median(rates);
}

async function measureOneInsertPerRow(client: pg.Client): Promise<number> {
  await client.query('TRUNCATE bench_events');
  await client.query('CHECKPOINT');
  const t = performance.now();
  for (let i = 0; i < NAIVE_ROWS; i++) {
    await client.query('INSERT INTO bench_events (id, body, n) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING', [`s-${i}`, body, i]);
  }
  return NAIVE_ROWS / ((performance.now() - t) / 1000);
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'buffer-bench-'));
  const round = (v: number, digits = 3) => Number(v.toFixed(digits));
  try {
    console.log(`buffer files and the fdatasync loop in ${dir} (same filesystem); ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(2)}`);
    console.log(`1/3 latency: ${ROUNDS} interleaved rounds of ${SAMPLES_PER_ROUND} raw fdatasync + ${SAMPLES_PER_ROUND} durable appends`);
    const latency = measureLatency(dir);
    console.log(`2/3 throughput: 1 then 8 appender processes, ${THROUGHPUT_MS} ms each`);
    const one = await measureThroughput(dir, 1);
    const eight = await measureThroughput(dir, 8);
    console.log(`3/3 PostgreSQL: drain of ${DRAIN_ROWS} rows and plain COPY (${PAIRS} interleaved pairs), COPY of the buffer rows (median of ${REPEATS}), one INSERT per row (${NAIVE_ROWS} rows)`);
    const cluster = await LocalCluster.start({ replicas: 0 });
    let pgFigures: { drain: number; copy: number; ratio: number; bufferCopy: number; naive: number };
    try {
      const client = new pg.Client(cluster.clientConfig('pg-0'));
      await client.connect();
      await client.query(DDL);
      const { drain, copy, ratio } = await measureDrainAgainstCopy(cluster, client, dir);
      const bufferCopy = await measureCopyFromBuffer(client, path.join(dir, 'drain.db'));
      const naive = await measureOneInsertPerRow(client);
      await client.end();
      pgFigures = { drain, copy, ratio, bufferCopy, naive };
    } finally {
      await cluster.stop();
    }

    const appendRatio = latency.append.p99 / latency.raw.p99;
    const drainVsCopy = pgFigures.ratio;
    const drainVsNaive = pgFigures.drain / pgFigures.naive;
    const rows = [
      { what: 'raw write(4 KiB)+fdatasync, ms', a: round(latency.raw.p50), b: round(latency.raw.p99), note: `${latency.raw.n} samples` },
      { what: 'durable append (WriteBuffer.append), ms', a: round(latency.append.p50), b: round(latency.append.p99), note: `p99 ratio ${appendRatio.toFixed(2)}x raw (target <= 2x)` },
      { what: 'append throughput, 1 process, rows/s', a: Math.round(one.rowsPerSecond), b: round(one.p99), note: 'p99 ms' },
      { what: 'append throughput, 8 processes, rows/s', a: Math.round(eight.rowsPerSecond), b: round(eight.p99), note: `${(eight.rowsPerSecond / one.rowsPerSecond).toFixed(2)}x of 1 process; worst p99 ms` },
      { what: 'drain 100k rows (buffer -> writer, idempotent), rows/s', a: Math.round(pgFigures.drain), b: null, note: `${drainVsCopy.toFixed(2)}x COPY (median of pair ratios, >= 0.6), ${drainVsNaive.toFixed(1)}x one-per-row (>= 20)` },
      { what: 'plain COPY 100k rows into the same table, rows/s', a: Math.round(pgFigures.copy), b: null, note: 'one statement, COPY text prepared in memory beforehand' },
      { what: 'COPY of the buffer rows (read SQLite + format + COPY), rows/s', a: Math.round(pgFigures.bufferCopy), b: null, note: `not idempotent, marks nothing; drain is ${(pgFigures.drain / pgFigures.bufferCopy).toFixed(2)}x of it` },
      { what: `one autocommit INSERT per row (${NAIVE_ROWS} rows), rows/s`, a: Math.round(pgFigures.naive), b: null, note: 'the naive approach' },
    ];
    console.log(
      `\n${renderTable(
        [
          { header: 'measurement', value: (r: (typeof rows)[number]) => r.what },
          { header: 'p50 / rate', value: (r) => r.a, align: 'right' },
          { header: 'p99', value: (r) => r.b, align: 'right' },
          { header: 'note', value: (r) => r.note },
        ],
        rows,
      )}\n`,
    );
    const targets = { appendP99Within2xRaw: appendRatio <= 2, drainAtLeast06xCopy: drainVsCopy >= 0.6, drainAtLeast20xOnePerRow: drainVsNaive >= 20 };
    console.log(
      JSON.stringify({
        rawFdatasyncMs: { p50: round(latency.raw.p50), p99: round(latency.raw.p99) },
        appendMs: { p50: round(latency.append.p50), p99: round(latency.append.p99) },
        appendP99Ratio: round(appendRatio, 2),
        appendRowsPerSecond: { oneProcess: Math.round(one.rowsPerSecond), eightProcesses: Math.round(eight.rowsPerSecond) },
        drainRowsPerSecond: Math.round(pgFigures.drain),
        plainCopyRowsPerSecond: Math.round(pgFigures.copy),
        copyFromBufferRowsPerSecond: Math.round(pgFigures.bufferCopy),
        oneInsertPerRowRowsPerSecond: Math.round(pgFigures.naive),
        drainVsCopy: round(drainVsCopy, 2),
        drainVsOneInsertPerRow: round(drainVsNaive, 1),
        targets,
      }),
    );
    if (!Object.values(targets).every(Boolean)) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'appender') {
  const [bufferPath, startAt, durationMs, worker] = process.argv.slice(3);
  appenderMain(bufferPath!, Number(startAt), Number(durationMs), worker!).catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
} else {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
