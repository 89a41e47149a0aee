/**
 * A TCP proxy on loopback that can be cut and healed: the drill's network partitions without root (no
 * iptables, no network namespaces). Clients connect to the proxy's port instead of the node's; `cut` makes
 * the path behave like a partition, `heal` gives it back.
 *
 * - `cut('drop')` (a partition: packets are lost): nothing is forwarded any more in either direction and new
 *   connections are accepted but get no answer, so clients see timeouts, as across a real partition. What was
 *   held is delivered on `heal` (TCP retransmits once the path is back), unless a side gave up meanwhile.
 * - `cut('reset')` (a host that answers with RST): every connection is closed at once and new ones are
 *   closed as soon as they arrive, so clients see "connection reset" / "refused" right away.
 */
import net from 'node:net';
import { LOOPBACK } from './ports.js';

export type CutMode = 'drop' | 'reset';

export interface TcpProxyOptions {
  /** Where connections go; read for each new connection (a node's port may change when it is rebuilt). */
  readonly target: () => number;
  /** @default a free port picked by the system */
  readonly port?: number;
  /** Shown in errors. */
  readonly name?: string;
}

interface Link {
  readonly client: net.Socket;
  server: net.Socket | undefined;
}

export class TcpProxy {
  private readonly links = new Set<Link>();
  private cutMode: CutMode | null = null;
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly name: string,
    private readonly target: () => number,
  ) {}

  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    if (typeof options.target !== 'function') throw new Error('TcpProxy: target must be a function returning the port to forward to');
    const name = options.name ?? 'proxy';
    let proxy: TcpProxy | undefined;
    const server = net.createServer((client) => proxy!.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new Error(`${name}: cannot listen on ${LOOPBACK}:${options.port ?? 0}: ${error.message}`)));
      server.listen(options.port ?? 0, LOOPBACK, () => resolve());
    });
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, name, options.target);
    return proxy;
  }

  /** 'drop' | 'reset' while cut, null while the path is open. */
  get state(): CutMode | null {
    return this.cutMode;
  }

  /** Connections currently held or forwarded. */
  get connections(): number {
    return this.links.size;
  }

  cut(mode: CutMode = 'drop'): void {
    if (mode !== 'drop' && mode !== 'reset') throw new Error(`${this.name}: cut mode must be 'drop' or 'reset', got ${JSON.stringify(mode)}`);
    this.cutMode = mode;
    for (const link of [...this.links]) {
      if (mode === 'reset') this.end(link, true);
      else this.hold(link);
    }
  }

  heal(): void {
    if (this.cutMode === null) return;
    this.cutMode = null;
    for (const link of [...this.links]) {
      if (link.server === undefined) this.connect(link);
      else this.release(link);
    }
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const link of [...this.links]) this.end(link, false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.closed || this.cutMode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, server: undefined };
    this.links.add(link);
    client.on('error', () => this.end(link, false));
    client.on('close', () => this.end(link, false));
    if (this.cutMode === 'drop') client.pause();
    else this.connect(link);
  }

  private connect(link: Link): void {
    let port: number;
    try {
      port = this.target();
    } catch {
      this.end(link, true); // no target known (yet): like a refused connection
      return;
    }
    const server = net.connect({ host: LOOPBACK, port });
    link.server = server;
    server.on('error', () => this.end(link, false));
    server.on('close', () => this.end(link, false));
    if (this.cutMode === 'drop') return; // cut while connecting: stays held
    this.release(link);
  }

  /** Stop forwarding both ways (unpiped, so a 'drain' cannot restart the flow): the kernel buffers fill, peers wait. */
  private hold(link: Link): void {
    if (link.server === undefined) {
      link.client.pause();
      return;
    }
    link.client.unpipe(link.server);
    link.server.unpipe(link.client);
    link.client.pause();
    link.server.pause();
  }

  private release(link: Link): void {
    link.client.pipe(link.server!);
    link.server!.pipe(link.client);
  }

  private end(link: Link, reset: boolean): void {
    if (!this.links.delete(link)) return;
    if (reset) {
      link.client.resetAndDestroy();
      link.server?.resetAndDestroy();
    } else {
      link.client.destroy();
      link.server?.destroy();
    }
  }
}
