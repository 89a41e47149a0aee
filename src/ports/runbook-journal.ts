/**
 * Durable record of a failover in progress. The runbook saves its whole state after every step, and in
 * particular the chosen candidate and the fork point BEFORE it promotes: a re-run after a crash resumes the
 * same plan instead of re-planning against a topology it already changed (which could promote a second node
 * or lose the fork point).
 */
export type RunbookJournalStatus = 'in-progress' | 'failed' | 'succeeded';

export interface RunbookJournalEntry {
  readonly clusterId: string;
  /** The execution that wrote this entry (the lock owner). */
  readonly executionId: string;
  readonly status: RunbookJournalStatus;
  /** ISO-8601. */
  readonly updatedAt: string;
  /** The runbook state (src/core/runbook/state.ts), JSON-serialisable. */
  readonly state: unknown;
}

export interface RunbookJournal {
  /** The latest entry for the cluster, or null when no failover was ever journaled. */
  load(clusterId: string): Promise<RunbookJournalEntry | null>;
  /** Replaces the cluster's entry durably (returns only once it would survive a crash). */
  save(entry: RunbookJournalEntry): Promise<void>;
}
