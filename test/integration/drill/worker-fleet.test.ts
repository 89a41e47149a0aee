/** The drill's workers with their agents as separate processes: an agent can die and come back while its appends go on. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../../../src/agent/config.js';
import { WriteBuffer } from '../../../src/agent/write-buffer.js';
import { createDrillTable, DRILL_STREAM, DRILL_TABLE } from '../../../src/cli/drill/drill-table.js';
import { WorkerFleet, writeLoadWorkerConfig } from '../../../src/cli/drill/worker-fleet.js';
import { LocalCluster } from '../../../src/local/local-cluster.js';
import { ClusterProcesses } from '../../support/cluster-processes.js';
import { until } from '../../support/poll.js';

let cluster: LocalCluster;
let fleet: WorkerFleet | undefined;
let workDir: string;
const processes = new ClusterProcesses();

async function storedIds(): Promise<Set<string>> {
  const client = new pg.Client(cluster.clientConfig('pg-0'));
  await client.connect();
  try {
    return new Set((await client.query<{ id: string }>(`SELECT id FROM ${DRILL_TABLE}`)).rows.map((r) => r.id));
  } finally {
    await client.end();
  }
}

function pendingRows(workerId: string): number {
  const buffer = WriteBuffer.open({ bufferPath: path.join(workDir, `${workerId}.outbox.sqlite`), config: parseConfig({}, workDir, { allowNoStreams: true }), mustExist: true });
  try {
    return buffer.status().pendingRows;
  } finally {
    void buffer.close();
  }
}

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'drill-fleet-'));
  cluster = await LocalCluster.start({ replicas: 0 });
  processes.remember(cluster);
  await createDrillTable(cluster, 'pg-0');
  await cluster.setWriter('pg-0');
});

afterAll(async () => {
  fleet?.killAll();
  if (cluster) await processes.stopAndExpectNothingLeft(cluster);
  rmSync(workDir, { recursive: true, force: true });
});

describe('WorkerFleet with agent daemons', () => {
  it('appends go on while the agent is down (rows wait in the buffer), and the restarted agent syncs them all', async () => {
    fleet = await WorkerFleet.start({ workDir, count: 1, rate: 100, writerFile: cluster.writerFile, table: DRILL_TABLE, stream: DRILL_STREAM, agents: 'daemon', writerFollow: 'file-watch' });
    const record = fleet.records().get('w1')!;
    await until('the agent to sync the first rows', storedIds, (ids) => ids.size >= 20, 60_000);
    await fleet.stopAgent('w1', 'SIGKILL');
    expect(fleet.agentRunning('w1')).toBe(false);
    const ackedAtKill = record.ids.length;
    await until('more appends acknowledged without an agent', () => record.ids.length, (n) => n >= ackedAtKill + 50);
    expect(pendingRows('w1')).toBeGreaterThan(0);
    const stored = await storedIds();
    expect(record.ids.filter((id) => !stored.has(id)).length).toBeGreaterThan(0);
    fleet.startAgent('w1');
    const [stopped] = await fleet.stop();
    expect(stopped).toEqual({ workerId: 'w1', pendingRows: 0, lastSyncError: null });
    const final = await storedIds();
    expect(record.ids.filter((id) => !final.has(id))).toEqual([]);
    expect(record.refused).toEqual([]);
  });

  it('refuses to stop the agent of a fleet whose agents run inside the appenders, naming the worker', async () => {
    const inProcess = await WorkerFleet.start({ workDir: mkdtempSync(path.join(workDir, 'in-')), count: 1, rate: 10, writerFile: cluster.writerFile, table: DRILL_TABLE, stream: DRILL_STREAM, agents: 'in-process', writerFollow: 'file-watch' });
    try {
      await expect(inProcess.stopAgent('w1', 'SIGTERM')).rejects.toThrow(/worker w1 runs its agent inside the appender/);
      await expect(inProcess.stopAgent('w9', 'SIGTERM')).rejects.toThrow(/unknown worker 'w9': the drill's workers are w1/);
    } finally {
      await inProcess.stop();
    }
  });

  it("writerFollow 'session' has the agents follow the writer file as AWS workers follow its DNS name (on reconnect only)", () => {
    const dir = mkdtempSync(path.join(workDir, 'follow-'));
    for (const [follow, expected] of [['session', 'reconnect'], ['file-watch', 'watch']] as const) {
      const spec = writeLoadWorkerConfig({ workDir: dir, workerId: `w-${follow}`, writerFile: cluster.writerFile, table: DRILL_TABLE, stream: DRILL_STREAM, ratePerSecond: 1, batchSize: 10, writerFollow: follow });
      expect(loadConfig(spec.configPath).writer).toEqual({ kind: 'file', path: cluster.writerFile, follow: expected });
    }
  });
});
