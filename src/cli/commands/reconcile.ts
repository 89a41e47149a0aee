/**
 * `rds-failover reconcile`: after a failover the CDK config still names the old primary. Read the live topology
 * (AWS: the SSM topology parameter the runbook rewrote; local: the cluster) and write it into the config file the
 * stack reads (lib/config.ts: database.primary, database.nodes, database.retired), so that `cdk diff` shows the
 * promoted instance in place instead of a replacement. Without --write it only shows the change.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, DEFAULT_CONFIG_PATH, defaultNodeWindows, parseConfig, type FailoverConfig, type NodeWindows } from '../../../lib/config.js';
import { parseDailyWindow, parseWeeklyWindow, windowsOverlap } from '../../../lib/maintenance-windows.js';
import { AwsTarget } from '../aws/aws-target.js';
import { readTopologyDocument } from '../aws/aws-topology.js';
import { openLocalCluster } from '../local/local-target.js';
import { addTargetOptions, checkTargetFlags, CliError, ExitCode, type CliIo, type TargetFlags } from '../options.js';

type JsonObject = { [key: string]: unknown };

/** The topology as it is now, in config terms: node names, not instance ids. */
export interface LiveTopology {
  readonly clusterId: string;
  readonly primary: string;
  readonly nodes: readonly string[];
  /** Where it was read, for the operator. */
  readonly source: string;
}

export interface ReconcileResult {
  readonly changed: boolean;
  /** One line per change, saying what `cdk deploy` will then do about it. */
  readonly changes: readonly string[];
  readonly before: JsonObject;
  readonly after: JsonObject;
  /** The whole config with the new database section. */
  readonly next: JsonObject;
}

/**
 * The config rewritten to the live topology. Nodes that left the topology: a former primary (or the original
 * primary) is retired (it holds data: kept, fenced, until you remove it); a replica is dropped (a copy: cdk deploy
 * deletes it). originalPrimary is create-only, so it is pinned when it was only implied by `primary`.
 */
