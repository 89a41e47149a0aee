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
}
