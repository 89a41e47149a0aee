/**
 * `tsx bench/append-cpu.ts [--base <checkout>] [--rounds N] [--window-ms MS] [--cpu-prof <dir>] [--node-flags=...] [--api append,appendAsync]`: the CPU one
 * append through the agent daemon costs, per side, measured side by side. For each checkout (this one, and
 * `--base`, another checkout of the repository with its node_modules, if given) it starts that checkout's agent
 * daemon on its own buffer (syncing to one local PostgreSQL) and 8 appender children (bench/append-processes.ts
 * of that checkout, WriteBuffer.append as in `npm run bench:buffer`), then runs windows of 1 and of 8 appenders,
 * the checkouts and sizes alternating window by window (A/B/A/B on this shared machine). Per window it reads
 * the appenders' CPU (process.cpuUsage in each child) and the daemon's (/proc/<pid>/stat), and prints the
 * microseconds of CPU per acknowledged row on each side. With --cpu-prof, every child and daemon writes a
 * V8 CPU profile (node --cpu-prof) into <dir>/<label>/daemon/ and <dir>/<label>/appenders/.
 * Needs Linux (/proc). Prints a table and, last, one JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { appendSocketAnswers } from '../src/agent/append-server.js';
import { LocalCluster } from '../src/local/local-cluster.js';
import { CLOCK_TICK_US } from './append-processes.js';

const STREAM = { table: 'bench_events', key: ['id'], columns: ['id', 'body', 'n'] };

interface Window {
  readonly count: number;
  readonly latencies: number[];
  readonly cpuMs: number;
}

class Child {
  private readonly waiting: ((line: string) => void)[] = [];
  readonly exited: Promise<void>;
  constructor(readonly process: ChildProcess) {
    createInterface({ input: process.stdout! }).on('line', (line) => this.waiting.shift()?.(line));
    this.exited = new Promise((resolve) => process.on('close', () => resolve()));
  }
  ask(command: string): Promise<Window & { error?: string }> {
    return new Promise((resolve) => {
      this.waiting.push((line) => resolve(JSON.parse(line)));
      this.process.stdin!.write(`${command}\n`);
    });
  }
}

/** utime + stime of a process, µs (clock ticks). */
function processCpuUs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_US;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

