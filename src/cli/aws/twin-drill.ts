/**
 * The failover drill against the AWS twin: the synthesized stack deployed onto the twin (src/local/aws-twin) over a
 * local cluster with TLS, worker buffers under load following the writer record, the primary killed (its replicas cut
 * off first, so it holds rows they never received), and the synthesized state machine run with every task calling
 * the real lambda/runbook-* handler with the real src/aws adapters. It counts every acknowledged row on the new
 * primary and reports what the twin saw: calls, throttles, the IAM evaluation of every call, notifications, lock.
 * With `offlineWorker`, one worker instance is cut off through the whole execution (SSM cannot reach it, its agent does
 * not sync; SSM goes on listing it Online for a while, so the first drain is sent and never delivered) while its
 * application goes on appending; once the execution ended it is reconnected and the drill waits for its confirmation
 * of the new epoch (docs/aws-twin.md, "A worker offline").
 *
 * NODE_EXTRA_CA_CERTS is read by Node only at start: run this in a process started with it naming the twin's CA
 * (runTwinDrillProcess, twin-drill-process.ts), as Lambda starts with the RDS CAs.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import pg from 'pg';
import type { LoadWorkerMessage, LoadWorkerSpec } from '../drill/load-worker-protocol.js';
import { writeLoadWorkerConfig } from '../drill/run-drill.js';
import { AgentDaemon, agentLogPath, startAppender, type WorkerRecord } from '../drill/worker-fleet.js';
import { offlineWorkerIndex, workerInstanceIds } from './twin-drill-workers.js';
import { registerForCleanup, unregisterForCleanup } from '../../local/cleanup-registry.js';
import { AwsTwin, type LambdaHandler, type TwinCall, type TwinDenial } from '../../local/aws-twin/aws-twin.js';
import type { CfnTemplate } from '../../local/aws-twin/cfn-template.js';
import type { UnsupportedConditionKey } from '../../local/aws-twin/iam-policies.js';
import type { TwinCertificates } from '../../local/aws-twin/twin-tls.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { logTail } from '../../local/postmaster.js';
import { decodeNotification } from '../../core/notification-envelope.js';
import { RUNBOOK_FUNCTIONS, type RunbookFunctionName } from '../../core/runbook/lambda-environment.js';
import type { Notification } from '../../ports/notifier.js';
import { systemClock } from '../../ports/clock.js';
import type { CliIo } from '../options.js';
import { runCli } from '../program.js';

const REPO_ROOT = path.join(__dirname, '..', '..', '..');
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
  /**
   * A worker instance cut off through the failover (SSM cannot reach it; its agent, which syncs its buffer, is killed):
   * after the replicas were cut off and its agent synced rows they never got, before the primary dies; it stays cut
   * off through the whole execution while its appends go on, and is reconnected (its agent started again) once the
   * execution ended; the drill then waits for its confirmation of the new epoch.
   * 1-based position among the template's worker instances, or the instance id. @default - every worker online
   */
  readonly offlineWorker?: number | string;
  /** How long the drill waits for the offline worker's confirmation once it is reconnected. @default 120000 */
  readonly offlineConfirmTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** The worker kept offline through the failover (TwinDrillSpec.offlineWorker): a stable part of the report (docs/aws-twin.md). */
export interface TwinOfflineWorkerReport {
  readonly instanceId: string;
  /**
   * Its PingStatus as DescribeInstanceInformation reported it just after it was cut off (SSM does not notice at once:
   * Online) and when the execution had ended, before it was reconnected (ConnectionLost by then); null: not listed.
   */
  readonly pingStatusWhenCutOff: string | null;
  readonly pingStatusBeforeBack: string | null;
  /** From its cut-off to the drain step's start (StartDrains), and the twin's delay before SSM reports it ConnectionLost. */
  readonly drainsStartedAfterMs: number | null;
  readonly connectionLostAfterMs: number;
  /** How long it was cut off: from before the primary's kill to after the execution's end. */
  readonly cutOffMs: number;
  /** Rows its application appended (acknowledged by its buffer) while it was cut off. */
  readonly appendedWhileCutOff: number;
  /** Of those, not on the new primary at the end. */
  readonly lostAppendedWhileCutOff: number;
  /** Of its acknowledged rows, those on no replica when the primary died (synced to the old primary only). */
  readonly rowsOnlyOnOldPrimary: number;
  /** What the execution's drain step recorded for it. */
  readonly drain: { readonly status: string; readonly attempts: number; readonly error?: string } | null;
  /** verification.unconfirmed of the execution's final state. */
  readonly unconfirmedInExecution: readonly string[];
  /** The execution reported it unconfirmed (it is in verification.unconfirmed). */
  readonly reportedUnconfirmed: boolean;
  /** A warning notification of the execution named it. */
  readonly warned: boolean;
  /** The epoch it confirmed in rds_failover.worker_epochs on the new primary once reconnected (null: none). */
  readonly confirmedEpoch: string | null;
  readonly confirmedAt: string | null;
  /** worker_epochs.rows_resent of that confirmation: rows its agent re-sent because they were outside the new history. */
  readonly rowsResent: number | null;
  /** From its reconnection (its agent's start) to its confirmation (or to the give-up). */
  readonly confirmWaitMs: number;
  /** Why it did not confirm (the limit, the tail of its agent's log). */
  readonly confirmError?: string;
}

