import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { DrainRequest, DrainSummary } from '../ports/worker-control.js';
import { AsyncAppendClient } from './append-async-client.js';
import { AppendClient } from './append-client.js';
import { appendSocketPath, type AppendCommitted } from './append-protocol.js';
import { AppendServer } from './append-server.js';
import { checkpoint, type CheckpointResult } from './checkpoint.js';
import { checkSocketPathLength, parseWriterUrl, type AgentConfig, type WriterSourceConfig } from './config.js';
import { drain } from './drain.js';
import { errorMessage, silentLog, type AgentLog } from './log.js';
import { MetricsPublisher } from './metrics-publisher.js';
import { Outbox, type AppendResult } from './outbox.js';
import { prune, type PruneResult } from './retention.js';
import { rowText, RowRejectedError } from './row-validation.js';
import { bufferStatus, type BufferStatus } from './status.js';
import { SyncEngine, type SyncPassResult } from './sync-engine.js';
import { SyncLoop } from './sync-loop.js';
import { createWriterSource, type WriterSource, type WriterTarget } from './writer-source.js';

export interface WriteBufferOptions {
  readonly bufferPath: string;
  readonly config: AgentConfig;
  /** Overrides the config's writer source (the CLI's --writer). */
  readonly writerUrl?: string;
  readonly log?: AgentLog;
  /** Only for commands that must not create a missing buffer (status, checkpoint, drain, prune). */
  readonly mustExist?: boolean;
  readonly secretsManager?: SecretsManagerClient;
  readonly cloudWatch?: CloudWatchClient;
}

export interface Daemon {
  /** Finishes the in-flight batch and stops syncing (SIGTERM). */
  stop(): Promise<void>;
  /** Settles when the loop ends: resolves after stop(), rejects if it crashed (the agent then exits non-zero). */
  readonly done: Promise<void>;
  /** Re-reads the writer now, even during a backoff wait (SIGHUP). */
  retryNow(): void;
  /**
   * The append socket this daemon serves (group commit for other processes' appends), once it listens;
   * undefined when the config turns it off, another daemon already serves it, or it could not listen (logged).
   */
  readonly appendServer: Promise<AppendServer | undefined>;
}

/**
 * The worker write buffer for Node callers: `append` returns the row's id once it is durable in the local
 * SQLite file; the daemon (or `syncOnce`) moves rows to PostgreSQL; `drain` re-sends after a failover.
 * Other processes may append to the same file at the same time (CLI, Python, another WriteBuffer).
 */
export class WriteBuffer {
  readonly outbox: Outbox;
  private config: AgentConfig;
  private writerImpl: WriterSource | undefined;
  private writerGeneration = 0;
  private loop: SyncLoop | null = null;
  private appendClient: AppendClient | null | undefined;
  private asyncAppendClient: AsyncAppendClient | null | undefined;
  private readonly log: AgentLog;

  static open(options: WriteBufferOptions): WriteBuffer {
    return new WriteBuffer(options);
  }

  private constructor(private readonly options: WriteBufferOptions) {
    this.config = options.config;
    this.log = options.log ?? silentLog;
    if (options.writerUrl !== undefined) parseWriterUrl(options.writerUrl, '--writer');
    this.outbox = Outbox.open(options.bufferPath, { busyTimeoutMs: options.config.busyTimeoutMs, mustExist: options.mustExist, maxBytes: options.config.maxBufferBytes });
  }

  /**
   * Validates and durably stores one row; returns its id. Throws RowRejectedError (nothing written) on bad input.
   * Through the agent daemon's append socket when it answers (group commit), else directly into the file.
   */
  append(stream: string, row: unknown): string {
    const result = this.appendMany(stream, [row]);
    if (result.rejected) throw result.rejected.error;
    return result.ids[0]!;
  }

  /** Stores rows in one durable transaction up to the first rejected row (see AppendResult). */
  appendMany(stream: string, rows: readonly unknown[]): AppendResult {
    return this.appendThroughDaemon(stream, rows) ?? this.appendDirect(stream, rows);
  }

