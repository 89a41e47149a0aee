import { describe, expect, it } from 'vitest';
import {
  ancestry,
  compareEpochs,
  descendsFrom,
  epochIdFor,
  forkLsnFor,
  headOf,
  historyOf,
  isEpochId,
  isInHistory,
  mergeEpochs,
  newestEpoch,
  nextGeneration,
  type Epoch,
} from '../../../src/core/lineage.js';

let n = 0;
function epoch(parent: Epoch | null, forkLsn: string | null, timelineId: number, generation: number, createdAt = '2026-12-06T00:00:00.000Z'): Epoch {
  n += 1;
  return { id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, parentId: parent?.id ?? null, generation, forkLsn, timelineId, nodeId: `pg-${n}`, executionId: null, createdAt };
}
const at = (e: Epoch, lsn: bigint) => ({ epochId: e.id, lsn });

describe('lineage', () => {
  // The original primary (root, timeline 1); pg-1 promoted at 0/500 (timeline 2); then, after pg-1 died, the stale
  // replica pg-2 still on the root's history promoted at 0/300: ALSO timeline 2, a different history.
  const root = epoch(null, null, 1, 1);
  const first = epoch(root, '0/500', 2, 2, '2026-12-06T00:01:00.000Z');
  const sibling = epoch(root, '0/300', 2, 3, '2026-12-06T00:02:00.000Z');
  const all = [root, first, sibling];

  it('two sibling epochs with the same timeline number are different histories', () => {
    const underFirst = historyOf(all, first.id);
    const underSibling = historyOf(all, sibling.id);
    expect(underFirst).toEqual([
      { epochId: first.id, maxLsn: null },
      { epochId: root.id, maxLsn: 0x500n },
    ]);
    expect(underSibling).toEqual([
      { epochId: sibling.id, maxLsn: null },
      { epochId: root.id, maxLsn: 0x300n },
    ]);
    // what the workers synced on the first promoted primary is not in the sibling's history: it is re-sent
    expect(isInHistory(at(first, 0x900n), underSibling)).toBe(false);
    expect(isInHistory(at(root, 0x400n), underFirst)).toBe(true);
    expect(isInHistory(at(root, 0x400n), underSibling)).toBe(false);
    expect(isInHistory(at(root, 0x300n), underSibling)).toBe(true);
    // the newest is the later promotion, whatever the timeline says
    expect(newestEpoch(all)?.id).toBe(sibling.id);
    expect(descendsFrom(all, sibling.id, first.id)).toBe(false);
    expect(descendsFrom(all, sibling.id, root.id)).toBe(true);
  });

  it('a chain of three failovers bounds each ancestor by the smallest fork below it', () => {
    const a = epoch(null, null, 1, 1);
    const b = epoch(a, '0/1000', 2, 2);
    const c = epoch(b, '0/800', 3, 3); // c forked from b below where b forked from a: a is bounded by b's fork
    const d = epoch(c, '0/3000', 4, 4);
    const chain = [d, c, a, b];
    expect(ancestry(chain, d.id).map((e) => e.id)).toEqual([d.id, c.id, b.id, a.id]);
    expect(historyOf(chain, d.id)).toEqual([
      { epochId: d.id, maxLsn: null },
      { epochId: c.id, maxLsn: 0x3000n },
      { epochId: b.id, maxLsn: 0x800n },
      { epochId: a.id, maxLsn: 0x800n },
    ]);
    // prune's bound on the head (what every replica replayed) also bounds the ancestors
    expect(historyOf(chain, d.id, 0x700n).map((s) => s.maxLsn)).toEqual([0x700n, 0x700n, 0x700n, 0x700n]);
    expect(headOf(chain, 'test').id).toBe(d.id);
    expect(nextGeneration(chain)).toBe(5);
  });

  it('a switchover is an epoch like any other: the old primary fenced at lag 0 keeps everything up to the fork', () => {
    const a = epoch(null, null, 1, 1);
    const b = epoch(a, '0/2000', 2, 2); // the candidate replayed everything: fork == the fenced primary's last LSN
    const history = historyOf([a, b], b.id);
    expect(isInHistory(at(a, 0x2000n), history)).toBe(true);
    expect(isInHistory(at(a, 0x2001n), history)).toBe(false);
  });

  it('an unknown fork point keeps nothing of the parent; an unknown epoch is never in a history', () => {
    const a = epoch(null, null, 1, 1);
    const b = epoch(a, null, 2, 2);
    expect(historyOf([a, b], b.id)).toEqual([{ epochId: b.id, maxLsn: null }]);
    expect(isInHistory({ epochId: null, lsn: 1n }, historyOf([a, b], b.id))).toBe(false);
    expect(historyOf([], b.id)).toEqual([]);
  });

  it('orders epochs by generation, then creation time, then id', () => {
    const x = epoch(null, null, 1, 2, '2026-12-06T00:00:00.000Z');
    const y = epoch(null, null, 1, 2, '2026-12-06T00:00:01.000Z');
    const z = epoch(null, null, 1, 1, '2026-12-07T00:00:00.000Z');
    expect([z, x, y].sort(compareEpochs).map((e) => e.id)).toEqual([y.id, x.id, z.id]);
    expect(newestEpoch([])).toBeUndefined();
  });

  it('headOf refuses an empty table and one that is not a single chain', () => {
    expect(() => headOf([], 'pg-9')).toThrow('pg-9: rds_failover.lineage is empty (no root epoch)');
    expect(() => headOf(all, 'pg-9')).toThrow(/is not one chain \(2 newest epochs/);
  });

  it('forkLsnFor keeps the candidate epoch up to its replay position, lowered by any known sibling fork, or none across a timeline switch', () => {
    expect(forkLsnFor([root], root, '0/800', 1)).toBe('0/800');
    expect(forkLsnFor(all, root, '0/800', 1)).toBe('0/300');
    expect(forkLsnFor([root, epoch(root, null, 2, 2)], root, '0/800', 1)).toBeNull();
    // a replica already on timeline 2 whose lineage still says root: it replayed a promotion it has no epoch of
    expect(forkLsnFor([root], root, '0/800', 2)).toBeNull();
    // a cut-off standby reporting its last restartpoint's older timeline: its epoch says where it is
    expect(forkLsnFor([first], first, '0/900', 1)).toBe('0/900');
  });

  it('names the epoch of a run the same way every time, as a UUID', () => {
    const id = epochIdFor('orders/exec-1');
    expect(isEpochId(id)).toBe(true);
    expect(epochIdFor('orders/exec-1')).toBe(id);
    expect(epochIdFor('orders/exec-2')).not.toBe(id);
    expect(isEpochId('not-a-uuid')).toBe(false);
  });

  it('merges lists by id, the first occurrence winning', () => {
    const changed = { ...root, nodeId: 'elsewhere' };
    expect(mergeEpochs([root], [changed, first]).map((e) => e.nodeId)).toEqual([root.nodeId, first.nodeId]);
  });
});
