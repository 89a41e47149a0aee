import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLsn } from '../../src/core/lsn.js';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { childPids, isAlive } from '../../src/local/processes.js';

async function sql<T extends pg.QueryResultRow>(cluster: LocalCluster, nodeId: string, text: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client(cluster.clientConfig(nodeId));
  await client.connect();
  try {
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end();
  }
}

async function currentLsn(cluster: LocalCluster, nodeId: string): Promise<string> {
  return (await sql<{ lsn: string }>(cluster, nodeId, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0]!.lsn;
}

async function replayLsn(cluster: LocalCluster, nodeId: string): Promise<string> {
  return (await sql<{ lsn: string }>(cluster, nodeId, 'SELECT pg_last_wal_replay_lsn()::text AS lsn'))[0]!.lsn;
}

async function timeline(cluster: LocalCluster, nodeId: string): Promise<number> {
  const rows = await sql<{ tli: number }>(cluster, nodeId, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli");
  return rows[0]!.tli;
}

/** Every postgres pid of the cluster now: postmasters and their children. */
function processTree(cluster: LocalCluster): number[] {
  return cluster.nodes().flatMap((n) => (n.pid === null ? [] : [n.pid, ...childPids(n.pid)]));
}

describe('LocalCluster: a primary with two streaming replicas', () => {
  let cluster: LocalCluster;
  const seenPids = new Set<number>();
  let startMs = 0;
  const logs: string[] = [];
  const remember = () => processTree(cluster).forEach((p) => seenPids.add(p));

  beforeAll(async () => {
    const began = Date.now();
    cluster = await LocalCluster.start({ replicas: 2, log: (line) => logs.push(line) });
    startMs = Date.now() - began;
    remember();
    await sql(cluster, 'pg-0', 'CREATE TABLE items (id int PRIMARY KEY, note text)');
  });

  afterAll(async () => {
    if (!cluster) return;
    remember();
    await cluster.stop();
    // Nothing of ours survives: not one postgres process, not the directory.
    expect([...seenPids].filter(isAlive)).toEqual([]);
    expect(existsSync(cluster.baseDir)).toBe(false);
  });

  it('starts pg-0 as primary and pg-1, pg-2 as replicas on distinct loopback ports', () => {
    // How fast is a benchmark's business, not a test's (this machine is shared): printed, not asserted.
    console.log(`LocalCluster.start (1 primary + 2 replicas): ${startMs} ms`);
    const nodes = cluster.nodes();
    expect(nodes.map((n) => [n.id, n.role])).toEqual([
      ['pg-0', 'primary'],
      ['pg-1', 'replica'],
      ['pg-2', 'replica'],
    ]);
    expect(new Set(nodes.map((n) => n.port)).size).toBe(3);
    expect(cluster.primaryId()).toBe('pg-0');
    expect(cluster.connectionString('pg-1', 'app')).toBe(`postgres://postgres:${cluster.clientConfig('pg-1').password}@127.0.0.1:${nodes[1]!.port}/app`);
    expect(readFileSync(cluster.writerFile, 'utf8').trim()).toBe(cluster.connectionString('pg-0'));
  });

  it('runs postgres as a non-root OS user and streams through one slot per replica', async () => {
    const users = await sql<{ usename: string; application_name: string; state: string }>(
      cluster,
      'pg-0',
      'SELECT application_name, state FROM pg_stat_replication ORDER BY application_name',
    );
    expect(users.map((r) => [r.application_name, r.state])).toEqual([
      ['pg-1', 'streaming'],
      ['pg-2', 'streaming'],
    ]);
    const slots = await sql<{ slot_name: string; active: boolean }>(cluster, 'pg-0', 'SELECT slot_name, active FROM pg_replication_slots ORDER BY slot_name');
    expect(slots).toEqual([
      { slot_name: 'pg_1', active: true },
      { slot_name: 'pg_2', active: true },
    ]);
    const uid = Number(readFileSync(`/proc/${cluster.nodes()[0]!.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)![1]);
    expect(uid).not.toBe(0);
  });

  it('makes a row written on the primary visible on both replicas', async () => {
    await sql(cluster, 'pg-0', "INSERT INTO items VALUES (1, 'first')");
    const lsn = await currentLsn(cluster, 'pg-0');
    await cluster.waitForReplay('pg-1', lsn);
    await cluster.waitForReplay('pg-2', lsn);
    for (const replica of ['pg-1', 'pg-2']) {
      expect(await sql(cluster, replica, 'SELECT id, note FROM items')).toEqual([{ id: 1, note: 'first' }]);
    }
  });

  it('creates a database on the primary that reaches the replicas', async () => {
    await cluster.createDatabase('app_db');
    await cluster.createDatabase('app_db'); // idempotent
    await cluster.waitForReplay('pg-2', await currentLsn(cluster, 'pg-0'));
    expect(await sql(cluster, 'pg-2', "SELECT datname FROM pg_database WHERE datname = 'app_db'")).toEqual([{ datname: 'app_db' }]);
    await expect(cluster.createDatabase('bad name;')).rejects.toThrow(/database name 'bad name;' is invalid/);
  });

  it('pausing replay on one replica holds it back while the other keeps up; resuming catches up', async () => {
    await cluster.pauseReplay('pg-2');
    const before = await replayLsn(cluster, 'pg-2');
    await sql(cluster, 'pg-0', "INSERT INTO items SELECT g, 'bulk' FROM generate_series(2, 500) g");
    const lsn = await currentLsn(cluster, 'pg-0');
    await cluster.waitForReplay('pg-1', lsn);
    await expect(cluster.waitForReplay('pg-2', lsn, 300)).rejects.toThrow(/pg-2 did not replay up to .* \(at .*, replay paused\)/);
    expect(await replayLsn(cluster, 'pg-2')).toBe(before);
    expect((await sql(cluster, 'pg-2', 'SELECT count(*)::int AS n FROM items'))[0]).toEqual({ n: 1 });
    await cluster.resumeReplay('pg-2');
    await cluster.waitForReplay('pg-2', lsn);
    expect((await sql(cluster, 'pg-2', 'SELECT count(*)::int AS n FROM items'))[0]).toEqual({ n: 500 });
    await expect(cluster.pauseReplay('pg-0')).rejects.toThrow(/pg-0 is not a replica/);
  });

  it('after kill -9 of the primary, promoting pg-1 gives a writable node on a new timeline', async () => {
    remember();
    const oldTimeline = await timeline(cluster, 'pg-0');
    await sql(cluster, 'pg-0', "INSERT INTO items VALUES (1000, 'before crash')");
    await cluster.waitForReplay('pg-1', await currentLsn(cluster, 'pg-0'));
    const primaryPid = cluster.nodes()[0]!.pid!;
    await cluster.stopNode('pg-0', 'kill');
    expect(isAlive(primaryPid)).toBe(false);
    expect(cluster.nodes()[0]!.role).toBe('stopped');

    await cluster.promote('pg-1');
    await cluster.promote('pg-1'); // idempotent
    expect(cluster.primaryId()).toBe('pg-1');
    expect(cluster.nodes()[1]!.role).toBe('primary');
    expect(await timeline(cluster, 'pg-1')).toBe(oldTimeline + 1);
    await sql(cluster, 'pg-1', "INSERT INTO items VALUES (1001, 'after failover')");
    expect(await sql(cluster, 'pg-1', 'SELECT note FROM items WHERE id >= 1000 ORDER BY id')).toEqual([{ note: 'before crash' }, { note: 'after failover' }]);

    await expect(cluster.startNode('pg-0')).rejects.toThrow(/pg-0 would start as a second primary while pg-1 is the primary/);
  });

  it('repoints the other replica to follow the new primary', async () => {
    await cluster.repoint('pg-2', 'pg-1');
    remember();
    await sql(cluster, 'pg-1', "INSERT INTO items VALUES (1002, 'streamed on the new timeline')");
    await cluster.waitForReplay('pg-2', await currentLsn(cluster, 'pg-1'));
    expect(await sql(cluster, 'pg-2', 'SELECT note FROM items WHERE id = 1002')).toEqual([{ note: 'streamed on the new timeline' }]);
    const receiver = await sql<{ sender_port: number; received_tli: number }>(cluster, 'pg-2', 'SELECT sender_port, received_tli FROM pg_stat_wal_receiver');
    expect(receiver).toEqual([{ sender_port: cluster.nodes()[1]!.port, received_tli: await timeline(cluster, 'pg-1') }]);
  });

  it('rebuilds the crashed old primary as a replica of the new one', async () => {
    await cluster.rebuild('pg-0', 'pg-1');
    remember();
    expect(cluster.nodes().map((n) => n.role)).toEqual(['replica', 'primary', 'replica']);
    await sql(cluster, 'pg-1', "INSERT INTO items VALUES (1003, 'after rebuild')");
    await cluster.waitForReplay('pg-0', await currentLsn(cluster, 'pg-1'));
    expect((await sql(cluster, 'pg-0', 'SELECT count(*)::int AS n FROM items'))[0]).toEqual({ n: 504 });
    const peers = await sql<{ application_name: string }>(cluster, 'pg-1', "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1");
    expect(peers.map((p) => p.application_name)).toEqual(['pg-0', 'pg-2']);
  });

  it('repoint rebuilds a replica that replayed past the fork point, without waiting for a timeout', async () => {
    // pg-0 follows pg-1. pg-2 stops, pg-0 replays one more row, pg-1 dies, pg-2 is promoted without that row:
    // pg-0 is now past the fork and cannot follow pg-2.
    await cluster.stopNode('pg-2', 'fast');
    await sql(cluster, 'pg-1', "INSERT INTO items VALUES (1004, 'only pg-0 replays this')");
    await cluster.waitForReplay('pg-0', await currentLsn(cluster, 'pg-1'));
    await cluster.stopNode('pg-1', 'immediate');
    await cluster.startNode('pg-2');
    await cluster.promote('pg-2');
    expect(await sql(cluster, 'pg-2', 'SELECT id FROM items WHERE id = 1004')).toEqual([]);
    const logged = logs.length;
    await cluster.repoint('pg-0', 'pg-2');
    // Detected up front (the divergence check), not after the follow timeout ran out.
    expect(logs.slice(logged).join('\n')).toMatch(/pg-0 cannot follow pg-2: .*; rebuilding/);
    expect(logs.slice(logged).join('\n')).not.toMatch(/did not follow/);
    remember();
    await sql(cluster, 'pg-2', "INSERT INTO items VALUES (1005, 'on pg-2')");
    await cluster.waitForReplay('pg-0', await currentLsn(cluster, 'pg-2'));
    // pg-0 was cloned again from pg-2: the row only the old timeline had is gone.
    expect(await sql(cluster, 'pg-0', 'SELECT id FROM items WHERE id >= 1004 ORDER BY id')).toEqual([{ id: 1005 }]);
  });

  it('rewrites the writer file atomically', async () => {
    await cluster.setWriter('pg-2');
    expect(readFileSync(cluster.writerFile, 'utf8')).toBe(`${cluster.connectionString('pg-2')}\n`);
    expect(cluster.writerId()).toBe('pg-2');
    await expect(cluster.setWriter('pg-9')).rejects.toThrow(/unknown node 'pg-9': this cluster has pg-0, pg-1, pg-2/);
  });

  it('stops cleanly (fast) and starts a replica again', async () => {
    await cluster.stopNode('pg-0', 'fast');
    expect(cluster.nodes()[0]!.role).toBe('stopped');
    await cluster.startNode('pg-0');
    remember();
    expect(cluster.nodes()[0]!.role).toBe('replica');
    await cluster.waitForReplay('pg-0', await currentLsn(cluster, 'pg-2'));
    expect(compareLsn(await replayLsn(cluster, 'pg-0'), '0/0')).toBe(1);
  });
});

describe('LocalCluster: clear errors, nothing left behind', () => {
  it('rejects bad options naming the field', async () => {
    await expect(LocalCluster.start({ replicas: -1 })).rejects.toThrow(/replicas must be an integer from 0 to 8, got -1/);
    await expect(LocalCluster.start({ replicas: 1, ports: [6000] })).rejects.toThrow(/ports must list one port per node \(2: pg-0..pg-1\)/);
    await expect(LocalCluster.start({ replicas: 0, settings: { 'bad name': 'x' } })).rejects.toThrow(/invalid PostgreSQL setting name 'bad name'/);
  });

  // Only root switches to another OS user.
  it.runIf(process.getuid?.() === 0)('says when the PostgreSQL OS user cannot reach baseDir', async () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), 'lc-test-')); // 0700, owned by root
    try {
      await expect(LocalCluster.start({ replicas: 0, baseDir: path.join(parent, 'cluster') })).rejects.toThrow(
        /the PostgreSQL OS user rds-failover-pg cannot enter .*\/cluster: make every parent directory traversable/,
      );
      expect(existsSync(path.join(parent, 'cluster'))).toBe(false);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('names the missing binary', async () => {
    await expect(LocalCluster.start({ replicas: 0, binDir: '/nonexistent/bin' })).rejects.toThrow(
      /PostgreSQL binary missing or not executable: \/nonexistent\/bin\/initdb/,
    );
  });

  it('fails naming the node when its port is taken, with nothing left running', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as net.AddressInfo).port;
    const baseDir = path.join(traversableTempDir(), 'cluster');
    try {
      await expect(LocalCluster.start({ replicas: 1, ports: [taken === 40001 ? 40002 : 40001, taken], baseDir })).rejects.toThrow(
        new RegExp(`pg-1: port ${taken} on 127.0.0.1 is already in use`),
      );
      expect(existsSync(baseDir)).toBe(false);
    } finally {
      blocker.close();
      rmSync(path.dirname(baseDir), { recursive: true, force: true });
    }
  });

  it('stops the running primary when a replica fails half-way through start', async () => {
    const baseDir = path.join(traversableTempDir(), 'cluster');
    const blocker = net.createServer();
    const primaryPids: number[] = [];
    try {
      const [p0, p1] = await Promise.all([freePort(), freePort()]);
      const started = LocalCluster.start({
        replicas: 1,
        ports: [p0, p1],
        baseDir,
        // Once the primary runs, someone else grabs the replica's port.
        log: (line) => {
          const match = /^pg-0: accepting connections as primary on port \d+ \(pid (\d+)/.exec(line);
          if (match) {
            primaryPids.push(Number(match[1]));
            blocker.listen(p1, '127.0.0.1');
          }
        },
      });
      await expect(started).rejects.toThrow(new RegExp(`pg-1: the replica did not start streaming from pg-0: pg-1: port ${p1} on 127.0.0.1 is already in use`));
      expect(primaryPids).toHaveLength(1);
      expect(isAlive(primaryPids[0]!)).toBe(false);
      expect(existsSync(baseDir)).toBe(false);
    } finally {
      blocker.close();
      rmSync(path.dirname(baseDir), { recursive: true, force: true });
    }
  });

  for (const how of ['SIGTERM', 'SIGINT', 'exit'] as const) {
    it(`kills postgres and removes the directory when the owning process ends by ${how}`, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'lc-test-'));
      const script = path.join(dir, 'owner.mts');
      writeFileSync(
        script,
        [
          `import { LocalCluster } from ${JSON.stringify(path.resolve('src/local/local-cluster.ts'))};`,
          `import { childPids } from ${JSON.stringify(path.resolve('src/local/processes.ts'))};`,
          'const c = await LocalCluster.start({ replicas: 0 });',
          // the long-lived processes: a backend of a start-up session (the lineage) may still be exiting at first
          'const list = () => c.nodes().flatMap((n) => [n.pid, ...childPids(n.pid)]);',
          'const first = list();',
          'await new Promise((r) => setTimeout(r, 300));',
          'const pids = list().filter((p) => first.includes(p));',
          'console.log(JSON.stringify({ baseDir: c.baseDir, pids }));',
          how === 'exit' ? 'process.exit(3);' : 'setInterval(() => undefined, 1000);',
        ].join('\n'),
      );
      // One node process (no tsx CLI wrapper relaying signals), so the signal reaches the cluster's owner itself.
      const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      try {
        const line = await new Promise<string>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('\n')) resolve(out.split('\n')[0]!);
          });
          child.on('exit', (code) => reject(new Error(`owner exited early with ${code}: ${out}`)));
        });
        const { baseDir, pids } = JSON.parse(line) as { baseDir: string; pids: number[] };
        expect(pids.length).toBeGreaterThan(3);
        expect(pids.every(isAlive)).toBe(true);
        const exited = new Promise<{ code: number | null; sig: NodeJS.Signals | null }>((r) => child.on('exit', (code, sig) => r({ code, sig })));
        if (how !== 'exit') child.kill(how);
        const result = await exited;
        expect(how === 'exit' ? result.code : result.sig).toBe(how === 'exit' ? 3 : how);
        await new Promise((r) => setTimeout(r, 100));
        expect(pids.filter(isAlive)).toEqual([]);
        expect(existsSync(baseDir)).toBe(false);
      } finally {
        child.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe('npm run cluster -- up|status|down', () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.resolve('src/local/cluster-cli.ts'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  it('leaves a cluster running after `up` exits, shows it with `status`, removes it with `down`', async () => {
    const parent = traversableTempDir();
    const dir = path.join(parent, 'lc');
    try {
      const up = await run(['up', '--dir', dir, '--replicas', '1', '--json']);
      expect(up.stderr).toBe('');
      expect(up.code).toBe(0);
      const started = JSON.parse(up.stdout) as { writerId: string; nodes: { node: string; role: string; pid: number; connectionString: string }[] };
      expect(started.writerId).toBe('pg-0');
      expect(started.nodes.map((n) => [n.node, n.role])).toEqual([
        ['pg-0', 'primary'],
        ['pg-1', 'replica'],
      ]);
      const pids = started.nodes.map((n) => n.pid);
      expect(pids.every(isAlive)).toBe(true); // the command exited, the cluster did not

      const again = await run(['up', '--dir', dir]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/a cluster is already running in .*lc \(pg-0 pid \d+, pg-1 pid \d+\)/);

      const table = await run(['status', '--dir', dir]);
      expect(table.code).toBe(0);
      const lines = table.stdout.split('\n');
      expect(lines.find((l) => l.startsWith('node'))).toMatch(/^node\s+role\s+port\s+pid\s+timeline\s+current LSN\s+receive LSN\s+replay LSN\s+lag bytes\s+paused$/);
      expect(lines.find((l) => l.startsWith('pg-0 *'))).toMatch(/^pg-0 \*\s+primary\s+\d+\s+\d+\s+1\s+[0-9A-F]+\/[0-9A-F]+\s+-\s+-\s+-\s+-$/);
      expect(lines.find((l) => l.startsWith('pg-1'))).toMatch(/^pg-1\s+replica\s+\d+\s+\d+\s+1\s+-\s+[0-9A-F]+\/[0-9A-F]+\s+[0-9A-F]+\/[0-9A-F]+\s+\d+\s+no$/);

      const down = await run(['down', '--dir', dir]);
      expect(down.code).toBe(0);
      expect(down.stdout).toMatch(/stopped; .*lc removed/);
      expect(pids.filter(isAlive)).toEqual([]);
      expect(existsSync(dir)).toBe(false);

      const status = await run(['status', '--dir', dir]);
      expect(status.code).toBe(1);
      expect(status.stderr).toMatch(/no local cluster in .*lc: start one with `npm run cluster -- up`/);
    } finally {
      await run(['down', '--dir', dir]);
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

/** A temp dir the PostgreSQL OS user may pass through (mkdtemp makes it 0700). */
function traversableTempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lc-test-'));
  chmodSync(dir, 0o711);
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
