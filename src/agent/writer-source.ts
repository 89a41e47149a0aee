import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { promises as dnsPromises } from 'node:dns';
import { readFileSync, statSync } from 'node:fs';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import type pg from 'pg';
import { loadDbCredentials } from '../aws/db-credentials.js';
import { ConfigError, parseWriterUrl, redactUrl, type WriterSourceConfig } from './config.js';

export interface WriterTarget {
  /** Where the agent writes, without secrets (for status and logs). */
  readonly description: string;
  readonly clientConfig: pg.ClientConfig;
}

/**
 * Resolves the current writer. `current()` caches; the sync loop calls `invalidate()` after a failed
 * attempt and on SIGHUP, and asks `hasChanged()` before each batch and during a backoff wait (a writer file
 * replaced by the controller).
 */
export interface WriterSource {
  current(): Promise<WriterTarget>;
  hasChanged(): boolean;
  invalidate(): void;
}

export interface ConnectionSettings {
  readonly connectTimeoutMs: number;
  readonly queryTimeoutMs: number;
}

/** The CNAME targets of a name (node:dns resolveCname); injected in tests. */
export type CnameResolver = (name: string) => Promise<string[]>;

const systemCnameResolver: CnameResolver = (name) => dnsPromises.resolveCname(name);
const MAX_CNAME_HOPS = 8;

/**
 * Follows the CNAME chain of `host`: [host, target, target's target, ...] up to a name with no CNAME. The
 * writer record (`writer.<zone>`, repointed by the failover) is a CNAME to the RDS instance endpoint, the name
 * the RDS certificate is issued for. A name that does not exist ends the chain (connecting then fails with
 * the resolver's own error); any other lookup failure is thrown, naming the name.
 */
export async function resolveCnameChain(host: string, resolveCname: CnameResolver = systemCnameResolver): Promise<string[]> {
  const chain = [normalizeName(host)];
  for (;;) {
    const name = chain[chain.length - 1]!;
    let targets: string[];
    try {
      targets = await resolveCname(name);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'ENODATA' || code === 'ENOTFOUND') break;
      throw new Error(`resolving the writer name ${host}: CNAME lookup of ${name} failed: ${(error as Error).message}`);
    }
    if (targets.length === 0) break;
    const next = normalizeName(targets[0]!);
    if (chain.includes(next)) throw new Error(`resolving the writer name ${host}: CNAME loop (${[...chain, next].join(' -> ')})`);
    if (chain.length > MAX_CNAME_HOPS) throw new Error(`resolving the writer name ${host}: more than ${MAX_CNAME_HOPS} CNAMEs (${chain.join(' -> ')})`);
    chain.push(next);
  }
  return chain;
}

function normalizeName(name: string): string {
  return name.trim().replace(/\.$/, '').toLowerCase();
}

/**
 * TLS server identity check for a CNAME chain: the certificate must be valid for a name the writer record
 * resolved to (the RDS instance endpoint; with a publicly accessible instance that endpoint is itself a CNAME
 * to an ec2-... name, hence any target of the chain), or for the host itself when it has no CNAME. An RDS
 * certificate never covers the writer record's own name, so the record is not a candidate when it is a CNAME.
 */
export function chainIdentityCheck(chain: readonly string[]): (servername: string, cert: PeerCertificate) => Error | undefined {
  const candidates = chain.length > 1 ? chain.slice(1) : chain;
  return (_servername, cert) => {
    let first: Error | undefined;
    for (const name of candidates) {
      const error = checkServerIdentity(name, cert);
      if (error === undefined) return undefined;
      first ??= error;
    }
    return new Error(`the writer's TLS certificate is not valid for ${candidates.join(' or ')} (resolved from ${chain[0]}): ${first!.message}`);
  };
}

export function createWriterSource(
  config: WriterSourceConfig | undefined,
  settings: ConnectionSettings,
  secretsManager?: SecretsManagerClient,
  resolveCname: CnameResolver = systemCnameResolver,
): WriterSource {
  if (config === undefined) {
    throw new ConfigError('no writer configured: set writerUrl, writerFile or writerHost+writerPort+database+secretArn in the config, or pass --writer <postgres-url>');
  }
  switch (config.kind) {
    case 'url':
      return new FixedUrlSource(config.url, settings);
    case 'file':
      return new WriterFileSource(config.path, config.follow, settings);
    case 'aws':
      return new AwsWriterSource(config, settings, secretsManager ?? new SecretsManagerClient({}), resolveCname);
  }
}

