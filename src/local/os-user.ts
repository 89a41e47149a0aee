import { spawnSync } from 'node:child_process';

/** The OS identity PostgreSQL processes run as. `null` uid/gid: the current (non-root) user. */
export interface PgOsUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Dedicated system user created when running as root (PostgreSQL refuses to run as root). */
export const PG_SYSTEM_USER = 'rds-failover-pg';
const FALLBACK_USER = 'nobody';

function lookup(name: string): PgOsUser | undefined {
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Which user runs initdb/postgres. As a normal user: that user (returned as undefined = no switch).
 * As root: the dedicated system user, created on first use; `nobody` when it cannot be created
 * (no useradd, read-only /etc). Concurrent callers may race on useradd, so re-check after a failure.
 */
export function resolvePgOsUser(): PgOsUser | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = lookup(PG_SYSTEM_USER);
    if (existing) return existing;
    const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', PG_SYSTEM_USER], {
      encoding: 'utf8',
    });
    if (made.error && (made.error as NodeJS.ErrnoException).code === 'ENOENT') break;
  }
  const created = lookup(PG_SYSTEM_USER);
  if (created) return created;
  const fallback = lookup(FALLBACK_USER);
  if (fallback) return fallback;
  throw new Error(
    `running as root, but neither the OS user '${PG_SYSTEM_USER}' could be created (useradd) nor '${FALLBACK_USER}' found: ` +
      'PostgreSQL refuses to run as root; create a non-root user or run as a normal user',
  );
}
