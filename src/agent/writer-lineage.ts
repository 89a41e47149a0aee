/**
 * The agent's side of the lineage (src/core/lineage.ts): on every new writer session, learn the writer's epochs
 * and refuse a writer that is not on the newest epoch this buffer knows, before anything is sent to it.
 */
import { describeEpoch, headOf, type Epoch } from '../core/lineage.js';
import type { Outbox } from './outbox.js';
import type { PgSink } from './sink.js';

/**
 * A writer the buffer must not write to: on an older or sibling epoch (a zombie primary that stalled and came
 * back, a stale node the writer record still names), or writing on a timeline its newest epoch does not record
 * (promoted outside the runbook). Nothing was sent to it; the sync loop backs off and resolves the writer again.
 */
export class StaleWriterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StaleWriterError';
  }
}

/** The writer has no rds_failover.lineage: the buffer cannot tell its history from any other, so it sends nothing. */
export class LineageMissingError extends Error {
  constructor(writer: string) {
    super(
      `the writer ${writer} has no rds_failover.lineage table: the agent sends nothing to a database whose history it cannot identify. ` +
        'Create it once: the stack does it on deploy; otherwise `rds-failover-agent init-writer --writer <url of a role that may CREATE>` (docs/buffer.md, "Lineage")',
    );
    this.name = 'LineageMissingError';
  }
}

/**
 * Merges the writer's lineage into the buffer and returns the writer's epoch when it is the newest one the
 * buffer knows (after the merge: a writer on a newer epoch teaches it); throws StaleWriterError otherwise.
 */
export async function convergeOnWriter(sink: PgSink, outbox: Outbox, writer: string): Promise<Epoch> {
  const { epochs, timelineId } = await sink.lineage();
  if (epochs === null) throw new LineageMissingError(writer);
  const head = headOf(epochs, `writer ${writer}`);
  outbox.mergeLineage(epochs);
  const newest = outbox.lineageHead()!;
  if (newest.id !== head.id) {
    throw new StaleWriterError(
      `the writer ${writer} is on ${describeEpoch(head)}, but this buffer knows the newer ${describeEpoch(newest)}: ` +
        'it is a stale or zombie primary (the writer record may not point at the promoted node yet); nothing was sent to it',
    );
  }
  if (head.timelineId !== timelineId) {
    throw new StaleWriterError(
      `the writer ${writer} writes on timeline ${timelineId}, but its newest ${describeEpoch(head)} was recorded on timeline ${head.timelineId}: ` +
        'it was promoted outside the runbook (or the runbook has not recorded its epoch yet); nothing was sent to it (docs/runbook.md, "Lineage")',
    );
  }
  return head;
}