  private appendDirect(stream: string, rows: readonly unknown[]): AppendResult {
    const busyWaits = this.outbox.busyWaits;
    const result = this.outbox.appendMany(stream, this.config.streams[stream], rows);
    if (result.ids.length > 0) this.loop?.wake();
    // Another process wrote meanwhile: this one is not alone (any more), its next appends share the daemon's commits.
    if (this.outbox.busyWaits !== busyWaits) {
      this.appendClient?.notAlone();
      this.asyncAppendClient?.notAlone();
    }
    return result;
  }

  /**
   * `append` without blocking the thread: resolves with the row's id once it is durable, as `append` returns it
   * (the same rules, errors and fallback to a direct append). Through the daemon's socket the caller's thread
   * does the socket I/O itself, so it costs less CPU than `append` (which hands the socket to a worker thread
   * and waits for it), and a process may have many appends in flight, which the daemon commits together.
   * A direct append (no daemon) is the same synchronous commit as `append`'s.
   */
  async appendAsync(stream: string, row: unknown): Promise<string> {
    const result = await this.appendManyAsync(stream, [row]);
    if (result.rejected) throw result.rejected.error;
    return result.ids[0]!;
  }

  /** `appendMany` without blocking the thread (see appendAsync). */
  async appendManyAsync(stream: string, rows: readonly unknown[]): Promise<AppendResult> {
    const texts = this.loop === null ? rowTexts(rows) : undefined;
    if (texts !== undefined) {
      if (this.asyncAppendClient === undefined) {
        const socket = appendSocketPath(this.config, this.outbox.file);
        this.asyncAppendClient = socket === undefined ? null : new AsyncAppendClient(socket, this.config.busyTimeoutMs);
      }
      const answer = await this.asyncAppendClient?.append(stream, texts);
      if (answer !== undefined) return appendResult(answer);
    }
    return this.appendDirect(stream, rows);
  }

  /** The daemon's answer, or undefined to append directly (no daemon, or it runs in this very process). */
  private appendThroughDaemon(stream: string, rows: readonly unknown[]): AppendResult | undefined {
    if (this.loop !== null) return undefined;
    const texts = rowTexts(rows);
    if (texts === undefined) return undefined;
    if (this.appendClient === undefined) {
      const socket = appendSocketPath(this.config, this.outbox.file);
      this.appendClient = socket === undefined ? null : new AppendClient(socket, this.config.busyTimeoutMs);
    }
    const answer = this.appendClient?.append(stream, texts);
    return answer === undefined ? undefined : appendResult(answer);
  }

  /** Sends every pending row once; a failure is recorded in the buffer (status) and thrown. */
  async syncOnce(): Promise<SyncPassResult> {
    const engine = this.engine();
    try {
      return await engine.syncPass();
    } catch (error) {
      await engine.recordFailure(error);
      throw error;
    } finally {
      await engine.close();
    }
  }

  async drain(request: DrainRequest): Promise<DrainSummary> {
    const engine = this.engine();
    try {
      return await drain(request, { outbox: this.outbox, engine, config: this.config, log: this.log });
    } finally {
      await engine.close();
    }
  }

  async prune(): Promise<PruneResult> {
    const engine = this.engine();
    try {
      return await prune(this.outbox, engine, this.config);
    } catch (error) {
      await engine.recordFailure(error);
      throw error;
    } finally {
      await engine.close();
    }
  }

  checkpoint(): Promise<CheckpointResult> {
    return checkpoint(this.outbox);
  }

  status(): BufferStatus {
    return bufferStatus(this.outbox, this.config);
  }

  /**
   * Replaces the configuration (SIGHUP): the writer session is dropped before the next batch, so the writer is
   * resolved again and its lineage read again (a drain sends SIGHUP after a failover).
   */
  reloadConfig(config: AgentConfig): void {
    const writerChanged = JSON.stringify(config.writer) !== JSON.stringify(this.config.writer);
    this.config = config;
    this.outbox.setMaxBytes(config.maxBufferBytes ?? null);
    if (writerChanged) this.writerImpl = undefined;
    this.reconnect();
  }

  /** Every engine drops its writer session before its next statement and resolves the writer again. */
  private reconnect(): void {
    this.writerGeneration += 1;
    this.writerImpl?.invalidate();
    this.loop?.retryNow();
  }

