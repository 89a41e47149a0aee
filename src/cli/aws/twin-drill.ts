/**
 * The failover drill against the AWS twin: the synthesized stack deployed onto the twin (src/local/aws-twin) over a
 * local cluster with TLS, worker buffers under load following the writer record, the primary killed (its replicas cut
 * off first, so it holds rows they never received), and the synthesized state machine run with every task calling
 * the real lambda/runbook-* handler with the real src/aws adapters. It counts every acknowledged row on the new
 * primary and reports what the twin saw: calls, throttles, the IAM evaluation of every call, notifications, lock.
 *
 * NODE_EXTRA_CA_CERTS is read by Node only at start: run this in a process started with it naming the twin's CA
 * (runTwinDrillProcess, twin-drill-process.ts), as Lambda starts with the RDS CAs.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { LoadWorkerMessage, LoadWorkerSpec } from '../drill/load-worker-protocol.js';
import { writeLoadWorkerConfig } from '../drill/run-drill.js';
import { AwsTwin, type LambdaHandler, type TwinCall, type TwinDenial } from '../../local/aws-twin/aws-twin.js';
import { DeployedTemplate, type CfnTemplate } from '../../local/aws-twin/cfn-template.js';
import type { UnsupportedConditionKey } from '../../local/aws-twin/iam-policies.js';
import type { TwinCertificates } from '../../local/aws-twin/twin-tls.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { decodeNotification } from '../../core/notification-envelope.js';
import { RUNBOOK_FUNCTIONS, type RunbookFunctionName } from '../../core/runbook/lambda-environment.js';
import type { Notification } from '../../ports/notifier.js';
import { systemClock } from '../../ports/clock.js';
import type { CliIo } from '../options.js';
import { runCli } from '../program.js';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');
const LOAD_WORKER = path.join(REPO_ROOT, 'src', 'cli', 'drill', 'load-worker.ts');
const TABLE = 'twin_events';

export interface TwinDrillSpec {
  readonly template: CfnTemplate;
  readonly stackName: string;
  readonly account: string;
  readonly region: string;
  readonly writerRecordName: string;
  /** Where the template's drain document finds the agent on a worker (lib/buffered-workers AGENT). */
  readonly workerLayout: { readonly agentCommand: string; readonly bufferPath: string; readonly configPath?: string };
  /** Logical id of the DB credentials secret. */
  readonly dbSecretLogicalId: string;
  /** The application database (the stack's database.databaseName): the workers' table lives there. */
  readonly databaseName: string;
  readonly workDir: string;
  readonly certificates: TwinCertificates;
  /** @default 200 */
  readonly ratePerSecond?: number;
  /** @default 0 */
  readonly throttleRate?: number;
  /** @default 1 */
  readonly seed?: number;
  /** Load before the fault. @default 2000 */
  readonly warmupMs?: number;
  readonly log?: (line: string) => void;
}

export interface TwinDrillReport {
  readonly outcome: string;
  readonly error?: string;
  readonly oldPrimary: string;
  readonly newPrimary?: string;
  readonly acknowledged: number;
  readonly rowsOnNewPrimary: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly rowsOnlyOnOldPrimary: number;
  readonly drainResent: number;
  readonly rebuilt: readonly { readonly instance: string; readonly status: string; readonly source?: string; readonly streaming: boolean }[];
  readonly notifications: readonly string[];
  /** Text of the warning and critical notifications (e.g. a replica that was not rebuilt, with AWS's message). */
  readonly warnings: readonly string[];
  readonly lockHeld: boolean;
  readonly journalStatus?: string;
  readonly calls: number;
  /** Calls made by the runbook functions (each authorized against its role); the rest are the operator's CLI. */
  readonly functionCalls: number;
  readonly callsByOperation: Readonly<Record<string, number>>;
  readonly throttled: number;
  readonly evaluated: number;
  readonly denials: readonly TwinDenial[];
  readonly unsupportedConditionKeys: readonly UnsupportedConditionKey[];
  readonly failoverMs: number;
  /** Exit code and JSON report of each rds-failover command run against the twin. */
  readonly cli: Readonly<Record<'plan' | 'failover' | 'status', { readonly code: number; readonly report: unknown; readonly stderr: string }>>;
}