export function reconcileConfig(raw: unknown, file: string, live: LiveTopology, options: { checkClusterId: boolean }): ReconcileResult {
  const config = parseOrThrow(raw, file, (errors) => `${file} is not a valid config already (fix it first):\n${errors}`, ExitCode.Usage);
  if (options.checkClusterId && live.clusterId !== config.clusterId) {
    throw new CliError(`${file} is the config of cluster '${config.clusterId}', but the live topology (${live.source}) is of '${live.clusterId}': pass the config of that cluster with --config`);
  }
  if (!live.nodes.includes(live.primary)) throw new CliError(`the live topology (${live.source}) names primary '${live.primary}', which is not one of its nodes (${live.nodes.join(', ')})`, ExitCode.Failed);

  const current = config.database;
  const rawObject = raw as JsonObject;
  const before = { ...((rawObject.database as JsonObject | undefined) ?? {}) };
  const db: JsonObject = { ...before };
  const changes: string[] = [];

  const nodes = [...current.nodes.filter((n) => live.nodes.includes(n)), ...live.nodes.filter((n) => !current.nodes.includes(n))];
  const leaving = current.nodes.filter((n) => !live.nodes.includes(n));
  const retiring = leaving.filter((n) => n === current.primary || n === current.originalPrimary);
  const dropped = leaving.filter((n) => !retiring.includes(n));
  const retired = [...current.retired.filter((n) => !live.nodes.includes(n)), ...retiring.filter((n) => !current.retired.includes(n))];

  if (live.primary !== current.primary) {
    changes.push(`primary: ${current.primary} -> ${live.primary} (the promoted instance stays in place)`);
    if (before.originalPrimary === undefined) {
      db.originalPrimary = current.originalPrimary;
      changes.push(`originalPrimary pinned to ${current.originalPrimary} (it was implied by primary; it is create-only and must not follow it)`);
    }
  }
  if (live.primary !== current.primary || before.primary !== undefined) db.primary = live.primary;
  if (nodes.join() !== current.nodes.join()) {
    db.nodes = nodes;
    for (const n of live.nodes.filter((x) => !current.nodes.includes(x))) {
      changes.push(`node ${n} joins the topology: the runbook's rebuild created ${config.clusterId}-${n} outside CloudFormation, so the stack must adopt it (cdk import), not create it`);
    }
  }
  for (const n of retiring) changes.push(`node ${n} is retired: the fenced former primary keeps running in the quarantine group, deletion protection off, until you remove it from database.retired`);
  for (const n of dropped) changes.push(`node ${n} leaves the topology: it was a replica, cdk deploy deletes ${config.clusterId}-${n}`);
  for (const n of current.retired.filter((x) => live.nodes.includes(x))) changes.push(`node ${n} is back in the topology: no longer retired`);
  if (retired.join() !== current.retired.join()) db.retired = retired;

  // Default windows go by position in nodes + retired: pin the current ones so that moving a node changes no window.
  const order = [...nodes, ...retired];
  if (order.join() !== [...current.nodes, ...current.retired].join()) {
    const pinned: Record<string, NodeWindows> = Object.fromEntries(order.filter((n) => n in current.windows).map((n) => [n, { ...current.windows[n]! }]));
    for (const n of order.filter((x) => !(x in pinned))) pinned[n] = freeWindows(Object.values(pinned), config.workers.maintenanceWindow);
    if (JSON.stringify(pinned) !== JSON.stringify(before.windows)) {
      db.windows = pinned;
      changes.push(`maintenance and backup windows pinned to their current values (defaults go by position, which changed)`);
    }
  }

  const next: JsonObject = { ...rawObject, database: db };
  parseOrThrow(next, file, (errors) => `the live topology (${live.source}) cannot be written into ${file} as is:\n${errors}`, ExitCode.Failed);
  const changed = JSON.stringify(before) !== JSON.stringify(db);
  return { changed, changes: changed ? changes : [], before, after: db, next };
}

/**
 * Windows for a node that joins: the first of the staggered defaults that keeps lib/config.ts' rules (no two
 * maintenance windows overlap, no backup overlaps a maintenance window, nothing overlaps the workers' patch window).
 */
export function freeWindows(taken: readonly NodeWindows[], workerWindow: string): NodeWindows {
  const maintenance = taken.map((w) => parseWeeklyWindow(w.maintenance));
  const backups = taken.map((w) => parseDailyWindow(w.backup));
  const patch = parseWeeklyWindow(workerWindow);
  for (let i = 0; i < 7 * 24; i++) {
    const candidate = defaultNodeWindows(i);
    const m = parseWeeklyWindow(candidate.maintenance);
    const b = parseDailyWindow(candidate.backup);
    const clash = [...maintenance, ...backups, patch].some((x) => windowsOverlap(m, x)) || [...maintenance, patch].some((x) => windowsOverlap(b, x));
    if (!clash) return candidate;
  }
  throw new CliError('no free maintenance/backup window left for a new node: set database.windows for it by hand', ExitCode.Failed);
}

function parseOrThrow(raw: unknown, file: string, message: (errors: string) => string, exitCode: number): FailoverConfig {
  try {
    return parseConfig(raw, file);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(message(error.errors.map((e) => `  - ${e}`).join('\n')), exitCode);
    throw error;
  }
}

/** Local node ids ('pg-1') as config node names ('pg1': lower-case letters and digits). */
export function localNodeName(nodeId: string): string {
  return nodeId.toLowerCase().replace(/[^a-z0-9]/g, '');
}

