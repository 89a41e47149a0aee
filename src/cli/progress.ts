import { formatDurationMs } from '../core/duration.js';

export type StepPhase = 'start' | 'done' | 'failed' | 'info';

/** Live progress for long operations: one line per event on stderr, so stdout stays clean for --json. */
export interface Progress {
  event(phase: StepPhase, step: string, detail?: string): void;
}

const MARK: Record<StepPhase, string> = { start: '▶', done: '✔', failed: '✖', info: '·' };

export function consoleProgress(write: (line: string) => void = (line) => process.stderr.write(`${line}\n`), now = () => Date.now()): Progress {
  const started = new Map<string, number>();
  const origin = now();
  return {
    event(phase, step, detail) {
      const t = now();
      if (phase === 'start') started.set(step, t);
      const took = phase === 'done' || phase === 'failed' ? started.get(step) : undefined;
      const elapsed = took === undefined ? '' : ` (${formatDurationMs(t - took)})`;
      const stamp = `+${((t - origin) / 1000).toFixed(2).padStart(6)}s`;
      write(`${stamp} ${MARK[phase]} ${step}${elapsed}${detail ? ` — ${detail}` : ''}`);
    },
  };
}

export const silentProgress: Progress = { event: () => undefined };
