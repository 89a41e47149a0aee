import type { Lsn } from '../core/lsn.js';

export type NodeRole = 'primary' | 'replica';

export interface ClusterNode {
  /** RDS DB instance identifier, or the local node id ('pg-0', 'pg-1', ...). */
  readonly id: string;
  readonly role: NodeRole;
  /** host:port clients use for this node. */
  readonly endpoint: string;
  /** Name this node has in the primary's pg_stat_replication (application_name); defaults to id. */
  readonly replicationName?: string;
  /** Lower wins among candidates with the same replay LSN. */
  readonly priority: number;
  /** Never promote this node (like Patroni's nofailover tag). */
  readonly noFailover: boolean;
}

export interface Topology {
  readonly clusterId: string;
  /** The node the writer endpoint points at now (Route 53 record / SSM parameter; locally the cluster's writer). */
  readonly writerId: string;
  readonly nodes: readonly ClusterNode[];
}

/** Where the new timeline forked from the old one: the promoted candidate's replay position before promotion. */
export interface ForkPoint {
  readonly timelineId: number;
  readonly lsn: Lsn;
}

export interface FenceResult {
  /** No client can open a new connection to the node (quarantine security group / local equivalent). */
  readonly isolated: boolean;
  /** The node answered and was set read-only; 'unreachable' when it did not answer. */
  readonly readOnly: boolean | 'unreachable';
  readonly sessionsTerminated: number;
  /** The node's WAL position read right after writes were fenced (pg_current_wal_lsn()); absent when it did not answer. */
  readonly lsn?: Lsn;
  /** Why isolation or read-only could not be achieved, for the operator. */
  readonly detail?: string;
}

export interface FenceOptions {
  /**
   * Only stop writes (read-only + terminate client sessions) and keep the node reachable, so replicas can
   * still stream from it: a switchover fences writes first and isolates after the candidate caught up.
   */
  readonly writesOnly?: boolean;
}

export type OperationStatus =
  | { readonly state: 'pending'; readonly detail?: string }
  | { readonly state: 'done'; readonly detail?: string }
  | { readonly state: 'failed'; readonly detail: string };

/**
 * What the failover runbook does to the database fleet. Every method is idempotent: calling it again
 * after a crash (or after it already took effect) must not do the thing twice.
 */
export interface ClusterControl {
  topology(): Promise<Topology>;
  /** Cut the node off from clients so it can never accept another write (no split brain). */
  fence(nodeId: string, options?: FenceOptions): Promise<FenceResult>;
  /**
   * Undo a writes-only fence (a switchover that failed before promotion gives the primary back its writes).
   * Optional: without it the failure notification tells the operator to do it by hand.
   */
  unfence?(nodeId: string): Promise<void>;
  /** Start promoting a replica; a no-op when it is already promoted or promoting. */
  promote(nodeId: string): Promise<void>;
  /** 'done' once the node is available and accepts writes. */
  promotionStatus(nodeId: string): Promise<OperationStatus>;
  /** Point the writer endpoint (DNS record + parameter) at the node. */
  repointWriter(nodeId: string): Promise<void>;
  /** Start (re)building a replica of `primaryId` in place of `replicaId`; returns the id of the replica that will exist. */
  rebuildReplica(replicaId: string, primaryId: string): Promise<{ readonly nodeId: string }>;
  /** 'done' once the rebuilt replica streams from the new primary. */
  rebuildStatus(nodeId: string): Promise<OperationStatus>;
  /**
   * What the platform itself is doing to the node (RDS: DBInstanceStatus). `recovering` means the platform is
   * bringing it back by itself (Multi-AZ failover, reboot, maintenance...): a node that does not answer then is not
   * dead, and promoting a replica would leave two primaries once it returns. Absent where nothing manages the nodes.
   */
  managedState?(nodeId: string): Promise<{ readonly status: string; readonly recovering: boolean }>;
}
