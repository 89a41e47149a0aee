/**
 * `npm run bench:buffer`: the worker write buffer measured side by side in one run, on one disk.
 *  1. durable append latency (WriteBuffer.append, WAL + synchronous=FULL) next to a raw write+fdatasync loop
 *     on the same filesystem (the physical limit), interleaved in rounds so machine load hits both alike;
 *  2. appends from 1 and from 8 processes on one buffer, through the agent daemon's socket (group commit) and
 *     directly into the file, Node.js and Python, in timed windows interleaved round by round with a raw
 *     write+fdatasync window (the disk's limit at that moment); the daemon syncs to PostgreSQL meanwhile;
 *  3. drain of 100k rows into PostgreSQL next to plain COPY of 100k rows into the same table (interleaved pairs) and next to
 *     one autocommit INSERT per row (the naive approach), and next to COPY of the buffer's rows.
 * Prints a table for people and a JSON line for machines; exits 1 if a target is missed.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { parseConfig, type AgentConfig } from '../src/agent/config.js';
import { copyFrom, copyTextField } from '../src/agent/pg-copy.js';
import { WriteBuffer } from '../src/agent/write-buffer.js';
import { renderTable } from '../src/core/format-table.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { recordChildEpoch } from '../src/pg/lineage.js';
import { AppenderPool, BODY, CLOCK_TICK_US, startDaemon, type WindowResult } from './append-processes.js';

const ROUNDS = 40;
const SAMPLES_PER_ROUND = 50;
const WINDOW_MS = 2000;
const WINDOW_ROUNDS = 4;
const DRAIN_ROWS = 100_000;
const NAIVE_ROWS = 10_000;
const REPEATS = 3;
const PAIRS = 7;

const STREAM = { table: 'bench_events', key: ['id'], columns: ['id', 'body', 'n'] };
const DDL = 'CREATE TABLE bench_events (id text PRIMARY KEY, body text NOT NULL, n bigint NOT NULL)';
const body = BODY;

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

// ---------------------------------------------------------------- 2. appends from several processes

export interface AppendFigures {
  readonly rowsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** The worst single process's p99. */
  readonly worstProcessP99: number;
  /** Share of the machine's CPU time (every CPU) that was busy during these windows, 0..1. */
  readonly machineCpuBusy: number;
  /** Busy CPU time of the whole machine per row appended, µs: appenders, daemon, PostgreSQL, kernel, this bench. */
  readonly machineCpuUsPerRow: number;
}

