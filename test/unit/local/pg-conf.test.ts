import { describe, expect, it } from 'vitest';
import { clusterConf, hbaConf, nodeConf, postmasterStatus, quoteConfValue, replicationConf, slotNameFor, validateSettings } from '../../../src/local/pg-conf.js';

describe('pg-conf', () => {
  it('quotes postgresql.conf values, doubling quotes and backslashes, and keeps already quoted ones', () => {
    expect(quoteConfValue('64MB')).toBe("'64MB'");
    expect(quoteConfValue("it's")).toBe("'it''s'");
    expect(quoteConfValue('a\\b')).toBe("'a\\\\b'");
    expect(quoteConfValue("'%m [%p] '")).toBe("'%m [%p] '");
  });

  it('validates setting names and values, naming the offender', () => {
    expect(() => validateSettings({ work_mem: '64MB', 'auto_explain.log_min_duration': '0' })).not.toThrow();
    expect(() => validateSettings({ 'Work Mem': '1' })).toThrow(/settings: invalid PostgreSQL setting name 'Work Mem'/);
    expect(() => validateSettings({ work_mem: '1\nfsync = off' })).toThrow(/settings.work_mem must be a single line/);
    expect(() => validateSettings({ work_mem: 64 as unknown as string })).toThrow(/settings.work_mem must be a string .* got 64/);
  });

  it('writes cluster settings before user settings (last one wins) and includes the per-node files', () => {
    const conf = clusterConf({ wal_keep_size: '1GB' });
    expect(conf).toContain("wal_level = 'replica'");
    expect(conf).toContain("unix_socket_directories = ''");
    expect(conf.indexOf("wal_keep_size = '64MB'")).toBeLessThan(conf.indexOf("wal_keep_size = '1GB'"));
    expect(conf.trimEnd().split('\n').slice(-2)).toEqual(["include_if_exists = 'node.conf'", "include_if_exists = 'replication.conf'"]);
    expect(nodeConf(5433)).toBe('port = 5433\n');
  });

  it('builds primary_conninfo with escaped values, the slot and the latest timeline', () => {
    const conf = replicationConf({ host: '127.0.0.1', port: 5432, user: 'postgres', password: "p'w\\x", applicationName: 'pg-1', slotName: 'pg_1' });
    expect(conf).toBe(
      [
        "primary_conninfo = 'host=''127.0.0.1'' port=5432 user=''postgres'' password=''p\\\\''w\\\\\\\\x'' application_name=''pg-1'' connect_timeout=2'",
        "primary_slot_name = 'pg_1'",
        "recovery_target_timeline = 'latest'",
        '',
      ].join('\n'),
    );
  });

  it('puts reject lines first in a fenced pg_hba.conf', () => {
    expect(hbaConf(false)).toBe('host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n');
    const fenced = hbaConf(true).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(fenced.slice(0, 2)).toEqual(['host all all all reject', 'host replication all all reject']);
  });

  it('derives slot names PostgreSQL accepts', () => {
    expect(slotNameFor('pg-1')).toBe('pg_1');
    expect(slotNameFor('Replica.A')).toBe('replica_a');
  });

  it('reads pid, port and status from postmaster.pid', () => {
    const file = ['4242', '/data', '1700000000', '5433', '', '127.0.0.1', '  5433001   123', 'ready   ', ''].join('\n');
    expect(postmasterStatus(file)).toEqual({ pid: 4242, port: 5433, status: 'ready' });
    expect(postmasterStatus('4242\n/data\n')).toBeUndefined();
  });
});
