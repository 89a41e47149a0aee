import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** True when nothing listens on 127.0.0.1:port (we could bind it right now). */
export function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: LOOPBACK, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the kernel considers free on loopback now, not in `taken`. Another process may still grab it before PostgreSQL binds: callers retry. */
export async function findFreePort(taken: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen({ port: 0, host: LOOPBACK, exclusive: true }, () => {
        const address = server.address();
        const chosen = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolve(chosen));
      });
    });
    if (port > 0 && !taken.has(port)) return port;
  }
  throw new Error('could not find a free TCP port on 127.0.0.1 after 50 attempts');
}

export function validatePort(port: unknown, field: string): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1024 || port > 65535) {
    throw new Error(`${field} must be an integer TCP port between 1024 and 65535, got ${JSON.stringify(port)}`);
  }
  return port;
}
