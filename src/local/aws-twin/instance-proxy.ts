/**
 * The network path to one RDS instance in the twin: a TCP forwarder on the instance's own loopback address (its
 * "endpoint") to the PostgreSQL node behind it. It carries what a VPC security group does to a DB instance:
 * with no security group admitting clients, new connections are refused while established ones keep flowing (a
 * security group does not cut tracked connections); a reboot drops every connection.
 */
import net from 'node:net';

export class InstanceProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** New connections are refused (no security group admits the clients). */
  refuseNew = false;
  private boundPort = 0;

  constructor(
    readonly address: string,
    private targetPort: () => number,
  ) {
    if (!/^127\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`InstanceProxy: address must be a loopback IPv4 address (127.x.y.z), got '${address}'`);
  }

  get port(): number {
    if (!this.server) throw new Error(`proxy ${this.address} is not listening`);
    return this.boundPort;
  }

  async listen(): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.address, port: 0, exclusive: true }, () => resolve());
    });
    this.boundPort = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Drops every connection, as a reboot does. */
  dropAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  /** Live client connections. */
  get connections(): number {
    return [...this.sockets].filter((s) => !s.destroyed).length / 2;
  }

  async close(): Promise<void> {
    this.dropAll();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.refuseNew) {
      client.destroy(); // a security group drops the SYN: the client sees a failed connection
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort() });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
