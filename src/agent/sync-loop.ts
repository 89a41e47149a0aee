import { backoffDelayMs } from './backoff.js';
import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { SyncEngine, SyncPassResult } from './sync-engine.js';

export interface SyncLoopOptions {
  readonly engine: SyncEngine;
  readonly config: () => AgentConfig;
  readonly log: AgentLog;
  readonly random?: () => number;
  /** Runs between sync passes on the loop's own turn (prune uses the same writer session). */
  readonly betweenPasses?: () => Promise<void>;
  readonly onPass?: (result: SyncPassResult) => void;
  readonly onFailure?: (error: unknown, attempt: number, retryInMs: number) => void;
}

/**
 * The daemon's loop: a sync pass at start-up (rows a crash left pending go first), then a pass whenever
 * rows are pending, polling the file for appends from other processes. A failed pass waits an
 * exponential, jittered delay; appends keep succeeding meanwhile since they only touch SQLite.
 */
export class SyncLoop {
  private stopping = false;
  private wakeUp: ((kind: 'append' | 'any') => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly options: SyncLoopOptions) {}

  start(): Promise<void> {
    this.running ??= this.loop();
    return this.running;
  }

  /** New rows in this process: ends an idle wait early, but never a backoff wait (an outage must not be hammered). */
  wake(): void {
    this.wakeUp?.('append');
  }

  /** The writer may have moved (SIGHUP): try again now, even during a backoff wait. */
  retryNow(): void {
    this.wakeUp?.('any');
  }

  /** Finishes the in-flight batch, then resolves; the loop sends nothing more. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeUp?.('any');
    await this.running;
  }

  private async loop(): Promise<void> {
    const { engine, config, log } = this.options;
    let localFailures = 0;
    try {
      while (!this.stopping) {
        let result: SyncPassResult;
        try {
          result = await engine.syncPass(() => this.stopping);
        } catch (error) {
          localFailures += 1;
          // Recording the failure writes to the buffer, which can itself fail (a lock held for busyTimeoutMs):
          // the loop must go on regardless, with its own count for the backoff.
          const attempt = await engine.recordFailure(error).catch((recordError: unknown) => {
            log('error', 'could not record the sync failure in the buffer', { error: errorMessage(recordError) });
            return localFailures;
          });
          const delay = backoffDelayMs(attempt, config().backoff, this.options.random);
          log('warn', 'sync failed, retrying', { error: errorMessage(error), attempt, retryInMs: delay });
          this.options.onFailure?.(error, attempt, delay);
          await this.sleep(delay, 'backoff');
          continue;
        }
        localFailures = 0;
        if (result.sent > 0 || result.rejected > 0) {
          log('info', 'synced', { rows: result.sent, inserted: result.inserted, rejected: result.rejected, batches: result.batches, marker: result.marker });
        }
        this.options.onPass?.(result);
        if (this.stopping) break;
        try {
          await this.options.betweenPasses?.();
        } catch (error) {
          log('warn', 'housekeeping between sync passes failed', { error: errorMessage(error) });
        }
        if (result.complete && result.sent === 0) await this.sleep(config().pollIntervalMs, 'idle');
      }
    } finally {
      await engine.close();
    }
  }

  private sleep(ms: number, kind: 'idle' | 'backoff'): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      this.wakeUp = (reason) => {
        if (reason === 'any' || kind === 'idle') done();
      };
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
