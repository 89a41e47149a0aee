/** Runs the rds-failover program in-process with captured output, a fake clock and a chosen terminal state. */
import { PassThrough } from 'node:stream';
import { runCli, type CliDeps } from '../../../src/cli/program.js';
import type { CliIo } from '../../../src/cli/options.js';
import type { Clock } from '../../../src/ports/clock.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Time moves only when the code under test sleeps: polling loops run instantly and deterministically. */
export class SteppingClock implements Clock {
  constructor(public t = Date.parse('2025-03-01T10:00:00.000Z')) {}
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

export interface RunOptions {
  readonly interactive?: boolean;
  /** Lines typed on stdin (the confirmation prompt). */
  readonly input?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly deps?: Partial<CliDeps>;
}

export async function runInProcess(argv: readonly string[], options: RunOptions = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const stdin = new PassThrough();
  if (options.input !== undefined) stdin.end(options.input);
  const io: CliIo = {
    stdout: { write: (s: string) => ((stdout += s), true) } as unknown as NodeJS.WritableStream,
    stderr: { write: (s: string) => ((stderr += s), true) } as unknown as NodeJS.WritableStream,
    stdin,
    interactive: options.interactive ?? false,
    env: options.env ?? {},
    cwd: options.cwd ?? process.cwd(),
  };
  const deps: CliDeps = { clock: new SteppingClock(), awsPollMs: 2_000, ...options.deps };
  const code = await runCli(argv, io, deps);
  return { code, stdout, stderr };
}