export async function runTwinDrill(spec: TwinDrillSpec): Promise<TwinDrillReport> {
  if (process.env.NODE_EXTRA_CA_CERTS !== spec.certificates.caFile) {
    throw new Error(`runTwinDrill: start this process with NODE_EXTRA_CA_CERTS=${spec.certificates.caFile} (Node reads it only at start)`);
  }
  const log = spec.log ?? (() => undefined);
  mkdirSync(spec.workDir, { recursive: true });
  const instances = spec.template.Resources;
  const dbIds = Object.entries(instances)
    .filter(([, r]) => r.Type === 'AWS::RDS::DBInstance')
    .map(([, r]) => ({ id: String(r.Properties!.DBInstanceIdentifier), replica: r.Properties!.SourceDBInstanceIdentifier !== undefined }));
  const primaryId = dbIds.find((d) => !d.replica)!.id;
  const ordered = [primaryId, ...dbIds.filter((d) => d.replica).map((d) => d.id)];
  const spares = ordered.length - 1; // one replacement per replica the runbook may rebuild

  const cluster = await LocalCluster.start({ replicas: ordered.length - 1 + spares, settings: spec.certificates.settings, log: (l) => log(`cluster: ${l}`) });
  const loadWorkers: ChildProcess[] = [];
  let twin: AwsTwin | undefined;
  try {
    const nodes = Object.fromEntries(ordered.map((id, i) => [id, `pg-${i}`]));
    const spareNodes = Array.from({ length: spares }, (_, i) => `pg-${ordered.length + i}`);
    await cluster.createDatabase(spec.databaseName);
    const db = spec.databaseName;
    await query(cluster, 'pg-0', `CREATE TABLE ${TABLE} (id text PRIMARY KEY, worker text NOT NULL, seq bigint NOT NULL, payload jsonb NOT NULL, node_port integer NOT NULL DEFAULT inet_server_port())`, db);
    const lsn = (await query<{ lsn: string }>(cluster, 'pg-0', 'SELECT pg_current_wal_lsn()::text AS lsn', db))[0]!.lsn;
    for (const n of cluster.nodes()) if (n.id !== 'pg-0') await cluster.waitForReplay(n.id, lsn);

    const superuser = cluster.clientConfig('pg-0');
    const writerFile = path.join(spec.workDir, 'writer-url');
    // Each worker is known by its instance id, as on EC2 (the runbook waits for the instances' confirmations).
    const names = new DeployedTemplate(spec.template, { account: spec.account, region: spec.region, stackName: spec.stackName });
    const instanceIds = names.ofType('AWS::EC2::Instance').map((id) => names.ref(id));
    const workerSpecs: LoadWorkerSpec[] = instanceIds.map((workerId) =>
      writeLoadWorkerConfig({ workDir: spec.workDir, workerId, writerFile, table: TABLE, stream: 'events', ratePerSecond: spec.ratePerSecond ?? 200, batchSize: 200 }),
    );
    twin = await AwsTwin.start({
      template: spec.template,
      account: spec.account,
      region: spec.region,
      stackName: spec.stackName,
      cluster,
      nodes,
      spareNodes,
      workers: workerSpecs.map((w) => ({ bufferPath: w.bufferPath, configPath: w.configPath })),
      workerLayout: spec.workerLayout,
      localAgentCommand: [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'bin', 'rds-failover-agent.ts')],
      secretValues: { [spec.dbSecretLogicalId]: JSON.stringify({ username: superuser.user, password: superuser.password, dbname: db, engine: 'postgres' }) },
      writerFile,
      writerRecordName: spec.writerRecordName,
      workerUrl: (host, port) => `postgres://${superuser.user}:${encodeURIComponent(String(superuser.password))}@${host}:${port}/${db}`,
      handlers: runbookHandlers(spec.template),
      throttleRate: spec.throttleRate,
      seed: spec.seed,
      execution: {
        afterTask: async (state, output) => {
          // Once promoted, the former replicas may stream again (a replica cloned later must not inherit the cut).
          if (state === 'PromotionStatus' && (output as { poll?: { done?: boolean } }).poll?.done) {
            for (const node of Object.values(nodes).slice(1)) await setReplication(cluster, node, true).catch(() => undefined);
          }
        },
      },
      workDir: spec.workDir,
      log,
    });

    const acked = new Map<string, string[]>();
    await Promise.all(workerSpecs.map((w) => startLoadWorker(w, loadWorkers, acked)));
    log(`load: ${workerSpecs.length} workers through ${primaryId}`);
    await sleep(spec.warmupMs ?? 2_000);
    // The fault: the replicas stop receiving WAL, the primary keeps acknowledging for a moment, then dies (kill -9).
    for (const node of Object.values(nodes).slice(1)) await setReplication(cluster, node, false);
    await sleep(500);
    await cluster.stopNode('pg-0', 'kill');
    const onlyOnOld = await rowsOnlyOnOldPrimary(cluster, acked, nodes, db);
    log(`fault: ${primaryId} (pg-0) killed; ${onlyOnOld} acknowledged rows are on no replica`);

    // The operator's commands, in-process, against the twin: what a failover would do, the failover, the status after.
    const cli = async (...argv: string[]) => runOperatorCommand([...argv, '--stack', spec.stackName, '--json']);
    const plan = await cli('plan', '--mode', 'failover');
    log(`rds-failover plan: exit ${plan.code}`);
    const started = Date.now();
    const failover = await cli('failover', '--yes');
    log(`rds-failover failover: exit ${failover.code}`);
    await twin.settle();
    const finalState = (twin.stepFunctions.lastExecution()?.output ?? {}) as Record<string, any>;
    const error = failover.code === 0 ? undefined : `rds-failover failover exited ${failover.code}: ${failover.stderr.trim() || failover.stdout.trim()}`;
    const failoverMs = Date.now() - started;
    await sleep(1_000); // load goes on against the new primary
    for (const w of loadWorkers) await stopLoadWorker(w);
    await twin.settle();
    const status = await cli('status');
    log(`rds-failover status: exit ${status.code}`);

    const newPrimary: string | undefined = finalState.plan?.candidateId;
    const stored = newPrimary ? await query<{ id: string; worker: string; seq: string }>(cluster, nodes[newPrimary]!, `SELECT id, worker, seq::text FROM ${TABLE}`, db) : [];
    const present = new Set(stored.map((r) => r.id));
    const all = [...acked.values()].flat();
    const lost = all.filter((id) => !present.has(id)).length;
    const duplicates = stored.length - new Set(stored.map((r) => `${r.worker}/${r.seq}`)).size;
    const rebuilt = await Promise.all(
      twin.rds.ids()
        .filter((id) => !ordered.includes(id))
        .map(async (id) => {
          const d = (await twin!.rds.handlers().DescribeDBInstances!({ DBInstanceIdentifier: id })) as { DBInstances: { DBInstanceStatus: string; ReadReplicaSourceDBInstanceIdentifier?: string }[] };
          const db = d.DBInstances[0]!;
          return { instance: id, status: db.DBInstanceStatus, ...(db.ReadReplicaSourceDBInstanceIdentifier ? { source: db.ReadReplicaSourceDBInstanceIdentifier } : {}), streaming: newPrimary ? await streamsFrom(cluster, nodes[newPrimary]!, twin!.rds.nodeOf(id)) : false };
        }),
    );
    const table = twin.deployed.ref(twin.deployed.ofType('AWS::DynamoDB::Table').find((t) => t.startsWith('RunbookLockTable'))!);
    const items = twin.dynamodb.items(table);
    const lockHeld = items.some((i) => i.pk?.S?.startsWith('lock#'));
    const journal = items.find((i) => i.pk?.S?.startsWith('journal#'));
    const byOp: Record<string, number> = {};
    for (const c of twin.calls) byOp[`${c.service}:${c.operation}`] = (byOp[`${c.service}:${c.operation}`] ?? 0) + 1;
    return {
      outcome: finalState.outcome ?? 'failed',
      ...(error ? { error } : {}),
      oldPrimary: primaryId,
      ...(newPrimary ? { newPrimary } : {}),
      acknowledged: all.length,
      rowsOnNewPrimary: stored.length,
      lost,
      duplicates,
      rowsOnlyOnOldPrimary: onlyOnOld,
      drainResent: (finalState.drains ?? []).reduce((n: number, d: { summary?: { resent?: number } }) => n + (d.summary?.resent ?? 0), 0),
      rebuilt,
      notifications: twin.sns.published.map((m) => m.subject ?? ''),
      warnings: twin.sns.published
        .map((m) => decodeNotification(JSON.parse(m.message)))
        .filter((n): n is Notification => n !== null && (n.severity === 'warning' || n.severity === 'critical'))
        .map((n) => (n.text ? `${n.title}: ${n.text}` : n.title)),
      lockHeld,
      ...(journal?.status?.S ? { journalStatus: journal.status.S } : {}),
      calls: twin.calls.length,
      functionCalls: twin.calls.filter((c: TwinCall) => c.principal !== 'operator').length,
      callsByOperation: byOp,
      throttled: twin.calls.filter((c: TwinCall) => c.outcome === 'throttled').length,
      evaluated: twin.evaluated,
      denials: twin.denials,
      unsupportedConditionKeys: await twin.unsupportedConditionKeys(),
      failoverMs,
      cli: { plan: summary(plan), failover: summary(failover), status: summary(status) },
    };
  } finally {
    for (const w of loadWorkers) if (w.exitCode === null) w.kill('SIGKILL');
    await twin?.stop();
    await cluster.stop();
  }
}

