import { backoffDelayMs } from './backoff.js';
import type { AgentConfig } from './config.js';
import { errorMessage, type AgentLog } from './log.js';
import type { SyncEngine, SyncPassResult } from './sync-engine.js';

export interface SyncLoopOptions {
  readonly engine: SyncEngine;
  readonly config: () => AgentConfig;
  readonly log: AgentLog;
  readonly random?: () => number;
  /** Default SYNC_LINGER_MS. */
  readonly lingerMs?: number;
  /** Runs between sync passes on the loop's own turn (prune uses the same writer session). */
  readonly betweenPasses?: () => Promise<void>;
  readonly onPass?: (result: SyncPassResult) => void;
  readonly onFailure?: (error: unknown, attempt: number, retryInMs: number) => void;
  /** Whether the writer moved since the last attempt (a replaced writer file): ends a backoff wait at once. */
  readonly writerMoved?: () => boolean;
}

/**
 * After a pass that sent everything pending, the next waits this long for more rows. A pass marks its rows
 * (a SQLite commit with its fsync, in the thread that also serves the append socket): a pass per group commit
 * cost the appenders through the daemon about two thirds of their rate (measured, docs/buffer.md).
 */
export const SYNC_LINGER_MS = 50;

/**
 * How often a backoff wait asks whether the writer moved (one stat of the writer file). The controller replaces
 * the file right after the promotion: the rows waiting since the old primary died go at once, not after the
 * rest of a backoff that has grown through the outage (the SIGHUP a drain sends does the same for the DNS name).
 */
const WRITER_MOVED_CHECK_MS = 20;

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
        if (result.complete) await (result.sent === 0 ? this.sleep(config().pollIntervalMs, 'idle') : this.sleep(this.options.lingerMs ?? SYNC_LINGER_MS, 'linger'));
      }
    } finally {
      await engine.close();
    }
  }

  /** An idle wait ends at an append (wake); a backoff wait at retryNow, stop or a moved writer; a linger wait at retryNow or stop. */
  private sleep(ms: number, kind: 'idle' | 'backoff' | 'linger'): Promise<void> {
    if (this.stopping) return Promise.resolve();
    const writerMoved = kind === 'backoff' ? this.options.writerMoved : undefined;
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const watch = writerMoved && setInterval(() => writerMoved() && done(), WRITER_MOVED_CHECK_MS);
      this.wakeUp = (reason) => {
        if (reason === 'any' || kind === 'idle') done();
      };
      function done(): void {
        clearTimeout(timer);
        if (watch) clearInterval(watch);
        resolve();
      }
    });
  }
}