export interface TwinDrillReport {
  readonly outcome: string;
  readonly error?: string;
  readonly oldPrimary: string;
  readonly newPrimary?: string;
  /** The epoch the promotion recorded (the final state's epoch.id). */
  readonly epoch?: string;
  /** Present when the drill kept a worker offline (TwinDrillSpec.offlineWorker). */
  readonly offlineWorker?: TwinOfflineWorkerReport;
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
  // Each worker is known by its instance id, as on EC2 (the runbook waits for the instances' confirmations).
  const instanceIds = workerInstanceIds(spec);
  const offlineIndex = offlineWorkerIndex(spec.offlineWorker, instanceIds);

  const cluster = await LocalCluster.start({ replicas: ordered.length - 1 + spares, settings: spec.certificates.settings, log: (l) => log(`cluster: ${l}`) });
  const loadWorkers: ChildProcess[] = [];
  let offlineAgent: AgentDaemon | undefined;
  const cleanup = { cleanupSync: () => offlineAgent?.kill() };
  let drainsStartedAt: number | undefined;
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
    // The offline worker's agent runs as its own process (as the systemd unit on an instance), so it can be
    // stopped while its application goes on appending; the others sync inside their appender.
    const workerSpecs: LoadWorkerSpec[] = instanceIds.map((workerId, i) =>
      writeLoadWorkerConfig({ workDir: spec.workDir, workerId, writerFile, table: TABLE, stream: 'events', ratePerSecond: spec.ratePerSecond ?? 200, batchSize: 200, syncInProcess: i !== offlineIndex }),
    );
    const offline = offlineIndex === undefined ? undefined : workerSpecs[offlineIndex]!;
    if (offline) {
      offlineAgent = new AgentDaemon(offline);
      registerForCleanup(cleanup); // killed with the drill if the drill dies first
    }
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
          if (state === 'StartDrains') drainsStartedAt ??= Date.now();
          // Once promoted, the former replicas may stream again (a replica cloned later must not inherit the cut).
          if (state === 'PromotionStatus' && (output as { poll?: { done?: boolean } }).poll?.done) {
            for (const node of Object.values(nodes).slice(1)) await setReplication(cluster, node, true).catch(() => undefined);
          }
        },
      },
      workDir: spec.workDir,
      log,
    });

    const acked = new Map<string, WorkerRecord>();
    await Promise.all(
      workerSpecs.map((w) => {
        const { appender, record, ready } = startAppender(w);
        loadWorkers.push(appender);
        acked.set(w.workerId, record);
        return ready;
      }),
    );
    if (offline) {
      offlineAgent!.start();
      // Its agent must have synced rows before the fault, or there is nothing above the fork for it to re-send.
      await waitFor(120_000, 250, async () => Number((await query<{ n: string }>(cluster, 'pg-0', `SELECT count(*)::text AS n FROM ${TABLE} WHERE worker = '${offline.workerId}'`, db))[0]!.n) > 0, () =>
        `${offline.workerId}'s agent synced no row to ${primaryId} within 120 s of its start${agentLogTail(offline)}`,
      );
    }
    log(`load: ${workerSpecs.length} workers through ${primaryId}${offline ? ` (${offline.workerId}'s agent runs as its own process)` : ''}`);
    await sleep(spec.warmupMs ?? 2_000);
    // The fault: the replicas stop receiving WAL, the primary keeps acknowledging for a moment, then dies (kill -9).
    await cutReplicas(cluster, Object.values(nodes)[0]!, Object.values(nodes).slice(1));
    await sleep(500);
    let cutOffAt = 0;
    let pingStatusWhenCutOff: string | null = null;
    if (offline) {
      // Cut it off only once it has synced rows the replicas never got, marked as synced in its buffer: only its own
      // agent can bring those back (a batch is marked before the next one commits, so two batches are awaited).
      await syncedBeyondReplicas(cluster, nodes, db, offline, primaryId);
      await offlineAgent!.stop('SIGKILL');
      twin.ssm.setReachable(offline.workerId, false);
      cutOffAt = Date.now();
      pingStatusWhenCutOff = await pingStatusOf(offline.workerId, spec.region);
      log(`offline: ${offline.workerId} cut off (its agent killed with kill -9, SSM cannot reach it); SSM still reports it ${pingStatusWhenCutOff ?? 'not listed'}; its application goes on appending`);
    }
    await cluster.stopNode('pg-0', 'kill');
    const onReplica = await idsOnReplica(cluster, nodes, db);
    const onlyOnOld = [...acked.values()].flatMap((a) => a.ids).filter((id) => !onReplica.has(id)).length;
    log(`fault: ${primaryId} (pg-0) killed; ${onlyOnOld} acknowledged rows are on no replica`);
    const offlineOnlyOnOld = offline ? acked.get(offline.workerId)!.ids.filter((id) => !onReplica.has(id)).length : 0;
    if (offline) log(`offline: ${offlineOnlyOnOld} of them are ${offline.workerId}'s: only its own agent can bring them back`);

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
    const newPrimary: string | undefined = finalState.plan?.candidateId;
    const epoch: string | undefined = finalState.epoch?.id;

    let confirmation: Confirmation | undefined;
    let backAt = 0;
    let pingStatusBeforeBack: string | null = null;
    if (offline) {
      pingStatusBeforeBack = await pingStatusOf(offline.workerId, spec.region);
      twin.ssm.setReachable(offline.workerId, true);
      offlineAgent!.start();
      backAt = Date.now();
      log(`offline: the execution ended; ${offline.workerId} reconnected (its agent started again) after ${((backAt - cutOffAt) / 1000).toFixed(1)} s cut off; SSM reported it ${pingStatusBeforeBack ?? 'not listed'} just before; waiting for its confirmation of epoch ${epoch ?? '(none recorded)'}`);
      confirmation = await awaitConfirmation(cluster, newPrimary ? nodes[newPrimary] : undefined, db, offline, epoch, spec.offlineConfirmTimeoutMs ?? 120_000);
      log(
        confirmation.epoch === epoch && epoch
          ? `offline: ${offline.workerId} confirmed ${epoch} ${(confirmation.waitMs / 1000).toFixed(1)} s after it was reconnected, re-sending ${confirmation.rowsResent} rows`
          : `offline: ${confirmation.error}`,
      );
    }
    await sleep(1_000); // load goes on against the new primary
    for (const w of loadWorkers) await stopLoadWorker(w);
    await offlineAgent?.stop('SIGTERM');
    await twin.settle();
    const status = await cli('status');
    log(`rds-failover status: exit ${status.code}`);

    const stored = newPrimary ? await query<{ id: string; worker: string; seq: string }>(cluster, nodes[newPrimary]!, `SELECT id, worker, seq::text FROM ${TABLE}`, db) : [];
    const present = new Set(stored.map((r) => r.id));
    const all = [...acked.values()].flatMap((a) => a.ids);
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
    const notifications = twin.sns.published.map((m) => decodeNotification(JSON.parse(m.message)));
    const warnings = notifications
      .filter((n): n is Notification => n !== null && (n.severity === 'warning' || n.severity === 'critical'))
      .map((n) => (n.text ? `${n.title}: ${n.text}` : n.title));
    let offlineReport: TwinOfflineWorkerReport | undefined;
    if (offline) {
      const id = offline.workerId;
      const mine = acked.get(id)!;
      const whileCutOff = mine.ids.filter((_, i) => mine.times[i]! >= cutOffAt && mine.times[i]! <= backAt);
      const drain = ((finalState.drains ?? []) as { workerId: string; status: string; attempts: number; error?: string }[]).find((d) => d.workerId === id);
      const unconfirmed: string[] = finalState.verification?.unconfirmed ?? [];
      offlineReport = {
        instanceId: id,
        pingStatusWhenCutOff,
        pingStatusBeforeBack,
        drainsStartedAfterMs: drainsStartedAt === undefined ? null : drainsStartedAt - cutOffAt,
        connectionLostAfterMs: twin.ssm.connectionLostAfterMs,
        cutOffMs: backAt - cutOffAt,
        appendedWhileCutOff: whileCutOff.length,
        lostAppendedWhileCutOff: whileCutOff.filter((r) => !present.has(r)).length,
        rowsOnlyOnOldPrimary: offlineOnlyOnOld,
        drain: drain ? { status: drain.status, attempts: drain.attempts, ...(drain.error ? { error: drain.error } : {}) } : null,
        unconfirmedInExecution: unconfirmed,
        reportedUnconfirmed: unconfirmed.includes(id),
        warned: warnings.some((w) => w.includes(id)),
        confirmedEpoch: confirmation?.epoch ?? null,
        confirmedAt: confirmation?.at ?? null,
        rowsResent: confirmation?.rowsResent ?? null,
        confirmWaitMs: confirmation?.waitMs ?? 0,
        ...(confirmation?.error ? { confirmError: confirmation.error } : {}),
      };
    }
    return {
      outcome: finalState.outcome ?? 'failed',
      ...(error ? { error } : {}),
      oldPrimary: primaryId,
      ...(newPrimary ? { newPrimary } : {}),
      ...(epoch ? { epoch } : {}),
      ...(offlineReport ? { offlineWorker: offlineReport } : {}),
      acknowledged: all.length,
      rowsOnNewPrimary: stored.length,
      lost,
      duplicates,
      rowsOnlyOnOldPrimary: onlyOnOld,
      drainResent: (finalState.drains ?? []).reduce((n: number, d: { summary?: { resent?: number } }) => n + (d.summary?.resent ?? 0), 0),
      rebuilt,
      notifications: twin.sns.published.map((m) => m.subject ?? ''),
      warnings,
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
    await offlineAgent?.stop('SIGKILL');
    unregisterForCleanup(cleanup);
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

/**
 * Cuts the replicas off the primary and waits (bounded) until it holds: a standby notices a changed primary_conninfo
 * only when its startup process next looks, so until the primary has no WAL sender left for them, none has a WAL
 * receiver running and each has replayed what it received, rows committed now may still reach them.
 */
async function cutReplicas(cluster: LocalCluster, primaryNode: string, replicaNodes: readonly string[]): Promise<void> {
  for (const node of replicaNodes) await setReplication(cluster, node, false);
  const names = replicaNodes.map((n) => `'${n}'`).join(', ');
  let state = '';
  await waitFor(
    30_000,
    50,
    async () => {
      const senders = Number((await query<{ n: string }>(cluster, primaryNode, `SELECT count(*)::text AS n FROM pg_stat_replication WHERE application_name IN (${names})`))[0]!.n);
      const behind: string[] = [];
      const receiving: string[] = [];
      for (const node of replicaNodes) {
        // pg_stat_wal_receiver has a row while the standby's WAL receiver runs: the cut holds only once it is gone
        const [r] = await query<{ done: boolean; receiver: boolean }>(
          cluster,
          node,
          'SELECT pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn() AS done, EXISTS (SELECT 1 FROM pg_stat_wal_receiver) AS receiver',
        );
        if (!r?.done) behind.push(node);
        if (r?.receiver !== false) receiving.push(node);
      }
      state = `${senders} WAL sender(s) of them left on ${primaryNode}; still receiving: ${receiving.join(', ') || 'none'}; still replaying: ${behind.join(', ') || 'none'}`;
      return senders === 0 && receiving.length === 0 && behind.length === 0;
    },
    () => `the replicas ${replicaNodes.join(', ')} were not cut off from ${primaryNode} within 30 s: ${state}`,
  );
}

/** The replica's node streams from the primary's (its WAL receiver's application_name is its node id). */
async function streamsFrom(cluster: LocalCluster, primaryNode: string, replicaNode: string): Promise<boolean> {
  const rows = await query<{ n: string }>(cluster, primaryNode, `SELECT count(*)::text AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name = '${replicaNode}'`);
  return Number(rows[0]!.n) > 0;
}

/** Ids of the rows on the first replica (the replicas were cut off together): what is not there is on the old primary only. */
async function idsOnReplica(cluster: LocalCluster, nodes: Record<string, string>, database: string): Promise<Set<string>> {
  const replica = Object.values(nodes)[1]!;
  return new Set((await query<{ id: string }>(cluster, replica, `SELECT id FROM ${TABLE}`, database)).map((r) => r.id));
}

/**
 * Waits (bounded) until the worker's agent has committed on the primary two batches the (cut-off) replicas do not
 * have: the first is then marked as synced in its buffer, with a marker outside the history the promotion keeps.
 */
async function syncedBeyondReplicas(cluster: LocalCluster, nodes: Record<string, string>, database: string, worker: LoadWorkerSpec, primaryId: string): Promise<void> {
  const [primary, replica] = Object.values(nodes) as [string, string];
  const count = async (node: string) => Number((await query<{ n: string }>(cluster, node, `SELECT count(*)::text AS n FROM ${TABLE} WHERE worker = '${worker.workerId}'`, database))[0]!.n);
  let first: number | undefined;
  await waitFor(
    60_000,
    100,
    async () => {
      const [onPrimary, onReplica] = [await count(primary), await count(replica)];
      if (onPrimary <= onReplica) return false;
      first ??= onPrimary;
      return onPrimary > first;
    },
    () => `${worker.workerId}'s agent did not sync two batches beyond the replicas to ${primaryId} within 60 s of their cut-off${agentLogTail(worker)}`,
  );
}

/** An instance's PingStatus as a caller of DescribeInstanceInformation sees it (null: not listed). */
async function pingStatusOf(instanceId: string, region: string): Promise<string | null> {
  const out = await new SSMClient({ region }).send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] }));
  return out.InstanceInformationList?.find((i) => i.InstanceId === instanceId)?.PingStatus ?? null;
}