function baseClientConfig(settings: ConnectionSettings): pg.ClientConfig {
  return {
    connectionTimeoutMillis: settings.connectTimeoutMs,
    query_timeout: settings.queryTimeoutMs,
    keepAlive: true,
    application_name: 'rds-failover-agent',
  };
}

class FixedUrlSource implements WriterSource {
  constructor(
    private readonly url: string,
    private readonly settings: ConnectionSettings,
  ) {}

  async current(): Promise<WriterTarget> {
    return { description: redactUrl(this.url), clientConfig: { ...baseClientConfig(this.settings), connectionString: this.url } };
  }

  hasChanged(): boolean {
    return false;
  }

  invalidate(): void {}
}

/**
 * The local stand-in for the Route 53 writer record: a file holding one URL, replaced atomically. 'reconnect'
 * follows it the way an AWS worker follows the DNS name: read on every new session, never ending a live one.
 */
class WriterFileSource implements WriterSource {
  private cached: WriterTarget | undefined;
  private identity = '';

  constructor(
    private readonly file: string,
    private readonly follow: 'watch' | 'reconnect',
    private readonly settings: ConnectionSettings,
  ) {}

  async current(): Promise<WriterTarget> {
    if (this.cached === undefined || this.follow === 'reconnect' || this.fileIdentity() !== this.identity) {
      const identity = this.fileIdentity();
      let text: string;
      try {
        text = readFileSync(this.file, 'utf8');
      } catch (error) {
        throw new Error(`cannot read writer file ${this.file}: ${(error as Error).message}`);
      }
      const url = parseWriterUrl(text.split('\n')[0] ?? '', `writer file ${this.file}`);
      this.cached = { description: redactUrl(url), clientConfig: { ...baseClientConfig(this.settings), connectionString: url } };
      this.identity = identity;
    }
    return this.cached;
  }

  /** Replaced since it was last read (also after invalidate(): a backoff wait asks, see SyncLoop). */
  hasChanged(): boolean {
    return this.follow === 'watch' && this.identity !== '' && this.fileIdentity() !== this.identity;
  }

  invalidate(): void {
    this.cached = undefined;
  }

  // A rename-replace changes the inode; an in-place rewrite changes mtime or size.
  private fileIdentity(): string {
    try {
      const s = statSync(this.file);
      return `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return 'missing';
    }
  }
}

/**
 * AWS: the writer DNS name, credentials from Secrets Manager, TLS verified. Every connection resolves the
 * writer record's CNAME chain again, connects to the name it ends at and verifies the certificate against
 * the chain's targets (chainIdentityCheck), with rejectUnauthorized always on.
 */
class AwsWriterSource implements WriterSource {
  private secrets: { readonly username: string; readonly password: string; readonly ca: string | undefined } | undefined;

  constructor(
    private readonly config: Extract<WriterSourceConfig, { kind: 'aws' }>,
    private readonly settings: ConnectionSettings,
    private readonly secretsManager: SecretsManagerClient,
    private readonly resolveCname: CnameResolver,
  ) {}

  async current(): Promise<WriterTarget> {
    if (this.secrets === undefined) {
      const credentials = await loadDbCredentials(this.config.secretArn, this.secretsManager);
      const ca = this.config.tlsCaFile === undefined ? undefined : readFileSync(this.config.tlsCaFile, 'utf8');
      this.secrets = { username: credentials.username, password: credentials.password, ca };
    }
    const { username, password, ca } = this.secrets;
    const chain = await resolveCnameChain(this.config.host, this.resolveCname);
    const endpoint = chain[chain.length - 1]!;
    const via = chain.length > 1 ? ` via ${endpoint}` : '';
    return {
      description: `postgres://${username}:***@${this.config.host}:${this.config.port}/${this.config.database}${via}`,
      clientConfig: {
        ...baseClientConfig(this.settings),
        host: endpoint,
        port: this.config.port,
        database: this.config.database,
        user: username,
        password,
        ssl: { rejectUnauthorized: true, checkServerIdentity: chainIdentityCheck(chain), ...(ca === undefined ? {} : { ca }) },
      },
    };
  }

  hasChanged(): boolean {
    return false;
  }

  /** After a failure: fetch the secret again (it may have been rotated). */
  invalidate(): void {
    this.secrets = undefined;
  }
}