  /** Runs the sync loop in this process (plus periodic prune and, when enabled, CloudWatch metrics). */
  startDaemon(options: { random?: () => number } = {}): Daemon {
    if (this.loop !== null) throw new Error('the daemon is already running for this buffer');
    const engine = this.engine();
    let nextPruneAt = Date.now() + this.config.retention.pruneIntervalSeconds * 1000;
    const loop = new SyncLoop({
      engine,
      config: () => this.config,
      log: this.log,
      random: options.random,
      writerMoved: () => this.writerImpl?.hasChanged() ?? false,
      betweenPasses: async () => {
        if (Date.now() < nextPruneAt) return;
        nextPruneAt = Date.now() + this.config.retention.pruneIntervalSeconds * 1000;
        const result = await prune(this.outbox, engine, this.config);
        if (result.pruned > 0 || result.skippedBecause !== null) this.log('info', 'prune', { ...result });
      },
    });
    this.loop = loop;
    const stopMetrics = this.startMetrics(engine);
    const appendServer = this.startAppendServer(loop);
    const running = loop.start();
    running.catch((error) => this.log('error', 'sync loop crashed', { error: errorMessage(error) }));
    return {
      done: running,
      appendServer,
      stop: async () => {
        stopMetrics();
        await (await appendServer)?.close();
        await loop.stop();
        this.loop = null;
      },
      retryNow: () => this.reconnect(),
    };
  }

  async close(): Promise<void> {
    await this.loop?.stop();
    this.loop = null;
    await this.appendClient?.close();
    this.asyncAppendClient?.close();
    this.outbox.close();
  }

  /** Serves the append socket next to the sync loop; a failure to listen leaves appends on the direct path. */
  private async startAppendServer(loop: SyncLoop): Promise<AppendServer | undefined> {
    const socketPath = appendSocketPath(this.config, this.outbox.file);
    if (socketPath === undefined) return undefined;
    try {
      checkSocketPathLength(socketPath, 'appendSocket');
      const server = await AppendServer.listen({ outbox: this.outbox, socketPath, streams: () => this.config.streams, log: this.log, onCommitted: () => loop.wake() });
      if (server === undefined) this.log('warn', 'another agent already serves the append socket: appends from other processes go there', { socket: socketPath });
      else this.log('info', 'append socket ready', { socket: socketPath });
      return server;
    } catch (error) {
      this.log('error', 'append socket not served: other processes append directly into the buffer', { socket: socketPath, error: errorMessage(error) });
      return undefined;
    }
  }

  private startMetrics(engine: SyncEngine): () => void {
    if (!this.config.metrics.enabled) return () => undefined;
    const publisher = new MetricsPublisher(this.config.metrics, this.options.cloudWatch);
    const timer = setInterval(() => {
      publisher.publish(this.status(), engine).catch((error) => this.log('warn', 'metrics not published', { error: errorMessage(error) }));
    }, this.config.metrics.intervalSeconds * 1000);
    timer.unref();
    return () => clearInterval(timer);
  }

  private engine(): SyncEngine {
    return new SyncEngine(this.outbox, () => this.config, this.writerView(), this.log);
  }

  private writerSourceConfig(): WriterSourceConfig | undefined {
    return this.options.writerUrl !== undefined ? { kind: 'url', url: this.options.writerUrl } : this.config.writer;
  }

  private currentWriter(): WriterSource {
    this.writerImpl ??= createWriterSource(this.writerSourceConfig(), this.config, this.options.secretsManager);
    return this.writerImpl;
  }

  /** A per-engine view of the writer source that also reports a config reload as a change. */
  private writerView(): WriterSource {
    let seenGeneration = this.writerGeneration;
    return {
      current: async (): Promise<WriterTarget> => {
        seenGeneration = this.writerGeneration;
        return this.currentWriter().current();
      },
      hasChanged: () => seenGeneration !== this.writerGeneration || (this.writerImpl?.hasChanged() ?? false),
      invalidate: () => this.writerImpl?.invalidate(),
    };
  }
}

/** The rows' texts for the socket, or undefined when there are none or one has none (a direct append names the error). */
function rowTexts(rows: readonly unknown[]): string[] | undefined {
  if (rows.length === 0) return undefined;
  try {
    return rows.map(rowText);
  } catch {
    return undefined;
  }
}

function appendResult({ ids, rejected }: AppendCommitted): AppendResult {
  return rejected ? { ids: [...ids], rejected: { index: rejected.index, error: new RowRejectedError(rejected.message) } } : { ids: [...ids] };
}