interface Confirmation {
  readonly epoch: string | null;
  readonly at: string | null;
  readonly rowsResent: number | null;
  readonly waitMs: number;
  readonly error?: string;
}

/** Waits (bounded) until the worker confirmed `epoch` in rds_failover.worker_epochs on the new primary. */
async function awaitConfirmation(cluster: LocalCluster, node: string | undefined, database: string, worker: LoadWorkerSpec, epoch: string | undefined, timeoutMs: number): Promise<Confirmation> {
  const started = Date.now();
  if (!node || !epoch) return { epoch: null, at: null, rowsResent: null, waitMs: 0, error: `${worker.workerId} cannot confirm: the execution promoted nothing or recorded no epoch` };
  let newest: { epoch: string; confirmed_at: Date; rows_resent: string } | undefined;
  let lastError = '';
  while (Date.now() - started <= timeoutMs) {
    try {
      const rows = await query<{ epoch: string; confirmed_at: Date; rows_resent: string }>(
        cluster,
        node,
        `SELECT epoch::text AS epoch, confirmed_at, rows_resent::text AS rows_resent FROM rds_failover.worker_epochs WHERE worker_id = '${worker.workerId}' ORDER BY confirmed_at DESC`,
        database,
      );
      const mine = rows.find((r) => r.epoch === epoch);
      if (mine) return { epoch, at: mine.confirmed_at.toISOString(), rowsResent: Number(mine.rows_resent), waitMs: Date.now() - started };
      newest = rows[0];
    } catch (error) {
      lastError = (error as Error).message;
    }
    await sleep(250);
  }
  const seen = newest ? `its newest confirmation there is of ${newest.epoch}` : `it has no confirmation there${lastError ? ` (last query error: ${lastError})` : ''}`;
  return {
    epoch: newest?.epoch ?? null,
    at: newest?.confirmed_at.toISOString() ?? null,
    rowsResent: newest ? Number(newest.rows_resent) : null,
    waitMs: Date.now() - started,
    error: `${worker.workerId} did not confirm epoch ${epoch} in rds_failover.worker_epochs on the new primary within ${Math.round(timeoutMs / 1000)} s of its agent's start: ${seen}${agentLogTail(worker)}`,
  };
}

/** Polls `check` until true; past `timeoutMs` throws with `problem()`. */
async function waitFor(timeoutMs: number, everyMs: number, check: () => Promise<boolean>, problem: () => string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(problem());
    await sleep(everyMs);
  }
}

/** The last lines of a worker agent's log, to say why it did not do what was awaited. */
function agentLogTail(worker: LoadWorkerSpec): string {
  const file = agentLogPath(worker);
  return existsSync(file) ? `; the end of its agent's log (${file}): ${logTail(file, 5).split('\n').join(' | ').slice(-1500)}` : '';
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
