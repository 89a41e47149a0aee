/**
 * Delay before retry number `attempt` (1-based): exponential from `initialMs`, capped at `maxMs`, with
 * "equal jitter" (half fixed, half random) so a fleet of workers does not reconnect in lockstep and no
 * worker retries in a tight loop.
 */
export function backoffDelayMs(attempt: number, bounds: { readonly initialMs: number; readonly maxMs: number }, random: () => number = Math.random): number {
  if (!Number.isInteger(attempt) || attempt < 1) throw new Error(`attempt: expected an integer >= 1, got ${attempt}`);
  const cap = Math.min(bounds.maxMs, bounds.initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(cap / 2 + random() * (cap / 2));
}
