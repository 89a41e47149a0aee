import { setTimeout as sleep } from 'node:timers/promises';

/** Reads every 50 ms until `ok` accepts the value, which it returns; throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, read: () => T | Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}: last ${JSON.stringify(value)}`);
    await sleep(50);
  }
}
