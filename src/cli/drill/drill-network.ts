/**
 * The drill's network: a TCP proxy (src/local/tcp-proxy.ts) per node and per client class, so a fault can cut
 * any one path on loopback, without root:
 * - controller: the runbook and its monitor probe reach node N through `controller N`;
 * - workers: the agents reach the writer through `workers N` (their writer file names the proxy's port);
 * - replication: replica R's WAL receiver reaches its upstream through `replication R`.
 */
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { LocalCluster, ReplicationRoute } from '../../local/local-cluster.js';
import { TcpProxy, type CutMode } from '../../local/tcp-proxy.js';

export type ClientClass = 'controller' | 'workers' | 'replication';

export class DrillNetwork {
  private readonly proxies = new Map<string, TcpProxy>();
  private readonly upstreamPorts = new Map<string, number>();
  private cluster: LocalCluster | undefined;
  /** The writer file the workers read: the writer's URL with its workers-proxy port. */
  readonly workersWriterFile: string;

  private constructor(workDir: string) {
    this.workersWriterFile = path.join(workDir, 'writer.workers.url');
  }

  /** Proxies for nodes pg-0..pg-<replicas>; they forward once attach() gave them the cluster. */
  static async start(workDir: string, replicas: number): Promise<DrillNetwork> {
    const network = new DrillNetwork(workDir);
    try {
      for (let i = 0; i <= replicas; i++) {
        const node = `pg-${i}`;
        for (const cls of ['controller', 'workers'] as const) {
          network.proxies.set(key(cls, node), await TcpProxy.start({ name: `${cls} ${node}`, target: () => network.nodePort(node) }));
        }
        network.proxies.set(key('replication', node), await TcpProxy.start({ name: `replication ${node}`, target: () => network.upstreamPort(node) }));
      }
    } catch (error) {
      await network.close();
      throw error;
    }
    return network;
  }

  /** For LocalCluster.start: each replica streams from its upstream through its replication proxy. */
  readonly replicationRoute: ReplicationRoute = (upstream, replicaId) => {
    this.upstreamPorts.set(replicaId, upstream.port);
    return this.proxy('replication', replicaId).port;
  };

  attach(cluster: LocalCluster): void {
    this.cluster = cluster;
  }

  port(cls: ClientClass, nodeId: string): number {
    return this.proxy(cls, nodeId).port;
  }

  /** The cluster as the controller sees it: every connection it makes goes through the controller proxies. */
  controllerView(cluster: LocalCluster): LocalCluster {
    return cluster.routedVia((nodeId) => this.port('controller', nodeId));
  }

  /** Rewrites the workers' writer file (temp file + rename) for the cluster's writer. */
  publishWriter(cluster: LocalCluster): void {
    const url = new URL(cluster.connectionString(cluster.writerId()));
    url.port = String(this.port('workers', cluster.writerId()));
    const tmp = `${this.workersWriterFile}.${process.pid}.tmp`;
    writeFileSync(tmp, `${url.toString()}\n`, { mode: 0o600 });
    renameSync(tmp, this.workersWriterFile);
  }

  cut(cls: ClientClass, nodeId: string, mode: CutMode = 'drop'): void {
    this.proxy(cls, nodeId).cut(mode);
  }

  heal(cls: ClientClass, nodeId: string): void {
    this.proxy(cls, nodeId).heal();
  }

  async close(): Promise<void> {
    await Promise.all([...this.proxies.values()].map((p) => p.close()));
  }

  private proxy(cls: ClientClass, nodeId: string): TcpProxy {
    const proxy = this.proxies.get(key(cls, nodeId));
    if (!proxy) throw new Error(`no ${cls} proxy for '${nodeId}': the drill's network has nodes ${[...new Set([...this.proxies.keys()].map((k) => k.split(' ')[1]))].join(', ')}`);
    return proxy;
  }

  private nodePort(nodeId: string): number {
    const node = this.cluster?.nodes().find((n) => n.id === nodeId);
    if (!node) throw new Error(`${nodeId}: no such node (yet)`);
    return node.port;
  }

  private upstreamPort(replicaId: string): number {
    const port = this.upstreamPorts.get(replicaId);
    if (port === undefined) throw new Error(`${replicaId}: no upstream recorded`);
    return port;
  }
}

function key(cls: ClientClass, nodeId: string): string {
  return `${cls} ${nodeId}`;
}
