import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { collect, EVENTS_DDL, EVENTS_STREAM, expectEachAcknowledgedRowOnce, REPO_ROOT, runAgent, sleep, sql, startDaemon, writeConfig } from './agent-fixture.js';

/** The Python client (clients/python): its own unittest suite, and SIGKILL with real PostgreSQL behind the agent. */
const PYTHON_DIR = path.join(REPO_ROOT, 'clients', 'python');

describe('the Python client', () => {
  it('passes its unittest suite (real buffer files, the real agent daemon, the row rules shared with the agent)', async () => {
    const run = await collect(spawn('python3', ['-m', 'unittest', 'discover', '-s', path.join(PYTHON_DIR, 'tests'), '-v'], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }), '');
    expect(run.stderr).toMatch(/\nOK\n?$/);
    expect(run.code).toBe(0);
  }, 600_000); // it starts the agent a dozen times

  describe('killed with SIGKILL', () => {
    const DB = 'python_crash';
    let cluster: LocalCluster;
    let dir: string;
    let config: string;
    let buffer: string;

    beforeAll(async () => {
      cluster = await LocalCluster.start({ replicas: 0 });
      await cluster.createDatabase(DB);
      await sql(cluster, 'pg-0', EVENTS_DDL, DB);
      dir = mkdtempSync(path.join(os.tmpdir(), 'python-crash-'));
      buffer = path.join(dir, 'buffer.db');
      config = writeConfig(path.join(dir, 'agent.json'), { writerUrl: cluster.connectionString('pg-0', DB), bufferPath: buffer, batchSize: 100, streams: { events: EVENTS_STREAM } });
      expect((await runAgent(['append', '--stream', 'events', '--config', config])).code).toBe(0); // the agent creates the file
    });

    afterAll(async () => {
      await cluster?.stop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    function startAppender(prefix: string): { stop(): Promise<string[]> } {
      const child = spawn('python3', [path.join(PYTHON_DIR, 'tests', 'append_until_killed.py'), config, prefix], { stdio: ['pipe', 'pipe', 'pipe'] });
      const done = collect(child);
      return {
        async stop() {
          child.kill('SIGKILL');
          const run = await done;
          expect(run.signal, run.stderr).toBe('SIGKILL');
          const printed = run.stdout.split('\n');
          printed.pop(); // a line cut by the kill is not an acknowledgement
          return printed;
        },
      };
    }

    it('4 appenders and the daemon killed at 12 random points: every id an appender printed is in PostgreSQL exactly once after sync', async () => {
      const acknowledged: string[] = [];
      const startPythonDaemon = () => startDaemon(['--config', config]);
      let daemon = await startPythonDaemon();
      const appenders = Array.from({ length: 4 }, (_, i) => startAppender(`py${i}-0`));
      for (let trial = 0; trial < 12; trial++) {
        await sleep(100 + Math.floor(Math.random() * 300));
        if (trial % 4 === 1) {
          await daemon.kill();
          await sleep(Math.floor(Math.random() * 500)); // the appenders go on directly into the file
          daemon = await startPythonDaemon();
        } else {
          const slot = Math.floor(Math.random() * appenders.length);
          acknowledged.push(...(await appenders[slot]!.stop()));
          appenders[slot] = startAppender(`py${slot}-${trial + 1}`);
        }
      }
      await sleep(500);
      for (const appender of appenders) acknowledged.push(...(await appender.stop()));
      expect((await daemon.stop()).requests).toBeGreaterThan(0); // the fast path was in use

      const sync = await runAgent(['sync-once', '--json', '--config', config]);
      expect(sync.code).toBe(0);
      expect(JSON.parse(sync.stdout).pendingRows).toBe(0);
      expect(acknowledged.length).toBeGreaterThan(0);
      await expectEachAcknowledgedRowOnce(cluster, DB, buffer, acknowledged);
    }, 600_000); // the daemon starts 4 times
  });
});
