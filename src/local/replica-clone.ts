import { chown, copyFile, lstat, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { PgOsUser } from './os-user.js';

/**
 * What a base backup leaves out (PostgreSQL docs, "Making a Base Backup Using the Low Level API", and
 * basebackup.c): runtime state the standby must not inherit. Directories listed here are created empty.
 */
const EMPTY_DIRS = new Set(['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans']);
const SKIP_FILES = new Set([
  'postmaster.pid',
  'postmaster.opts',
  'backup_label',
  'tablespace_map',
  'standby.signal',
  'recovery.signal',
  // per-node files of the local cluster, rewritten for the clone
  'node.conf',
  'replication.conf',
  'pg_internal.init',
]);

function skipped(name: string): boolean {
  return SKIP_FILES.has(name) || name.startsWith('pgsql_tmp');
}

/**
 * Copy a running primary's data directory between pg_backup_start() and pg_backup_stop().
 * Files may change or vanish while we copy: torn pages are repaired by WAL replay from the backup's
 * checkpoint (full-page writes are forced during a backup) and vanished files were not needed.
 */
export async function copyDataDir(source: string, target: string): Promise<number> {
  let copied = 0;
  async function walk(from: string, to: string, top: boolean): Promise<void> {
    await mkdir(to, { recursive: true, mode: 0o700 });
    let entries;
    try {
      entries = await readdir(from, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    await Promise.all(
      entries.map(async (entry) => {
        if (skipped(entry.name)) return;
        const src = path.join(from, entry.name);
        const dst = path.join(to, entry.name);
        try {
          if (entry.isDirectory()) {
            if (top && EMPTY_DIRS.has(entry.name)) {
              await mkdir(dst, { mode: 0o700 });
              // keep timeline history files: small, and needed when the backup starts right after a timeline switch
              if (entry.name === 'pg_wal') {
                await mkdir(path.join(dst, 'archive_status'), { mode: 0o700 });
                for (const f of await readdir(src)) {
                  if (f.endsWith('.history')) await copyFile(src + path.sep + f, path.join(dst, f));
                }
              }
              return;
            }
            await walk(src, dst, false);
          } else if (entry.isSymbolicLink()) {
            await symlink(await readlink(src), dst);
          } else if (entry.isFile()) {
            await copyFile(src, dst);
            copied++;
          }
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        }
      }),
    );
  }
  await walk(source, target, true);
  return copied;
}

/** Give a tree to the PostgreSQL OS user (only when we run as root and switch user). */
export async function chownTree(root: string, user: PgOsUser | undefined): Promise<void> {
  if (!user) return;
  async function walk(p: string): Promise<void> {
    const stat = await lstat(p);
    await chown(p, user!.uid, user!.gid);
    if (stat.isDirectory()) await Promise.all((await readdir(p)).map((name) => walk(path.join(p, name))));
  }
  await walk(root);
}
