import { buildSync } from 'esbuild';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';

const PROJECT_ROOT = path.join(__dirname, '..');

/** The worker agent as the workers run it: one CommonJS file for Node.js 22. */
export const AGENT_BUNDLE_ENTRY = 'rds-failover-agent.cjs';

/**
 * Bundles the agent CLI (bin/rds-failover-agent.ts) with everything it imports (pg, the AWS SDK clients) into
 * `outDir/rds-failover-agent.cjs`, with the local esbuild. better-sqlite3 stays out: a native addon would have
 * to be built for the workers' platform, so the bundle runs on Node's built-in node:sqlite (Node 22.16+,
 * src/agent/sqlite.ts), with the same file format and locking. Returns the entry file's path.
 */
export function buildAgentBundle(outDir: string): string {
  mkdirSync(outDir, { recursive: true });
  const outfile = path.join(outDir, AGENT_BUNDLE_ENTRY);
  buildSync({
    entryPoints: [path.join(PROJECT_ROOT, 'bin', 'rds-failover-agent.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    // pg optionally requires pg-native; we never use it. better-sqlite3: see above.
    external: ['better-sqlite3', 'pg-native'],
    // The driver is chosen at run time; in the bundle only node:sqlite exists.
    define: { 'process.env.RDS_FAILOVER_SQLITE': '"node"' },
    sourcemap: 'inline',
    logLevel: 'warning',
  });
  return outfile;
}
