/** A stored document and the version it was stored with (optimistic concurrency). */
export interface VersionedState {
  readonly state: unknown;
  readonly version: number;
}

/** Thrown by `save` when someone else stored a newer version in the meantime. */
export class StateConflictError extends Error {
  constructor(clusterId: string, expectedVersion: number | null) {
    super(`alert state of cluster '${clusterId}' changed since version ${expectedVersion ?? '(none)'}: another monitor run saved it`);
    this.name = 'StateConflictError';
  }
}

/**
 * Keeps the lag monitor's state (hysteresis counters, what was last notified, messages still to send)
 * between runs. The store does not interpret the state.
 */
export interface AlertStateStore {
  load(clusterId: string): Promise<VersionedState | null>;
  /**
   * Stores `state` if the stored version still is `expectedVersion` (null = nothing stored yet); returns the
   * new version. Throws StateConflictError otherwise.
   */
  save(clusterId: string, state: unknown, expectedVersion: number | null): Promise<number>;
}
