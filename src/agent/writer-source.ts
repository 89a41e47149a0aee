import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { readFileSync, statSync } from 'node:fs';
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
 * attempt and on SIGHUP, and asks `hasChanged()` before each batch (a writer file replaced by the controller).
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

export function createWriterSource(
  config: WriterSourceConfig | undefined,
  settings: ConnectionSettings,
  secretsManager?: SecretsManagerClient,
): WriterSource {
  if (config === undefined) {
    throw new ConfigError('no writer configured: set writerUrl, writerFile or writerHost+writerPort+database+secretArn in the config, or pass --writer <postgres-url>');
  }
  switch (config.kind) {
    case 'url':
      return new FixedUrlSource(config.url, settings);
    case 'file':
      return new WriterFileSource(config.path, settings);
    case 'aws':
      return new AwsWriterSource(config, settings, secretsManager ?? new SecretsManagerClient({}));
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

/** The local stand-in for the Route 53 writer record: a file holding one URL, replaced atomically. */
class WriterFileSource implements WriterSource {
  private cached: WriterTarget | undefined;
  private identity = '';

  constructor(
    private readonly file: string,
    private readonly settings: ConnectionSettings,
  ) {}

  async current(): Promise<WriterTarget> {
    if (this.cached === undefined || this.hasChanged()) {
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

  hasChanged(): boolean {
    return this.cached !== undefined && this.fileIdentity() !== this.identity;
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

/** AWS: the writer DNS name (re-resolved on every connection), credentials from Secrets Manager, TLS verified. */
class AwsWriterSource implements WriterSource {
  private cached: WriterTarget | undefined;

  constructor(
    private readonly config: Extract<WriterSourceConfig, { kind: 'aws' }>,
    private readonly settings: ConnectionSettings,
    private readonly secretsManager: SecretsManagerClient,
  ) {}

  async current(): Promise<WriterTarget> {
    if (this.cached === undefined) {
      const credentials = await loadDbCredentials(this.config.secretArn, this.secretsManager);
      const ca = this.config.tlsCaFile === undefined ? undefined : readFileSync(this.config.tlsCaFile, 'utf8');
      this.cached = {
        description: `postgres://${credentials.username}:***@${this.config.host}:${this.config.port}/${this.config.database}`,
        clientConfig: {
          ...baseClientConfig(this.settings),
          host: this.config.host,
          port: this.config.port,
          database: this.config.database,
          user: credentials.username,
          password: credentials.password,
          ssl: { rejectUnauthorized: true, servername: this.config.host, ...(ca === undefined ? {} : { ca }) },
        },
      };
    }
    return this.cached;
  }

  hasChanged(): boolean {
    return false;
  }

  /** After a failure: fetch the secret again (it may have been rotated). */
  invalidate(): void {
    this.cached = undefined;
  }
}
