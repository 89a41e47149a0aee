import { existsSync } from 'node:fs';
import { expect } from 'vitest';
import type { LocalCluster } from '../../src/local/local-cluster.js';
import { childPids, isAlive } from '../../src/local/processes.js';

/** Every PostgreSQL process a test's cluster ran (nodes get rebuilt and restarted), to check that none outlives it. */
export class ClusterProcesses {
  private readonly pids = new Set<number>();

  remember(cluster: LocalCluster): void {
    for (const node of cluster.nodes()) if (node.pid !== null) [node.pid, ...childPids(node.pid)].forEach((pid) => this.pids.add(pid));
  }

  alive(): number[] {
    return [...this.pids].filter(isAlive);
  }

  /** Stops the cluster and checks that nothing of it survives: no postgres process, no data directory. */
  async stopAndExpectNothingLeft(cluster: LocalCluster): Promise<void> {
    this.remember(cluster);
    await cluster.stop();
    expect(this.alive()).toEqual([]);
    expect(existsSync(cluster.baseDir)).toBe(false);
  }
}