interface Side {
  readonly label: string;
  readonly root: string;
  readonly config: string;
  daemon: ChildProcess;
  daemonLog: string;
  readonly appenders: Child[];
  readonly python: Child[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      rounds: { type: 'string', default: '4' },
      'window-ms': { type: 'string', default: '2000' },
      'cpu-prof': { type: 'string' },
      processes: { type: 'string', default: '8' },
      'node-flags': { type: 'string', default: '' },
      'pids-file': { type: 'string' },
      api: { type: 'string', default: 'append' },
    },
  });
  const rounds = Number(values.rounds);
  const windowMs = Number(values['window-ms']);
  const many = Number(values.processes);
  const apis = values.api!.split(',');
  const nodeFlags = values['node-flags']!.split(' ').filter(Boolean);
  const profDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
  const roots = [{ label: 'this', root: path.join(__dirname, '..') }];
  if (values.base) roots.unshift({ label: 'base', root: path.resolve(values.base) });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'append-cpu-'));
  const cluster = await LocalCluster.start({ replicas: 0 });
  const sides: Side[] = [];
  try {
    const client = new (await import('pg')).default.Client(cluster.clientConfig('pg-0'));
    await client.connect();
    await client.query('CREATE TABLE bench_events (id text PRIMARY KEY, body text NOT NULL, n bigint NOT NULL)');
    await client.end();
    for (const { label, root } of roots) {
      const config = path.join(dir, `${label}.json`);
      writeFileSync(config, JSON.stringify({ bufferPath: `${label}.db`, streams: { events: STREAM }, writerUrl: cluster.connectionString('pg-0') }));
      const prof = (who: string) => {
        if (profDir === undefined) return nodeFlags;
        mkdirSync(path.join(profDir, label, who), { recursive: true });
        return [...nodeFlags, '--cpu-prof', `--cpu-prof-dir=${path.join(profDir, label, who)}`];
      };
      const daemon = spawn(process.execPath, [...prof('daemon'), '--import', 'tsx', path.join(root, 'bin', 'rds-failover-agent.ts'), 'run', '--config', config], {
        cwd: root,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const side: Side = { label, root, config, daemon, daemonLog: '', appenders: [], python: [] };
      daemon.stderr!.setEncoding('utf8').on('data', (s: string) => (side.daemonLog += s));
      for (const deadline = Date.now() + 60_000; !(await appendSocketAnswers(path.join(dir, `${label}.db.sock`))); ) {
        if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`${label}: the daemon did not serve its socket: ${side.daemonLog.slice(-2000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < many; i++) {
        side.appenders.push(
          new Child(
            spawn(process.execPath, [...prof('appenders'), '--import', 'tsx', path.join(root, 'bench', 'append-processes.ts'), 'appender', `${label}${i}`], {
              cwd: root,
              stdio: ['pipe', 'pipe', 'inherit'],
            }),
          ),
        );
      }
      if (apis.includes('python')) {
        for (let i = 0; i < many; i++) {
          side.python.push(new Child(spawn('python3', [path.join(root, 'bench', 'python-appender.py'), `${label}p${i}`], { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })));
        }
      }
      sides.push(side);
    }
    if (values['pids-file']) {
      writeFileSync(values['pids-file'], JSON.stringify(Object.fromEntries(sides.map((s) => [s.label, { daemon: s.daemon.pid, appenders: s.appenders.map((a) => a.process.pid) }]))));
    }
    const results: Record<string, { rows: number; seconds: number; appenderCpuUs: number; daemonCpuUs: number; latencies: number[] }> = {};
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? sides : [...sides].reverse();
      for (const count of round % 2 === 0 ? [1, many] : [many, 1]) {
        for (const side of order) {
          for (const api of side.label === 'base' ? ['append'] : apis) {
          const who = (api === 'python' ? side.python : side.appenders).slice(0, count);
          for (const a of await Promise.all(who.map((c) => c.ask(`prepare ${side.config}`)))) if (a.error) throw new Error(a.error);
          const before = processCpuUs(side.daemon.pid!);
          const windows = await Promise.all(who.map((c) => c.ask(`${api === 'python' ? 'append' : api} ${side.config} ${side.label}-${api}-r${round}-${count} ${windowMs}`)));
          const daemonCpuUs = processCpuUs(side.daemon.pid!) - before;
          const key = `${side.label}/${api}/${count}`;
          const r = (results[key] ??= { rows: 0, seconds: 0, appenderCpuUs: 0, daemonCpuUs: 0, latencies: [] });
          for (const w of windows) {
            if (w.error) throw new Error(w.error);
            r.rows += w.count;
            r.appenderCpuUs += w.cpuMs * 1000;
            for (const l of w.latencies) r.latencies.push(l);
          }
          r.seconds += windowMs / 1000;
          r.daemonCpuUs += daemonCpuUs;
          process.stderr.write(
            `round ${round} ${key}: ${Math.round(windows.reduce((s, w) => s + w.count, 0) / (windowMs / 1000))} rows/s, load ${os.loadavg()[0]!.toFixed(1)}\n`,
          );
          }
        }
      }
    }
    const summary = Object.fromEntries(
      Object.entries(results).map(([key, r]) => [
        key,
        {
          rowsPerSecond: Math.round(r.rows / r.seconds),
          appenderCpuUsPerRow: Math.round(r.appenderCpuUs / r.rows),
          daemonCpuUsPerRow: Math.round(r.daemonCpuUs / r.rows),
          p50Ms: Number(percentile(r.latencies, 50).toFixed(3)),
          p99Ms: Number(percentile(r.latencies, 99).toFixed(3)),
        },
      ]),
    );
    console.table(summary);
    console.log(JSON.stringify({ load: os.loadavg(), summary }));
  } finally {
    for (const side of sides) {
      for (const a of [...side.appenders, ...side.python]) a.process.stdin!.end(); // a normal exit, so that --cpu-prof writes its profile
      await Promise.all([...side.appenders, ...side.python].map((a) => a.exited));
      side.daemon.kill('SIGTERM');
      await new Promise((r) => side.daemon.once('close', r));
      const stopped = side.daemonLog.split('\n').find((l) => l.includes('"agent stopped"'));
      if (stopped) process.stderr.write(`${side.label} daemon: ${stopped}\n`);
    }
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
