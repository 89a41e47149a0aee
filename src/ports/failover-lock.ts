export type LockResult = { readonly acquired: true } | { readonly acquired: false; readonly heldBy: string; readonly since: string };

/** Only one failover at a time per cluster. Re-acquiring with the same owner succeeds (resume after a crash). */
export interface FailoverLock {
  acquire(clusterId: string, owner: string, ttlSeconds: number): Promise<LockResult>;
  release(clusterId: string, owner: string): Promise<void>;
  /** Who holds the lock now, without taking it (dry runs and `plan` report it); null when free or expired. */
  holder?(clusterId: string): Promise<{ readonly heldBy: string; readonly since: string } | null>;
}
