/**
 * TLS for the twin's PostgreSQL nodes, so the runbook functions connect exactly as in AWS (`ssl: { rejectUnauthorized:
 * true }`, the CA from NODE_EXTRA_CA_CERTS): a throw-away CA (the twin's "RDS CA") and one server certificate valid for
 * every instance address, made with the openssl CLI. The key belongs to the PostgreSQL OS user (PostgreSQL refuses a
 * key others can read).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PgOsUser } from '../os-user.js';

export interface TwinCertificates {
  /** PEM of the CA: what NODE_EXTRA_CA_CERTS must name in the processes that run the functions. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** postgresql.conf settings that turn TLS on with these files. */
  readonly settings: Readonly<Record<string, string>>;
}

export function makeTwinCertificates(dir: string, addresses: readonly string[], pgUser?: PgOsUser): TwinCertificates {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(dir, 0o755);
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => {
    const run = spawnSync('openssl', args, { encoding: 'utf8' });
    if (run.error) throw new Error(`the AWS twin needs the openssl CLI for its certificates: ${run.error.message}`);
    if (run.status !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr.trim()}`);
  };
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '2', '-subj', '/CN=rds-failover AWS twin CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=rds-failover-twin-db');
  writeFileSync(file('san.ext'), `subjectAltName=${['IP:127.0.0.1', ...addresses.map((a) => `IP:${a}`)].join(',')}\n`);
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.crt'), '-days', '2', '-extfile', file('san.ext'));
  chmodSync(file('server.key'), 0o600);
  if (pgUser) chownSync(file('server.key'), pgUser.uid, pgUser.gid);
  chmodSync(file('server.crt'), 0o644);
  return {
    caFile: file('ca.pem'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    settings: { ssl: 'on', ssl_cert_file: file('server.crt'), ssl_key_file: file('server.key') },
  };
}