/** Busy and total CPU time of the machine so far, in clock ticks, from the first line of /proc/stat. */
function machineCpuTicks(): { busy: number; total: number } {
  // cpu  user nice system idle iowait irq softirq steal (guest time is already in user and nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/** One window: every process's appends and the machine's CPU ticks while they ran. */
interface Window {
  readonly results: WindowResult[];
  readonly busyTicks: number;
  readonly totalTicks: number;
}

/** Every window of one kind pooled: rows over the total window time, percentiles over every append. */
function pooled(windows: Window[]): AppendFigures {
  const all = windows.flatMap((w) => w.results);
  const latency = stats(all.flatMap((w) => w.latencies));
  const rows = all.reduce((sum, w) => sum + w.count, 0);
  const busy = windows.reduce((sum, w) => sum + w.busyTicks, 0);
  const total = windows.reduce((sum, w) => sum + w.totalTicks, 0);
  return {
    rowsPerSecond: rows / ((windows.length * WINDOW_MS) / 1000),
    p50: latency.p50,
    p99: latency.p99,
    worstProcessP99: Math.max(...all.map((w) => stats(w.latencies).p99)),
    machineCpuBusy: busy / total,
    machineCpuUsPerRow: (busy * CLOCK_TICK_US) / rows,
  };
}

const KINDS = ['raw', 'one', 'eight', 'oneDirect', 'eightDirect', 'pythonOne', 'pythonEight'] as const;
type Kind = (typeof KINDS)[number];

/**
 * WINDOW_ROUNDS rounds of one window of each kind, the order rotated each round so that load on this shared
 * machine hits every kind alike. The agent daemon runs (and syncs to `writerUrl`) for the whole section.
 */
export async function measureAppendProcesses(dir: string, writerUrl: string): Promise<{ figures: Record<Kind, AppendFigures>; rowsPerCommit: number }> {
  const config = (name: string, extra: Record<string, unknown>) => {
    const file = path.join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ bufferPath: `${name}.db`, streams: { events: STREAM }, ...extra }));
    WriteBuffer.open({ bufferPath: path.join(dir, `${name}.db`), config: benchConfig() }).outbox.close(); // the agent creates the file
    return file;
  };
  const viaDaemon = config('via-daemon', { writerUrl });
  const direct = config('direct', { appendSocket: false });
  const rawFile = path.join(dir, 'raw-windows.log');
  const daemon = await startDaemon(viaDaemon);
  const node = new AppenderPool('node', 8);
  const python = new AppenderPool('python', 8);
  const windows = Object.fromEntries(KINDS.map((k) => [k, [] as Window[]])) as Record<Kind, Window[]>;
  try {
    const run: Record<Kind, (tag: string) => Promise<WindowResult[]>> = {
      raw: async () => (await node.run(1, `fdatasync ${rawFile} ${WINDOW_MS}`)) as WindowResult[],
      one: (tag) => node.window(1, viaDaemon, tag, WINDOW_MS),
      eight: (tag) => node.window(8, viaDaemon, tag, WINDOW_MS),
      oneDirect: (tag) => node.window(1, direct, tag, WINDOW_MS),
      eightDirect: (tag) => node.window(8, direct, tag, WINDOW_MS),
      pythonOne: (tag) => python.window(1, viaDaemon, tag, WINDOW_MS),
      pythonEight: (tag) => python.window(8, viaDaemon, tag, WINDOW_MS),
    };
    for (let round = 0; round < WINDOW_ROUNDS; round++) {
      for (let i = 0; i < KINDS.length; i++) {
        const kind = KINDS[(i + round) % KINDS.length]!;
        const before = machineCpuTicks();
        const results = await run[kind](`r${round}-${kind}`);
        const after = machineCpuTicks();
        windows[kind].push({ results, busyTicks: after.busy - before.busy, totalTicks: after.total - before.total });
      }
    }
  } finally {
    node.close();
    python.close();
  }
  const counters = await daemon.stop();
  const figures = Object.fromEntries(KINDS.map((k) => [k, pooled(windows[k])])) as Record<Kind, AppendFigures>;
  return { figures, rowsPerCommit: counters.rows / counters.commits };
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
  const cluster = await LocalCluster.start({ replicas: 0 });
  try {
    console.log(`buffer files and the fdatasync loops in ${dir} (same filesystem); ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(2)}`);
    const client = new pg.Client(cluster.clientConfig('pg-0'));
    await client.connect();
    await client.query(DDL);
    console.log(`1/3 latency in one process: ${ROUNDS} interleaved rounds of ${SAMPLES_PER_ROUND} raw fdatasync + ${SAMPLES_PER_ROUND} direct appends`);
    const latency = measureLatency(dir);
    console.log(`2/3 appends from 1 and 8 processes: ${WINDOW_ROUNDS} rounds of ${KINDS.length} windows of ${WINDOW_MS} ms (${KINDS.join(', ')})`);
    const { figures: f, rowsPerCommit } = await measureAppendProcesses(dir, cluster.connectionString('pg-0'));
    console.log(`3/3 PostgreSQL: drain of ${DRAIN_ROWS} rows and plain COPY (${PAIRS} interleaved pairs), COPY of the buffer rows (median of ${REPEATS}), one INSERT per row (${NAIVE_ROWS} rows)`);
    const { drain, copy, ratio: drainVsCopy } = await measureDrainAgainstCopy(cluster, client, dir);
    const bufferCopy = await measureCopyFromBuffer(client, path.join(dir, 'drain.db'));
    const naive = await measureOneInsertPerRow(client);
    await client.end();

    const inProcessRatio = latency.append.p99 / latency.raw.p99;
    const raw = f.raw;
    // against the better one-process figure, so that a slower single path cannot flatter the ratio
    const eightVsOne = f.eight.rowsPerSecond / Math.max(f.one.rowsPerSecond, f.oneDirect.rowsPerSecond);
    const drainVsNaive = drain / naive;
    // What 8 processes through the daemon could reach if the CPU were the only limit: all CPUs busy at this cost per row.
    const cpus = os.cpus().length;
    const cpuCeiling = (cpus * 1e6) / f.eight.machineCpuUsPerRow;
    const vsRaw = (v: AppendFigures) => `p99 ${(v.p99 / raw.p99).toFixed(2)}x raw; worst process p99 ${round(v.worstProcessP99, 2)} ms`;
    const rows = [
      { what: 'raw write(4 KiB)+fdatasync in one process, ms', a: round(latency.raw.p50), b: round(latency.raw.p99), note: `${latency.raw.n} samples, interleaved with the next row` },
      { what: 'append in that process (WriteBuffer.append, direct), ms', a: round(latency.append.p50), b: round(latency.append.p99), note: `p99 ${inProcessRatio.toFixed(2)}x raw (target <= 2x)` },
      { what: 'raw write(4 KiB)+fdatasync windows, writes/s', a: Math.round(raw.rowsPerSecond), b: round(raw.p99), note: `p50 ${round(raw.p50)} ms; the disk's limit in section 2` },
      { what: 'appends, 1 Node.js process, via the daemon, rows/s', a: Math.round(f.one.rowsPerSecond), b: round(f.one.p99), note: `${vsRaw(f.one)} (target p99 <= 2x)` },
      { what: 'appends, 8 Node.js processes, via the daemon, rows/s', a: Math.round(f.eight.rowsPerSecond), b: round(f.eight.p99), note: `${eightVsOne.toFixed(2)}x of 1 process (>= 3x); ${vsRaw(f.eight)} (<= 3x)` },
      { what: '  the machine\'s CPU during those windows', a: `${Math.round(f.eight.machineCpuBusy * 100)}%`, b: null, note: `${Math.round(f.eight.machineCpuUsPerRow)} µs busy per row (every process and the kernel): ${Math.round(cpuCeiling)} rows/s with all ${cpus} CPUs busy` },
      { what: 'appends, 1 Node.js process, direct (no daemon), rows/s', a: Math.round(f.oneDirect.rowsPerSecond), b: round(f.oneDirect.p99), note: vsRaw(f.oneDirect) },
      { what: 'appends, 8 Node.js processes, direct (no daemon), rows/s', a: Math.round(f.eightDirect.rowsPerSecond), b: round(f.eightDirect.p99), note: `${(f.eightDirect.rowsPerSecond / f.oneDirect.rowsPerSecond).toFixed(2)}x of 1 process; ${vsRaw(f.eightDirect)}` },
      { what: 'appends, 1 Python process, via the daemon, rows/s', a: Math.round(f.pythonOne.rowsPerSecond), b: round(f.pythonOne.p99), note: vsRaw(f.pythonOne) },
      { what: 'appends, 8 Python processes, via the daemon, rows/s', a: Math.round(f.pythonEight.rowsPerSecond), b: round(f.pythonEight.p99), note: `${(f.pythonEight.rowsPerSecond / f.pythonOne.rowsPerSecond).toFixed(2)}x of 1 process; ${vsRaw(f.pythonEight)}` },
      { what: 'rows per group commit (every window via the daemon)', a: round(rowsPerCommit, 2), b: null, note: 'rows covered by one fsync on average' },
      { what: 'drain 100k rows (buffer -> writer, idempotent), rows/s', a: Math.round(drain), b: null, note: `${drainVsCopy.toFixed(2)}x COPY (median of pair ratios, >= 0.6), ${drainVsNaive.toFixed(1)}x one-per-row (>= 20)` },
      { what: 'plain COPY 100k rows into the same table, rows/s', a: Math.round(copy), b: null, note: 'one statement, COPY text prepared in memory beforehand' },
      { what: 'COPY of the buffer rows (read SQLite + format + COPY), rows/s', a: Math.round(bufferCopy), b: null, note: `not idempotent, marks nothing; drain is ${(drain / bufferCopy).toFixed(2)}x of it` },
      { what: `one autocommit INSERT per row (${NAIVE_ROWS} rows), rows/s`, a: Math.round(naive), b: null, note: 'the naive approach' },
    ];
    console.log(
      `\n${renderTable(
        [
          { header: 'measurement', value: (r: (typeof rows)[number]) => r.what },
          { header: 'p50 / rate', value: (r) => r.a, align: 'right' },
          { header: 'p99 ms', value: (r) => r.b, align: 'right' },
          { header: 'note', value: (r) => r.note },
        ],
        rows,
      )}\n`,
    );
    const targets = {
      inProcessAppendP99Within2xRaw: inProcessRatio <= 2,
      oneProcessP99Within2xRaw: f.one.p99 <= 2 * raw.p99,
      eightProcessesAtLeast3xOne: eightVsOne >= 3,
      eightProcessesP99Within3xRaw: f.eight.p99 <= 3 * raw.p99,
      drainAtLeast06xCopy: drainVsCopy >= 0.6,
      drainAtLeast20xOnePerRow: drainVsNaive >= 20,
    };
    const per = (pick: (v: AppendFigures) => number, digits: number) => ({
      oneProcess: round(pick(f.one), digits),
      eightProcesses: round(pick(f.eight), digits),
      oneProcessDirect: round(pick(f.oneDirect), digits),
      eightProcessesDirect: round(pick(f.eightDirect), digits),
      pythonOneProcess: round(pick(f.pythonOne), digits),
      pythonEightProcesses: round(pick(f.pythonEight), digits),
    });
    console.log(
      JSON.stringify({
        rawFdatasyncMs: { p50: round(raw.p50), p99: round(raw.p99) },
        appendRowsPerSecond: per((v) => v.rowsPerSecond, 0),
        appendP99Ms: per((v) => v.p99, 3),
        appendP50Ms: per((v) => v.p50, 3),
        machineCpuBusy: per((v) => v.machineCpuBusy, 2),
        machineCpuUsPerRow: per((v) => v.machineCpuUsPerRow, 0),
        cpuCeilingRowsPerSecond: { eightProcesses: Math.round(cpuCeiling) },
        eightVsOneProcess: round(eightVsOne, 2),
        rowsPerGroupCommit: round(rowsPerCommit, 2),
        inProcessAppendMs: { p50: round(latency.append.p50), p99: round(latency.append.p99) },
        inProcessRawFdatasyncMs: { p50: round(latency.raw.p50), p99: round(latency.raw.p99) },
        inProcessAppendP99Ratio: round(inProcessRatio, 2),
        drainRowsPerSecond: Math.round(drain),
        plainCopyRowsPerSecond: Math.round(copy),
        copyFromBufferRowsPerSecond: Math.round(bufferCopy),
        oneInsertPerRowRowsPerSecond: Math.round(naive),
        drainVsCopy: round(drainVsCopy, 2),
        drainVsOneInsertPerRow: round(drainVsNaive, 1),
        targets,
      }),
    );
    if (!Object.values(targets).every(Boolean)) process.exitCode = 1;
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
