/**
 * Lineage: which histories of the cluster's data exist, and which one is current. Pure logic shared by the
 * worker agent (is a sync marker still part of the current history?), the runbook (which epoch a promotion
 * creates, where it forks) and the planner (is a candidate on the lost primary's history?).
 *
 * An **epoch** is one history of writes: the root one of the original primary, and one per promotion, recorded
 * on the new primary before the writer is repointed (rds_failover.lineage, replicated like any table). A child
 * epoch continues its parent's history up to `forkLsn` (what the promoted node had replayed) and nothing after.
 * PostgreSQL timeline numbers are not identities (two promotions of two replicas of one primary both make a
 * "timeline 2"); epochs are.
 *
 * A sync marker (epoch E, LSN l) says: the row was committed on E's history at or before l. It is in the history
 * of head epoch H when E is H (any l), or E is an ancestor of H and l <= the smallest fork LSN on the path from E
 * down to H. A child with an unknown fork LSN keeps nothing of its parent. Anything else is outside: the agent
 * re-sends it (inserts are idempotent, so over-sending is harmless) and never prunes it.
 */
import { createHash } from 'node:crypto';
import { formatLsn, parseLsn, type Lsn } from './lsn.js';

export interface Epoch {
  /** A UUID. */
  readonly id: string;
  /** null: a root (the cluster's first primary, or a history whose parent was never recorded). */
  readonly parentId: string | null;
  /** Orders epochs: a promotion's epoch gets one more than every epoch its runbook knew. */
  readonly generation: number;
  /** The parent's history is kept up to here; null: unknown, nothing of the parent is kept. */
  readonly forkLsn: Lsn | null;
  /** PostgreSQL timeline the epoch's node writes on. */
  readonly timelineId: number;
  readonly nodeId: string;
  /** The runbook execution that promoted the node (null for a root). */
  readonly executionId: string | null;
  /** ISO-8601. */
  readonly createdAt: string;
}

/** Rows marked on `epochId` at or below `maxLsn` (null: any LSN) are in the history. */
export interface HistorySpan {
  readonly epochId: string;
  readonly maxLsn: bigint | null;
}

export interface MarkerPosition {
  readonly epochId: string | null;
  readonly lsn: bigint;
}

/** Newer first: higher generation, then later creation, then the id (a total order every agent agrees on). */
export function compareEpochs(a: Epoch, b: Epoch): number {
  if (a.generation !== b.generation) return b.generation - a.generation;
  const at = Date.parse(b.createdAt) - Date.parse(a.createdAt);
  if (at !== 0) return at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The newest epoch known (the one every writer must be on), or undefined when none is known. */
export function newestEpoch(epochs: readonly Epoch[]): Epoch | undefined {
  return [...epochs].sort(compareEpochs)[0];
}

/**
 * The epoch a node is on: its lineage table holds its own chain of epochs (each node's history is linear), and
 * the head is the one no other row continues. Throws when the table is empty or is not one chain.
 */
export function headOf(epochs: readonly Epoch[], where: string): Epoch {
  const parents = new Set(epochs.map((e) => e.parentId));
  const leaves = epochs.filter((e) => !parents.has(e.id));
  if (leaves.length !== 1) {
    throw new Error(
      epochs.length === 0
        ? `${where}: rds_failover.lineage is empty (no root epoch): the lineage was never initialised (docs/buffer.md, "Lineage")`
        : `${where}: rds_failover.lineage is not one chain (${leaves.length} newest epochs: ${leaves.map((e) => e.id).join(', ')})`,
    );
  }
  return leaves[0]!;
}

/** The epoch and its recorded ancestors, newest first (stops at a root or a parent not in `epochs`). */
export function ancestry(epochs: readonly Epoch[], epochId: string): Epoch[] {
  const byId = new Map(epochs.map((e) => [e.id, e]));
  const chain: Epoch[] = [];
  for (let e = byId.get(epochId); e !== undefined && !chain.includes(e); e = e.parentId === null ? undefined : byId.get(e.parentId)) chain.push(e);
  return chain;
}

/** True when `ancestorId` is `epochId` or one of its recorded ancestors. */
export function descendsFrom(epochs: readonly Epoch[], epochId: string, ancestorId: string): boolean {
  return ancestry(epochs, epochId).some((e) => e.id === ancestorId);
}

/** Which markers are in the history of `headId`: the head itself (any LSN), then each ancestor up to the fork below it. */
export function historyOf(epochs: readonly Epoch[], headId: string, headMaxLsn: bigint | null = null): HistorySpan[] {
  const chain = ancestry(epochs, headId);
  const spans: HistorySpan[] = [];
  let bound = headMaxLsn;
  for (const epoch of chain) {
    spans.push({ epochId: epoch.id, maxLsn: bound });
    // The parent (next in the chain) is kept only up to where this epoch forked from it.
    if (epoch.forkLsn === null) break;
    const fork = parseLsn(epoch.forkLsn);
    bound = bound === null || fork < bound ? fork : bound;
  }
  return spans;
}

export function isInHistory(marker: MarkerPosition, spans: readonly HistorySpan[]): boolean {
  return spans.some((s) => s.epochId === marker.epochId && (s.maxLsn === null || marker.lsn <= s.maxLsn));
}

/**
 * Where a promotion of a node on `head` forks from it. The node replayed up to `replayLsn` on `timelineId`:
 * - on a newer timeline than the head's, it replayed WAL of a promotion whose epoch it has not replayed yet:
 *   where that history left the head's is unknown, so nothing of the head is kept (null). (An older timeline is a
 *   standby cut off from its upstream reporting its last restartpoint's: the head's own timeline is the truth.)
 * - otherwise its replay position, lowered to the fork of any other known child of the head (a sibling history
 *   the node may have replayed the start of; keeping less only re-sends more).
 */
export function forkLsnFor(known: readonly Epoch[], head: Epoch, replayLsn: Lsn, timelineId: number): Lsn | null {
  if (timelineId > head.timelineId) return null;
  let bound = parseLsn(replayLsn);
  for (const child of known) {
    if (child.parentId !== head.id) continue;
    if (child.forkLsn === null) return null;
    const fork = parseLsn(child.forkLsn);
    if (fork < bound) bound = fork;
  }
  return formatLsn(bound);
}

/** The generation of the next epoch: one more than every epoch known. */
export function nextGeneration(known: readonly Epoch[]): number {
  return Math.max(0, ...known.map((e) => e.generation)) + 1;
}

/** Union by id (the first seen wins: an epoch never changes once recorded). */
export function mergeEpochs(...lists: readonly (readonly Epoch[])[]): Epoch[] {
  const byId = new Map<string, Epoch>();
  for (const list of lists) for (const e of list) if (!byId.has(e.id)) byId.set(e.id, e);
  return [...byId.values()];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isEpochId(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/**
 * A UUID derived from `seed` (name-based, like UUID v5 but SHA-256): the runbook names the epoch of its promotion
 * from its execution, so a retried or resumed step records the same epoch instead of a second one.
 */
export function epochIdFor(seed: string): string {
  const hex = createHash('sha256').update(`rds-failover epoch/${seed}`).digest('hex');
  const variant = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** A short form for messages (the first 8 hex digits and the generation). */
export function describeEpoch(epoch: Pick<Epoch, 'id' | 'generation' | 'nodeId'>): string {
  return `epoch ${epoch.id.slice(0, 8)} (generation ${epoch.generation}, ${epoch.nodeId})`;
}
