import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/local/local-cluster.js';
import { createLocalRunbookPorts } from '../../src/local/local-runbook-ports.js';
import { PgLineageStore } from '../../src/pg/lineage.js';
import { NodeSessions } from '../../src/pg/node-sessions.js';
import { PgDatabaseProbe } from '../../src/pg/probe.js';

let cluster: LocalCluster;
let stateDir: string;

beforeAll(async () => {
  cluster = await LocalCluster.start({ replicas: 0 });
  stateDir = mkdtempSync(path.join(os.tmpdir(), 'node-sessions-'));
});

afterAll(async () => {
  await cluster?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
});

/** The sessions the probe and the lineage store have open on pg-0 now (by application_name). */
async function openSessions(): Promise<Record<string, number>> {
  const client = new pg.Client(cluster.clientConfig('pg-0'));
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; n: number }>(
      "SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity WHERE application_name IN ('rds-failover-probe', 'rds-failover-lineage') GROUP BY 1",
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.n]));
  } finally {
    await client.end();
  }
}

/** A probe and a lineage store over pg-0 sharing `sessions`, counting the connections each opens. */
function counted(sessions: NodeSessions) {
  const opened = { probe: 0, lineage: 0 };
  const probe = new PgDatabaseProbe(
    (id) => {
      opened.probe += 1;
      return cluster.clientConfig(id);
    },
    { sessions },
  );
  const lineage = new PgLineageStore(
    (id) => {
      opened.lineage += 1;
      return cluster.clientConfig(id);
    },
    { sessions },
  );
  return { opened, probe, lineage };
}

const epochOn = (id: string) => ({ id, parentId: null, generation: 1, forkLsn: null, timelineId: 1, nodeId: 'pg-0', executionId: 'node-sessions-test' });

describe('NodeSessions: one session per node for a runbook action', () => {
  it("within an action the lineage store uses the probe's session: probe, read and record over one connection, closed at the end", async () => {
    const sessions = new NodeSessions();
    const { opened, probe, lineage } = counted(sessions);
    const id = randomUUID();
    const during = await sessions.within(async () => {
      expect((await probe.probe('pg-0')).reachable).toBe(true);
      const before = await lineage.read('pg-0');
      await lineage.record('pg-0', epochOn(id));
      const after = await lineage.read('pg-0');
      expect(after!.map((e) => e.id)).toEqual([...before!.map((e) => e.id), id]);
      return openSessions();
    });
    expect(opened).toEqual({ probe: 1, lineage: 0 });
    expect(during).toEqual({ 'rds-failover-probe': 1 });
    expect(await openSessions()).toEqual({});
  });

  it('outside an action nothing is kept: the probe closes its session and the lineage store connects itself', async () => {
    const sessions = new NodeSessions();
    const { opened, probe, lineage } = counted(sessions);
    expect((await probe.probe('pg-0')).reachable).toBe(true);
    expect(await openSessions()).toEqual({});
    expect(await lineage.read('pg-0')).not.toBeNull();
    expect(opened).toEqual({ probe: 1, lineage: 1 });
  });

  it('a kept session that died (terminated) is replaced: the read answers over a fresh connection', async () => {
    const sessions = new NodeSessions();
    const { opened, probe, lineage } = counted(sessions);
    await sessions.within(async () => {
      expect((await probe.probe('pg-0')).reachable).toBe(true);
      expect(await openSessions()).toEqual({ 'rds-failover-probe': 1 });
      const admin = new pg.Client(cluster.clientConfig('pg-0'));
      await admin.connect();
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rds-failover-probe'");
      await admin.end();
      expect(await lineage.read('pg-0')).not.toBeNull();
    });
    expect(opened).toEqual({ probe: 1, lineage: 1 });
    expect(await openSessions()).toEqual({});
  });

  it('the local runbook ports share them: actionScope is the action, the probe and the lineage store use it', async () => {
    const ports = createLocalRunbookPorts({ cluster, workers: [], stateDir });
    const during = await ports.actionScope!(async () => {
      await ports.probe.probe('pg-0');
      await ports.lineage.read('pg-0');
      return openSessions();
    });
    expect(during).toEqual({ 'rds-failover-probe': 1 });
    expect(await openSessions()).toEqual({});
  });
});
