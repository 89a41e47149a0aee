/**
 * In-memory ports for runbook step tests: a simulated cluster whose probe, fence, promote and repoint act on
 * one shared model, so steps are checked against behaviour (who is writable, which timeline) not call lists.
 */
import type { Epoch } from '../../../src/core/lineage.js';
import { compareLsn, formatLsn, parseLsn, type Lsn } from '../../../src/core/lsn.js';
import type { RunbookPorts } from '../../../src/core/runbook/env.js';
import type { ClusterControl, FenceOptions, FenceResult, OperationStatus, Topology } from '../../../src/ports/cluster-control.js';
import type { Clock } from '../../../src/ports/clock.js';
import type { DatabaseProbe, NodeProbe } from '../../../src/ports/database-probe.js';
import type { FailoverLock, LockResult } from '../../../src/ports/failover-lock.js';
import type { LineageStore, WorkerConfirmation } from '../../../src/ports/lineage-store.js';
import type { Notification, Notifier } from '../../../src/ports/notifier.js';
import type { RunbookJournal, RunbookJournalEntry } from '../../../src/ports/runbook-journal.js';
import type { DrainRequest, DrainStatus, WorkerControl, WorkerRef } from '../../../src/ports/worker-control.js';

export class FakeClock implements Clock {
  constructor(public t = Date.parse('2024-01-01T00:00:00.000Z')) {}
  now(): number {
    return this.t;
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

export interface SimNode {
  id: string;
  role: 'primary' | 'replica';
  up: boolean;
  inRecovery: boolean;
  timelineId: number;
  /** Primary: pg_current_wal_lsn; replica: replay LSN. */
  lsn: Lsn;
  readOnly: boolean;
  isolated: boolean;
  noFailover?: boolean;
  priority?: number;
  /** Replica: bytes replayed per probe while the primary is alive (switchover catch-up). */
  catchUpPerProbe?: number;
  /** promotionStatus calls before a promotion reports done. */
  promotionPolls?: number;
  rebuiltFrom?: string;
  /** The node's lineage table (its own chain of epochs); every node starts with the cluster's root. */
  epochs?: Epoch[];
}

/** The cluster's first epoch in every simulated cluster. */
export const ROOT_EPOCH: Epoch = {
  id: '00000000-0000-4000-8000-000000000001',
  parentId: null,
  generation: 1,
  forkLsn: null,
  timelineId: 1,
  nodeId: 'pg-0',
  executionId: null,
  createdAt: '2023-12-31T00:00:00.000Z',
};

export class SimCluster implements ClusterControl, DatabaseProbe, LineageStore {
  readonly calls: string[] = [];
  promotions = 0;
  failPromote?: string;
  /** Errors thrown once by the named method (e.g. transient throttling). */
  readonly throwOnce = new Map<string, Error>();
  /** Called at the start of promote (tests assert what was durable by then). */
  onPromote?: (nodeId: string) => Promise<void> | void;
  rebuildPolls = 1;
  canIsolate = true;
  /** Rebuilt standbys keep reporting their old timeline (a disconnected standby reports its last restartpoint's). */
  staleStandbyTimeline = false;
  private pendingPolls = new Map<string, number>();

  /** rds_failover.worker_epochs: shared by every node here (replication is not simulated for it). */
  readonly confirmed: WorkerConfirmation[] = [];

  constructor(
    public nodes: SimNode[],
    public writerId = 'pg-0',
  ) {
    for (const n of nodes) n.epochs ??= [ROOT_EPOCH];
  }

  async read(nodeId: string): Promise<Epoch[] | null> {
    const n = this.get(nodeId);
    if (!n.up || n.isolated) throw new Error(`${nodeId}: connection refused`);
    return structuredClone(n.epochs ?? []);
  }

  async record(nodeId: string, epoch: Omit<Epoch, 'createdAt'>): Promise<Epoch> {
    this.calls.push(`record-epoch:${nodeId}`);
    const n = this.get(nodeId);
    if (!n.up || n.inRecovery) throw new Error(`${nodeId} cannot record an epoch (down or in recovery)`);
    const existing = n.epochs!.find((e) => e.id === epoch.id);
    if (existing) return existing;
    const stored = { ...epoch, createdAt: new Date(Date.parse('2024-01-01T00:00:00.000Z') + n.epochs!.length * 1000).toISOString() };
    n.epochs!.push(stored);
    return stored;
  }

  async confirmations(): Promise<WorkerConfirmation[]> {
    return structuredClone(this.confirmed);
  }

  confirm(workerId: string, epochId: string, rowsResent = 0): void {
    const i = this.confirmed.findIndex((c) => c.workerId === workerId);
    const c = { workerId, epochId, rowsResent, confirmedAt: new Date(0).toISOString() };
    if (i >= 0) this.confirmed[i] = c;
    else this.confirmed.push(c);
  }

  get(id: string): SimNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  private maybeThrow(method: string): void {
    const e = this.throwOnce.get(method);
    if (e) {
      this.throwOnce.delete(method);
      throw e;
    }
  }

  async topology(): Promise<Topology> {
    this.maybeThrow('topology');
    return {
      clusterId: 'c1',
      writerId: this.writerId,
      nodes: this.nodes.map((n) => ({
        id: n.id,
        role: n.role,
        endpoint: `${n.id}:5432`,
        priority: n.priority ?? 100,
        noFailover: n.noFailover ?? false,
      })),
    };
  }

  async probe(nodeId: string): Promise<NodeProbe> {
    this.maybeThrow('probe');
    const n = this.get(nodeId);
    const sampledAt = new Date(0).toISOString();
    if (!n.up || n.isolated) return { nodeId, sampledAt, reachable: false, error: n.up ? 'isolated' : 'connection refused' };
    if (n.inRecovery) {
      const source = this.nodes.find((x) => x.id === this.writerId);
      if (n.catchUpPerProbe && source?.up && !source.inRecovery && compareLsn(n.lsn, source.lsn) < 0) {
        const next = parseLsn(n.lsn) + BigInt(n.catchUpPerProbe);
        n.lsn = formatLsn(next > parseLsn(source.lsn) ? parseLsn(source.lsn) : next);
      }
    }
    return {
      nodeId,
      sampledAt,
      reachable: true,
      inRecovery: n.inRecovery,
      timelineId: n.timelineId,
      currentLsn: n.inRecovery ? null : n.lsn,
      receiveLsn: n.inRecovery ? n.lsn : null,
      replayLsn: n.inRecovery ? n.lsn : null,
      replayPaused: false,
      lastReplayAgeSeconds: null,
      acceptsWrites: !n.inRecovery && !n.readOnly,
      replication: this.nodes.filter((r) => r.inRecovery && r.up && n.id === this.writerId).map((r) => ({
        applicationName: r.id,
        clientAddr: null,
        state: 'streaming',
        sentLsn: r.lsn,
        writeLsn: r.lsn,
        flushLsn: r.lsn,
        replayLsn: r.lsn,
        writeLagSeconds: 0,
        flushLagSeconds: 0,
        replayLagSeconds: 0,
        replayLagBytes: 0,
        syncState: 'async',
      })),
    };
  }

  async fence(nodeId: string, options?: FenceOptions): Promise<FenceResult> {
    this.calls.push(options?.writesOnly ? `fence-writes:${nodeId}` : `fence:${nodeId}`);
    this.maybeThrow('fence');
    const n = this.get(nodeId);
    const answers = n.up && !n.isolated;
    if (answers) n.readOnly = true;
    if (!options?.writesOnly && this.canIsolate) n.isolated = true;
    return {
      isolated: n.isolated,
      readOnly: answers ? true : 'unreachable',
      sessionsTerminated: answers ? 3 : 0,
      ...(answers ? { lsn: n.lsn } : {}),
      ...(!n.isolated && !options?.writesOnly ? { detail: 'cannot modify a failed instance' } : {}),
    };
  }

  /** What the platform reports per node (RDS DBInstanceStatus); unset = nothing manages the nodes. */
  platformStatus: Record<string, string> = {};

  async managedState(nodeId: string): Promise<{ status: string; recovering: boolean }> {
    const status = this.platformStatus[nodeId] ?? 'available';
    return { status, recovering: status === 'failing-over' || status === 'rebooting' };
  }

  async unfence(nodeId: string): Promise<void> {
    this.calls.push(`unfence:${nodeId}`);
    this.get(nodeId).readOnly = false;
  }

  async promote(nodeId: string): Promise<void> {
    this.calls.push(`promote:${nodeId}`);
    await this.onPromote?.(nodeId);
    this.maybeThrow('promote');
    if (this.failPromote) throw new Error(this.failPromote);
    const n = this.get(nodeId);
    if (!n.inRecovery) return; // idempotent: already promoted
    if (this.nodes.some((x) => x.id !== nodeId && x.up && !x.isolated && !x.inRecovery && !x.readOnly)) {
      throw new Error(`split brain: promoting ${nodeId} while another node accepts writes`);
    }
    n.inRecovery = false;
    n.role = 'primary';
    n.timelineId += 1;
    this.promotions += 1;
    this.pendingPolls.set(nodeId, n.promotionPolls ?? 0);
  }

  async promotionStatus(nodeId: string): Promise<OperationStatus> {
    const n = this.get(nodeId);
    if (n.inRecovery) return { state: 'pending', detail: 'not promoted yet' };
    const left = this.pendingPolls.get(nodeId) ?? 0;
    if (left > 0) {
      this.pendingPolls.set(nodeId, left - 1);
      return { state: 'pending', detail: 'rebooting' };
    }
    return { state: 'done' };
  }

  async repointWriter(nodeId: string): Promise<void> {
    this.calls.push(`repoint:${nodeId}`);
    this.maybeThrow('repointWriter');
    this.writerId = nodeId;
  }

  async rebuildReplica(replicaId: string, primaryId: string): Promise<{ nodeId: string }> {
    this.calls.push(`rebuild:${replicaId}<-${primaryId}`);
    const n = this.get(replicaId);
    n.rebuiltFrom = primaryId;
    n.epochs = structuredClone(this.get(primaryId).epochs);
    if (!this.staleStandbyTimeline) n.timelineId = this.get(primaryId).timelineId;
    this.pendingPolls.set(`rebuild:${replicaId}`, this.rebuildPolls);
    return { nodeId: replicaId };
  }

  async rebuildStatus(nodeId: string): Promise<OperationStatus> {
    const left = this.pendingPolls.get(`rebuild:${nodeId}`) ?? 0;
    if (left > 0) {
      this.pendingPolls.set(`rebuild:${nodeId}`, left - 1);
      return { state: 'pending' };
    }
    return { state: 'done' };
  }
}

export function threeNodeCluster(): SimCluster {
  return new SimCluster([
    { id: 'pg-0', role: 'primary', up: false, inRecovery: false, timelineId: 1, lsn: '0/3000400', readOnly: false, isolated: false },
    { id: 'pg-1', role: 'replica', up: true, inRecovery: true, timelineId: 1, lsn: '0/3000300', readOnly: false, isolated: false },
    { id: 'pg-2', role: 'replica', up: true, inRecovery: true, timelineId: 1, lsn: '0/3000200', readOnly: false, isolated: false },
  ]);
}

export class FakeWorkers implements WorkerControl {
  readonly requests: { workerId: string; request: DrainRequest }[] = [];
  /** A finished drain confirms its epoch here (wired by fakes()); workers in `unconfirming` never do. */
  onDone?: (workerId: string, request: DrainRequest) => void;
  readonly unconfirming = new Set<string>();
  /** Workers a drain cannot be delivered to (down, like an instance SSM does not see online). */
  readonly down = new Set<string>();
  /** Per worker: statuses returned by successive drainStatus calls for each started drain (last repeats). */
  script = new Map<string, DrainStatus[]>();
  private jobs = new Map<string, { workerId: string; polls: number; request: DrainRequest }>();

  constructor(public workers: string[] = ['w-1', 'w-2']) {}

  async listWorkers(): Promise<readonly WorkerRef[]> {
    return this.workers.map((id) => ({ id }));
  }

  async startDrain(workerId: string, request: DrainRequest): Promise<string> {
    if (this.down.has(workerId)) throw new Error(`worker ${workerId} is down`);
    this.requests.push({ workerId, request });
    const handle = `${workerId}#${this.requests.length}`;
    this.jobs.set(handle, { workerId, polls: 0, request });
    return handle;
  }

  async drainStatus(workerId: string, handle: string): Promise<DrainStatus> {
    const job = this.jobs.get(handle);
    if (!job || job.workerId !== workerId) return { state: 'failed', error: `unknown drain ${handle}` };
    const epochId = job.request.epochId ?? 'unknown';
    const script = this.script.get(workerId) ?? [{ state: 'done', summary: { epochId, examined: 10, resent: 4, inserted: 2, alreadyPresent: 2, remainingPending: 0, rejected: 0 } }];
    const status = script[Math.min(job.polls, script.length - 1)]!;
    job.polls += 1;
    if (status.state === 'failed') this.script.set(workerId, script.slice(1).length ? script.slice(1) : script);
    if (status.state === 'done' && !this.unconfirming.has(workerId)) this.onDone?.(workerId, job.request);
    return status;
  }
}

export class MemoryNotifier implements Notifier {
  readonly sent: Notification[] = [];
  failing = false;
  async notify(n: Notification): Promise<void> {
    if (this.failing) throw new Error('slack is down');
    this.sent.push(n);
  }
}

export class MemoryLock implements FailoverLock {
  held = new Map<string, { owner: string; since: string; expiresAt: number }>();
  constructor(private clock: Clock) {}
  async acquire(clusterId: string, owner: string, ttlSeconds: number): Promise<LockResult> {
    const h = this.held.get(clusterId);
    const now = this.clock.now();
    if (h && h.owner !== owner && h.expiresAt > now) return { acquired: false, heldBy: h.owner, since: h.since };
    const since = h && h.owner === owner ? h.since : new Date(now).toISOString();
    this.held.set(clusterId, { owner, since, expiresAt: now + ttlSeconds * 1000 });
    return { acquired: true };
  }
  async release(clusterId: string, owner: string): Promise<void> {
    if (this.held.get(clusterId)?.owner === owner) this.held.delete(clusterId);
  }
  async holder(clusterId: string) {
    const h = this.held.get(clusterId);
    return h && h.expiresAt > this.clock.now() ? { heldBy: h.owner, since: h.since } : null;
  }
}

export class MemoryJournal implements RunbookJournal {
  entry: RunbookJournalEntry | null = null;
  saves = 0;
  async load(): Promise<RunbookJournalEntry | null> {
    return this.entry ? structuredClone(this.entry) : null;
  }
  async save(entry: RunbookJournalEntry): Promise<void> {
    this.saves += 1;
    this.entry = structuredClone(entry);
  }
}

export interface Fakes {
  clock: FakeClock;
  cluster: SimCluster;
  workers: FakeWorkers;
  notifier: MemoryNotifier;
  lock: MemoryLock;
  journal: MemoryJournal;
  ports: RunbookPorts;
}

export function fakes(cluster = threeNodeCluster(), workers = new FakeWorkers()): Fakes {
  const clock = new FakeClock();
  const notifier = new MemoryNotifier();
  const lock = new MemoryLock(clock);
  const journal = new MemoryJournal();
  workers.onDone = (workerId, request) => {
    if (request.epochId) cluster.confirm(workerId, request.epochId, 4);
  };
  return { clock, cluster, workers, notifier, lock, journal, ports: { cluster, probe: cluster, workers, lineage: cluster, notifier, lock, journal, clock } };
}
