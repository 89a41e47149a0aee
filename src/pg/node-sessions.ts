import type pg from 'pg';

/**
 * Database sessions kept while one runbook action runs (`within`): the session a probe opened to a node serves
 * that node's lineage reads and writes in the same action. Each connection is a TCP + SCRAM (+ TLS on RDS)
 * handshake, 15-60 ms measured here, and recordEpoch probed, read and wrote its node over three, on the failover's
 * critical path. A probe still always connects (reachability means a new session can be opened now); nothing
 * is kept from one action to the next, and outside `within` nothing is kept at all.
 */
export class NodeSessions {
  private kept: Map<string, pg.Client> | null = null;

  /** Runs one action; the sessions kept meanwhile are closed when it ends. */
  async within<T>(run: () => Promise<T>): Promise<T> {
    if (this.kept !== null) return run();
    const kept = new Map<string, pg.Client>();
    this.kept = kept;
    try {
      return await run();
    } finally {
      this.kept = null;
      await Promise.all([...kept.values()].map((c) => c.end().catch(() => undefined)));
    }
  }

  /** Keeps a connected session to `nodeId` for the rest of the action; false outside one (the caller closes it). */
  keep(nodeId: string, client: pg.Client): boolean {
    if (this.kept === null) return false;
    const previous = this.kept.get(nodeId);
    this.kept.set(nodeId, client);
    if (previous !== undefined && previous !== client) void previous.end().catch(() => undefined);
    return true;
  }

  /**
   * Runs `fn` on the session kept for `nodeId`, or returns `unkept` when there is none. A kept session that fails
   * is closed and `fn` runs on a fresh one (`fresh`): every use here is a read or an idempotent write.
   */
  async use<T>(nodeId: string, fn: (client: pg.Client) => Promise<T>, fresh: () => Promise<T>): Promise<T> {
    const client = this.kept?.get(nodeId);
    if (client === undefined) return fresh();
    try {
      return await fn(client);
    } catch {
      if (this.kept?.get(nodeId) === client) this.kept.delete(nodeId);
      await client.end().catch(() => undefined);
      return fresh();
    }
  }
}
