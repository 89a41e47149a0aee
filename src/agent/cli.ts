import { Command, CommanderError, Option } from 'commander';
import { StringDecoder } from 'node:string_decoder';
import { renderKeyValues } from '../core/format-table.js';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { headOf, isEpochId } from '../core/lineage.js';
import { grantLineageToAgent, initLineage, readLineage, recordChildEpoch } from '../pg/lineage.js';
import { PRIMARY_TIMELINE_SQL } from '../pg/replication-queries.js';
import type { DrainRequest } from '../ports/worker-control.js';
import { ConfigError, loadConfig, parseConfig, parseWriterUrl, type AgentConfig } from './config.js';
import { errorMessage, jsonLineLog } from './log.js';
import { WriteBuffer } from './write-buffer.js';

export interface CliIo {
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

/** Exit codes: 0 done, 1 the operation failed (writer unreachable, unhealthy file), 2 bad usage, config or input. */
export const ExitCode = { Ok: 0, Failed: 1, BadInput: 2 } as const;

class UsageError extends Error {}

interface CommonOptions {
  buffer?: string;
  config?: string;
  writer?: string;
  json?: boolean;
  /** Overrides the config's workerId (the id a drain confirms the epoch under). */
  workerId?: string;
}

const CONFIG_ENV = 'RDS_FAILOVER_AGENT_CONFIG';

/** Runs one agent command; resolves to the process exit code (bin/rds-failover-agent.ts exits with it). */
export async function runCli(argv: readonly string[], io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let exitCode: number = ExitCode.Ok;
  const program = new Command('rds-failover-agent')
    .description('Worker write buffer: a durable SQLite outbox that syncs to the PostgreSQL writer and drains after a failover.')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });

  const command = (name: string, description: string) =>
    program
      .command(name)
      .description(description)
      .option('--buffer <file>', 'the SQLite buffer file (default: bufferPath in the config)')
      .option('--config <file>', `agent config (JSON); default: $${CONFIG_ENV}`)
      .option('--writer <postgres-url>', 'writer URL, overrides the config');

  const act =
    <T extends CommonOptions>(fn: (options: T) => Promise<number>) =>
    async (options: T) => {
      exitCode = await fn(options);
    };

  command('append', 'read NDJSON rows from stdin, print one acknowledged id per line')
    .requiredOption('--stream <name>', 'stream the rows belong to')
    .action(act<CommonOptions & { stream: string }>(async (o) => appendCommand(o, io)));

  command('run', 'the daemon: sync loop (SIGTERM finishes the in-flight batch and exits 0, SIGHUP re-reads config and writer)').action(
    act<CommonOptions>(async (o) => runCommand(o, io)),
  );

  command('sync-once', 'send every pending row once')
    .option('--json', 'print JSON')
    .action(
      act<CommonOptions>(async (o) =>
        withBuffer(o, io, { needsConfig: true }, async (buffer) => {
          const result = await buffer.syncOnce();
          print(io, o, { ...result, pendingRows: buffer.outbox.pendingCount() });
          return ExitCode.Ok;
        }),
      ),
    );

  command('drain', "re-send rows after a failover: converge on the writer's lineage, re-send every row synced outside the new history and every pending row")
    .addOption(new Option('--epoch <uuid>', "the promotion's epoch: the writer must be on it or a newer one (the runbook passes it)"))
    .option('--worker-id <id>', "the worker's id the epoch is confirmed under (default: workerId in the config)")
    .option('--json', 'print the JSON summary')
    .action(
      act<CommonOptions & { epoch?: string }>(async (o) =>
        withBuffer(o, io, { needsConfig: true, mustExist: true }, async (buffer) => {
          print(io, o, await buffer.drain(drainRequest(o)));
          return ExitCode.Ok;
        }),
      ),
    );

  program
    .command('init-writer')
    .description(
      'create the lineage (schema rds_failover, its root epoch) on a writer the stack does not manage, or adopt a primary promoted outside the runbook ' +
        '(a new epoch keeping nothing of the old one: every worker re-sends what it holds); run as a role that may CREATE in the database',
    )
    .requiredOption('--writer <postgres-url>', 'the primary, as a role that may CREATE in its database')
    .option('--node <id>', 'name of this primary in the lineage', 'primary')
    .option('--grant-agent <role>', "also grant the agent's role what it needs (SELECT on the lineage, its confirmations)")
    .option('--json', 'print JSON')
    .action(
      act<{ writer: string; node: string; grantAgent?: string; json?: boolean }>(async (o) => {
        print(io, o, await initWriterLineage(parseWriterUrl(o.writer, '--writer'), o.node, o.grantAgent));
        return ExitCode.Ok;
      }),
    );

  command('status', 'pending rows, oldest pending age, synced rows kept, last sync error, writer, file size')
    .option('--json', 'print JSON')
    .action(
      act<CommonOptions>(async (o) =>
        withBuffer(o, io, { needsConfig: false, mustExist: true }, async (buffer) => {
          print(io, o, buffer.status());
          return ExitCode.Ok;
        }),
      ),
    );

  command('checkpoint', 'WAL checkpoint (TRUNCATE) and integrity check before a snapshot; non-zero exit when unhealthy')
    .option('--json', 'print JSON')
    .action(
      act<CommonOptions>(async (o) =>
        withBuffer(o, io, { needsConfig: false, mustExist: true }, async (buffer) => {
          const result = await buffer.checkpoint();
          print(io, o, result);
          if (!result.healthy) io.stderr.write(`buffer not healthy: ${result.reason}\n`);
          return result.healthy ? ExitCode.Ok : ExitCode.Failed;
        }),
      ),
    );

  command('prune', 'delete synced rows past retention that every replica has replayed')
    .option('--json', 'print JSON')
    .action(
      act<CommonOptions>(async (o) =>
        withBuffer(o, io, { needsConfig: true, mustExist: true }, async (buffer) => {
          print(io, o, await buffer.prune());
          return ExitCode.Ok;
        }),
      ),
    );

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.BadInput;
    }
    io.stderr.write(`error: ${errorMessage(error)}\n`);
    return error instanceof UsageError || error instanceof ConfigError ? ExitCode.BadInput : ExitCode.Failed;
  }
  return exitCode;
}

