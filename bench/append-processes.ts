/**
 * Appender processes for the buffer bench: long-lived children (Node.js WriteBuffer or the Python client)
 * that append as fast as they can during timed windows the bench starts in all of them at once, and the
 * agent daemon (`rds-failover-agent run`) as its own process. Run as a child: `append-processes.ts appender`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { appendSocketAnswers } from '../src/agent/append-server.js';
import { loadConfig } from '../src/agent/config.js';
import { WriteBuffer } from '../src/agent/write-buffer.js';

export const BODY = 'payload '.repeat(10); // ~100-byte rows (python-appender.py uses the same)
/** One clock tick of /proc's CPU times, µs (USER_HZ is 100 on Linux). */
export const CLOCK_TICK_US = 1e6 / 100;
const REPO = path.join(__dirname, '..');

/** One child's window: rows appended and every append's latency (ms). */
export interface WindowResult {
  readonly count: number;
  readonly latencies: number[];
}

/**
 * Children that each run one command at a time from stdin and answer one JSON line:
 *   prepare <config>           open the buffer and append one row (the socket connection, the worker thread)
 *   append <config> <tag> <ms> append rows until `ms` passed (WriteBuffer.append)
 *   appendAsync <config> <tag> <ms> the same with `await WriteBuffer.appendAsync`, one append in flight at a time
 *   fdatasync <file> <ms>      write(4 KiB)+fdatasync until `ms` passed (the disk's limit, same filesystem)
 */
export class AppenderPool {
  private readonly children: { process: ChildProcess; answers: string[]; waiting: ((line: string) => void)[] }[] = [];

  constructor(language: 'node' | 'python', count: number) {
    for (let i = 0; i < count; i++) {
      const child =
        language === 'node'
          ? spawn(process.execPath, ['--import', 'tsx', __filename, 'appender', `w${i}`], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] })
          : spawn('python3', [path.join(__dirname, 'python-appender.py'), `p${i}`], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
      const entry = { process: child, answers: [] as string[], waiting: [] as ((line: string) => void)[] };
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const next = entry.waiting.shift();
        if (next) next(line);
        else entry.answers.push(line);
      });
      child.on('exit', (code, signal) => {
        if (code !== 0 && signal !== 'SIGTERM') for (const w of entry.waiting.splice(0)) w(JSON.stringify({ error: `appender exited ${code ?? signal}` }));
      });
      this.children.push(entry);
    }
  }

  /** Sends `command` to the first `count` children and resolves with their answers. */
  async run(count: number, command: string): Promise<unknown[]> {
    const answers = this.children.slice(0, count).map((entry) => {
      const answer = new Promise<string>((resolve) => {
        const ready = entry.answers.shift();
        if (ready !== undefined) resolve(ready);
        else entry.waiting.push(resolve);
      });
      entry.process.stdin!.write(`${command}\n`);
      return answer;
    });
    const parsed = (await Promise.all(answers)).map((line) => JSON.parse(line) as { error?: string });
    const failed = parsed.find((p) => p.error !== undefined);
    if (failed) throw new Error(`appender: ${failed.error}`);
    return parsed;
  }

  /** All `count` children append to the buffer of `config` for `ms`, starting together. */
  async window(count: number, config: string, tag: string, ms: number): Promise<WindowResult[]> {
    await this.run(count, `prepare ${config}`);
    return (await this.run(count, `append ${config} ${tag} ${ms}`)) as WindowResult[];
  }

  close(): void {
    for (const { process: child } of this.children) child.kill('SIGTERM');
  }
}

