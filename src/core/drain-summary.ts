import type { DrainSummary } from '../ports/worker-control.js';

const FIELDS = ['examined', 'resent', 'inserted', 'alreadyPresent', 'remainingPending', 'rejected'] as const satisfies readonly (keyof DrainSummary)[];

/** The drain summary in what `rds-failover-agent drain --json` printed: its last line that is one (the agent may log before it). */
export function parseDrainSummary(stdout: string): DrainSummary | undefined {
  for (const line of stdout.trim().split('\n').reverse()) {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    const v = value as Record<string, unknown> | null;
    if (v !== null && typeof v === 'object' && typeof v.epochId === 'string' && FIELDS.every((f) => typeof v[f] === 'number')) {
      return { epochId: v.epochId, ...Object.fromEntries(FIELDS.map((f) => [f, v[f] as number])) } as unknown as DrainSummary;
    }
  }
  return undefined;
}