async function withBuffer(
  options: CommonOptions,
  io: CliIo,
  needs: { needsConfig: boolean; mustExist?: boolean },
  fn: (buffer: WriteBuffer, config: AgentConfig) => Promise<number>,
): Promise<number> {
  const resolved = resolveConfig(options, io, needs.needsConfig);
  const config = options.workerId === undefined ? resolved : { ...resolved, workerId: options.workerId };
  const bufferPath = options.buffer ?? config.bufferPath;
  if (bufferPath === undefined) throw new UsageError('--buffer <file> is required (or bufferPath in the config)');
  const buffer = WriteBuffer.open({ bufferPath, config, writerUrl: options.writer, log: jsonLineLog(io.stderr), mustExist: needs.mustExist });
  try {
    return await fn(buffer, config);
  } finally {
    await buffer.close();
  }
}

function resolveConfig(options: CommonOptions, io: CliIo, required: boolean): AgentConfig {
  const file = options.config ?? io.env[CONFIG_ENV];
  if (file !== undefined && file !== '') return loadConfig(file);
  if (required) throw new UsageError(`--config <file> is required for this command (or set ${CONFIG_ENV})`);
  // status and checkpoint read only the file: a minimal config with defaults is enough.
  return parseConfig({}, process.cwd(), { allowNoStreams: true });
}

function drainRequest(o: { epoch?: string }): DrainRequest {
  if (o.epoch === undefined) return {};
  if (!isEpochId(o.epoch)) throw new UsageError(`--epoch: expected the epoch's UUID (lowercase, e.g. 3f2b...-...), got '${o.epoch}'`);
  return { epochId: o.epoch };
}

/**
 * `init-writer`: creates the lineage on a writer the stack does not manage; on a primary whose timeline its newest
 * epoch does not record (promoted outside the runbook), records an epoch for it that keeps nothing of the old one.
 */