/** The template's runbook functions -> their real handlers (lambda/runbook-<name>/index.ts). */
function runbookHandlers(template: CfnTemplate): Record<string, () => Promise<LambdaHandler>> {
  const handlers: Record<string, () => Promise<LambdaHandler>> = {};
  for (const name of Object.keys(RUNBOOK_FUNCTIONS) as RunbookFunctionName[]) {
    const prefix = `Runbook${name[0]!.toUpperCase()}${name.slice(1)}Function`;
    const id = Object.keys(template.Resources).find((k) => template.Resources[k]!.Type === 'AWS::Lambda::Function' && k.startsWith(prefix));
    if (!id) throw new Error(`the template has no runbook function ${name} (${prefix}...)`);
    handlers[id] = async () => ((await import(path.join(REPO_ROOT, 'lambda', `runbook-${name}`, 'index.ts'))) as { handler: LambdaHandler }).handler;
  }
  return handlers;
}

async function query<T extends pg.QueryResultRow>(cluster: LocalCluster, nodeId: string, sql: string, database?: string): Promise<T[]> {
  const client = new pg.Client(cluster.clientConfig(nodeId, database));
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function setReplication(cluster: LocalCluster, nodeId: string, on: boolean): Promise<void> {
  await query(cluster, nodeId, on ? 'ALTER SYSTEM RESET primary_conninfo' : `ALTER SYSTEM SET primary_conninfo = ''`);
  await query(cluster, nodeId, 'SELECT pg_reload_conf()');
}

/** The replica's node streams from the primary's (its WAL receiver's application_name is its node id). */
async function streamsFrom(cluster: LocalCluster, primaryNode: string, replicaNode: string): Promise<boolean> {
  const rows = await query<{ n: string }>(cluster, primaryNode, `SELECT count(*)::text AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name = '${replicaNode}'`);
  return Number(rows[0]!.n) > 0;
}

/** Acknowledged rows present on no replica when the primary died: only a drain can bring them back. */
async function rowsOnlyOnOldPrimary(cluster: LocalCluster, acked: Map<string, string[]>, nodes: Record<string, string>, database: string): Promise<number> {
  const replica = Object.values(nodes)[1]!;
  const present = new Set((await query<{ id: string }>(cluster, replica, `SELECT id FROM ${TABLE}`, database)).map((r) => r.id));
  return [...acked.values()].flat().filter((id) => !present.has(id)).length;
}

function startLoadWorker(spec: LoadWorkerSpec, children: ChildProcess[], acked: Map<string, string[]>): Promise<void> {
  const child = fork(LOAD_WORKER, [], { execArgv: ['--import', 'tsx'], env: { ...process.env, DRILL_WORKER_SPEC: JSON.stringify(spec) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  children.push(child);
  const ids: string[] = [];
  acked.set(spec.workerId, ids);
  return new Promise((resolve, reject) => {
    child.on('message', (m: LoadWorkerMessage) => {
      if (m.type === 'ready') resolve();
      if (m.type === 'acks') for (const [id] of m.acks) ids.push(id);
    });
    child.once('exit', (code) => reject(new Error(`load worker ${spec.workerId} exited with ${code} before it was ready`)));
  });
}

function stopLoadWorker(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.on('message', (m: LoadWorkerMessage) => {
      if (m.type === 'stopped') resolve();
    });
    child.once('exit', () => resolve());
    child.send({ type: 'stop', syncTimeoutMs: 30_000 });
  });
}

interface CommandRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one rds-failover command in-process (the operator's CLI, its AWS SDK calls going to the twin). */
async function runOperatorCommand(argv: readonly string[]): Promise<CommandRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: { write: (s: string) => ((stdout += s), true) } as unknown as NodeJS.WritableStream,
    stderr: { write: (s: string) => ((stderr += s), true) } as unknown as NodeJS.WritableStream,
    stdin: process.stdin,
    interactive: false,
    env: { AWS_REGION: process.env.AWS_REGION ?? 'eu-west-1' },
    cwd: process.cwd(),
  };
  const code = await runCli(argv, io, { clock: systemClock, awsPollMs: 200 });
  return { code, stdout, stderr };
}

function summary(run: CommandRun): { code: number; report: unknown; stderr: string } {
  let report: unknown = null;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    report = run.stdout.trim();
  }
  return { code: run.code, report, stderr: run.stderr.trim().slice(-2000) };
}