export function renderReconcile(file: string, live: LiveTopology, result: ReconcileResult, written: boolean, review: string): string {
  const lines = [`${file} against the live topology of ${live.clusterId} (${live.source}): primary ${live.primary}, nodes ${live.nodes.join(', ')}`, ''];
  if (!result.changed) {
    lines.push('the config already matches the live topology: nothing to change');
    return lines.join('\n');
  }
  lines.push('changes:', ...result.changes.map((c) => `  - ${c}`), '', 'database section:');
  for (const key of new Set([...Object.keys(result.before), ...Object.keys(result.after)])) {
    const a = JSON.stringify(result.before[key]);
    const b = JSON.stringify(result.after[key]);
    if (a !== b) lines.push(`  ${key}: ${a ?? '(absent)'} -> ${b ?? '(absent)'}`);
  }
  lines.push('', written ? `written to ${file}` : `not written: re-run with --write to apply`, `review the stack change: ${review}`);
  return lines.join('\n');
}

interface ReconcileFlags extends TargetFlags {
  readonly config: string;
  readonly write?: boolean;
  readonly json?: boolean;
}

export function registerReconcileCommand(program: Command, io: CliIo): Command {
  const command = program
    .command('reconcile')
    .description("write the live topology (primary, nodes) into the CDK config after a failover, then review with cdk diff; without --write it only shows the change")
    .option('--config <file>', 'the CDK config file the stack is deployed with', DEFAULT_CONFIG_PATH)
    .option('--write', 'write the change into the file (atomically)')
    .option('--json', 'print the change as JSON');
  addTargetOptions(command, { workers: false, stateMachine: false });
  return command.action(async (flags: ReconcileFlags) => {
    const local = checkTargetFlags(flags) === 'local';
    const file = path.resolve(io.cwd, flags.config);
    const raw = readConfigJson(file, flags.config);
    const live = local ? readLocalTopology(flags.local!, io.cwd) : await readAwsLiveTopology(flags, raw, io);
    const result = reconcileConfig(raw, flags.config, live, { checkClusterId: !local });
    const written = Boolean(flags.write && result.changed);
    if (written) writeAtomically(file, `${JSON.stringify(result.next, null, 2)}\n`);
    const relative = path.relative(io.cwd, file);
    const review = `npx cdk diff -c config=${relative && !relative.startsWith('..') ? relative : file}`;
    io.stdout.write(
      flags.json
        ? `${JSON.stringify({ config: file, live, changed: result.changed, changes: result.changes, before: result.before, after: result.after, written, review }, null, 2)}\n`
        : `${renderReconcile(flags.config, live, result, written, review)}\n`,
    );
  });
}

function readConfigJson(file: string, shown: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`--config: cannot read ${shown} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); pass the CDK config file the stack is deployed with`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CliError(`--config: ${shown} is not valid JSON: ${(error as Error).message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new CliError(`--config: ${shown} must hold a JSON object`);
  return raw as JsonObject;
}

function readLocalTopology(dir: string | true, cwd: string): LiveTopology {
  const { cluster, dir: resolved } = openLocalCluster(dir, cwd, { requireRunning: false });
  // A fenced node is the former primary the failover isolated: outside the topology, like in AWS.
  const nodes = cluster.nodes().filter((n) => !n.fenced).map((n) => localNodeName(n.id));
  return { clusterId: cluster.clusterId, primary: localNodeName(cluster.primaryId()), nodes, source: `local cluster in ${resolved}` };
}

async function readAwsLiveTopology(flags: ReconcileFlags, raw: JsonObject, io: CliIo): Promise<LiveTopology> {
  const configClusterId = typeof raw.clusterId === 'string' ? raw.clusterId : undefined;
  const target = new AwsTarget({ ...flags, clusterId: flags.clusterId ?? (flags.stack ? undefined : configClusterId) }, io.env);
  const parameter = await target.topologyParameterName();
  const doc = await readTopologyDocument(target.ssm(), parameter);
  return { clusterId: doc.clusterId, primary: doc.primary, nodes: doc.nodes.map((n) => n.name), source: `SSM parameter ${parameter}` };
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}