/** The agent daemon on a buffer, as on a worker. `stop` returns its group-commit counters. */
export async function startDaemon(config: string): Promise<{ pid: number; stop(): Promise<{ commits: number; requests: number; rows: number }> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(REPO, 'bin', 'rds-failover-agent.ts'), 'run', '--config', config], {
    cwd: REPO,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (log += s));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const socket = `${loadConfig(config).bufferPath!}.sock`;
  for (const deadline = Date.now() + 60_000; !(await appendSocketAnswers(socket)); ) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the agent daemon did not serve ${socket}: ${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      const stopped = log
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { message: string; groupCommits?: { commits: number; requests: number; rows: number } })
        .find((e) => e.message === 'agent stopped');
      if (!stopped?.groupCommits) throw new Error(`the daemon reported no group commits: ${log.slice(-2000)}`);
      return stopped.groupCommits;
    },
  };
}

// ---------------------------------------------------------------- the child

function appenderMain(worker: string): void {
  const buffers = new Map<string, WriteBuffer>();
  const open = (config: string) => {
    let buffer = buffers.get(config);
    if (buffer === undefined) {
      const parsed = loadConfig(config);
      buffer = WriteBuffer.open({ bufferPath: parsed.bufferPath!, config: parsed });
      buffers.set(config, buffer);
    }
    return buffer;
  };
  let warm = 0;
  createInterface({ input: process.stdin }).on('line', (line) => {
    const [command, target, ...rest] = line.split(' ');
    let answer: unknown;
    if (command === 'prepare') {
      open(target!).append('events', { id: `${worker}-warm-${warm++}-${process.pid}`, body: BODY, n: 0 });
      answer = { ready: true };
    } else if (command === 'append') {
      const buffer = open(target!);
      const [tag, ms] = rest;
      answer = timed(Number(ms), (n) => buffer.append('events', { id: `${worker}-${tag}-${n}`, body: BODY, n }));
    } else if (command === 'appendAsync') {
      // one append in flight per process, awaited before the next (as the synchronous `append`): the latency of each
      const buffer = open(target!);
      const [tag, ms] = rest;
      void timedAsync(Number(ms), (n) => buffer.appendAsync('events', { id: `${worker}-${tag}-${n}`, body: BODY, n })).then(
        (result) => process.stdout.write(`${JSON.stringify(result)}\n`),
        (error: unknown) => process.stdout.write(`${JSON.stringify({ error: String(error) })}\n`),
      );
      return;
    } else if (command === 'fdatasync') {
      const fd = openSync(target!, 'a');
      const page = Buffer.alloc(4096, 0x61);
      answer = timed(Number(rest[0]), () => {
        writeSync(fd, page);
        fdatasyncSync(fd);
      });
      closeSync(fd);
    } else {
      answer = { error: `unknown command '${line}'` };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  });
}

/** One window's clock: its deadline, every operation's latency (ms) and the process's CPU over it. */
function windowClock(ms: number) {
  const cpu = process.cpuUsage();
  const latencies: number[] = [];
  const end = Date.now() + ms;
  return {
    open: () => Date.now() < end,
    /** Records one operation that started at `t` (process.hrtime.bigint()). */
    record: (t: bigint) => latencies.push(Math.round(Number(process.hrtime.bigint() - t) / 1e3) / 1e3),
    result: (): WindowResult & { cpuMs: number } => {
      const used = process.cpuUsage(cpu);
      return { count: latencies.length, latencies, cpuMs: (used.user + used.system) / 1000 };
    },
  };
}

function timed(ms: number, op: (n: number) => void): WindowResult & { cpuMs: number } {
  const clock = windowClock(ms);
  for (let n = 0; clock.open(); n++) {
    const t = process.hrtime.bigint();
    op(n);
    clock.record(t);
  }
  return clock.result();
}

async function timedAsync(ms: number, op: (n: number) => Promise<unknown>): Promise<WindowResult & { cpuMs: number }> {
  const clock = windowClock(ms);
  for (let n = 0; clock.open(); n++) {
    const t = process.hrtime.bigint();
    await op(n);
    clock.record(t);
  }
  return clock.result();
}

if (process.argv[2] === 'appender') appenderMain(process.argv[3]!);