async function initWriterLineage(url: string, nodeId: string, agentRole: string | undefined): Promise<{ epochs: number; epoch: string; generation: number; action: string }> {
  const client = new pg.Client({ connectionString: url, application_name: 'rds-failover-agent init-writer' });
  await client.connect();
  try {
    const epochs = await initLineage(client, { nodeId, rootId: randomUUID() });
    let head = headOf(epochs, nodeId);
    let action = epochs.length === 1 && head.parentId === null ? 'root epoch in place' : 'lineage in place';
    const timelineId = (await client.query<{ t: number }>(`SELECT ${PRIMARY_TIMELINE_SQL} AS t`)).rows[0]!.t;
    if (timelineId !== head.timelineId) {
      head = await recordChildEpoch(client, { id: randomUUID(), nodeId, forkLsn: null });
      action = `adopted: this primary writes on timeline ${timelineId}, its newest epoch said ${epochs.find((e) => e.id === head.parentId)?.timelineId}; the new epoch keeps nothing of the old one`;
    }
    if (agentRole !== undefined) await grantLineageToAgent(client, agentRole);
    return { epochs: (await readLineage(client))!.length, epoch: head.id, generation: head.generation, action };
  } finally {
    await client.end();
  }
}

async function appendCommand(o: CommonOptions & { stream: string }, io: CliIo): Promise<number> {
  return withBuffer(o, io, { needsConfig: true }, async (buffer, config) => {
    if (config.streams[o.stream] === undefined) {
      throw new UsageError(`--stream: unknown stream '${o.stream}' (configured: ${Object.keys(config.streams).join(', ')})`);
    }
    const decoder = new StringDecoder('utf8');
    let partial = '';
    let lineNo = 0;
    // Each chunk read from stdin is one durable transaction: a natural group commit for bulk input,
    // one commit per row for a producer that writes a row at a time. Ids are printed after the commit.
    const appendLines = (lines: string[]): number => {
      const rows: string[] = [];
      const numbers: number[] = [];
      for (const line of lines) {
        lineNo += 1;
        if (line.trim() === '') continue;
        rows.push(line);
        numbers.push(lineNo);
      }
      if (rows.length === 0) return ExitCode.Ok;
      const result = buffer.appendMany(o.stream, rows);
      if (result.ids.length > 0) io.stdout.write(`${result.ids.join('\n')}\n`);
      if (result.rejected) {
        io.stderr.write(`error: line ${numbers[result.rejected.index]}: ${result.rejected.error.message}\n`);
        return ExitCode.BadInput;
      }
      return ExitCode.Ok;
    };
    for await (const chunk of io.stdin) {
      partial += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
      const lines = partial.split('\n');
      partial = lines.pop()!;
      const code = appendLines(lines);
      if (code !== ExitCode.Ok) return code;
    }
    partial += decoder.end();
    return appendLines(partial === '' ? [] : [partial]);
  });
}

async function runCommand(o: CommonOptions, io: CliIo): Promise<number> {
  return withBuffer(o, io, { needsConfig: true }, async (buffer) => {
    const log = jsonLineLog(io.stderr);
    const daemon = buffer.startDaemon();
    log('info', 'agent started', { buffer: buffer.outbox.file, pending: buffer.outbox.pendingCount() });
    const stopped = new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        log('info', 'stopping: finishing the in-flight batch', { signal });
        process.off('SIGHUP', reload);
        daemon.stop().then(resolve, resolve);
      };
      const reload = () => {
        const file = o.config ?? io.env[CONFIG_ENV];
        try {
          if (file) buffer.reloadConfig(loadConfig(file));
          daemon.retryNow();
          log('info', 'reloaded config and writer (SIGHUP)');
        } catch (error) {
          log('error', 'config reload failed, keeping the previous config', { error: errorMessage(error) });
        }
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      process.on('SIGHUP', reload);
    });
    // A crashed loop must not leave a process that looks alive but syncs nothing: exit, let systemd restart it.
    const crashed = await Promise.race([stopped.then(() => false), daemon.done.then(() => false, () => true)]);
    if (crashed) return ExitCode.Failed;
    log('info', 'agent stopped', { pending: buffer.outbox.pendingCount() });
    return ExitCode.Ok;
  });
}

function print(io: CliIo, options: { json?: boolean }, value: object): void {
  io.stdout.write(options.json ? `${JSON.stringify(value)}\n` : `${renderKeyValues(value as Record<string, unknown>)}\n`);
}
