import { describe, expect, it } from 'vitest';
import { renderStatus, type ClusterStatus, type NodeStatus } from '../../../src/local/cluster-status.js';

const base: Omit<NodeStatus, 'node' | 'role' | 'port'> = {
  pid: null,
  writer: false,
  fenced: false,
  timeline: null,
  currentLsn: null,
  receiveLsn: null,
  replayLsn: null,
  lagBytes: null,
  paused: null,
  error: null,
};

describe('renderStatus', () => {
  it('renders the topology table with the writer marked, fenced and unreachable nodes and their errors', () => {
    const status: ClusterStatus = {
      clusterId: 'local-abc',
      baseDir: '/tmp/lc',
      primaryId: 'pg-1',
      writerId: 'pg-1',
      writerFile: '/tmp/lc/writer.url',
      nodes: [
        { ...base, node: 'pg-0', role: 'stopped', port: 5432, fenced: true },
        { ...base, node: 'pg-1', role: 'primary', port: 5433, pid: 11, writer: true, timeline: 2, currentLsn: '0/7000148' },
        { ...base, node: 'pg-2', role: 'replica', port: 5434, pid: 12, timeline: 2, receiveLsn: '0/7000148', replayLsn: '0/7000000', lagBytes: 328, paused: true },
        { ...base, node: 'pg-3', role: 'unreachable', port: 5435, pid: 13, error: 'connect ECONNREFUSED 127.0.0.1:5435' },
      ],
    };
    expect(renderStatus(status)).toBe(
      [
        'cluster local-abc in /tmp/lc',
        '',
        'node    role              port  pid  timeline  current LSN  receive LSN  replay LSN  lag bytes  paused',
        '------  ----------------  ----  ---  --------  -----------  -----------  ----------  ---------  ------',
        'pg-0    stopped (fenced)  5432    -         -  -            -            -                   -  -',
        'pg-1 *  primary           5433   11         2  0/7000148    -            -                   -  -',
        'pg-2    replica           5434   12         2  -            0/7000148    0/7000000         328  yes',
        'pg-3    unreachable       5435   13         -  -            -            -                   -  -',
        '',
        '* writer (/tmp/lc/writer.url)',
        'pg-3: connect ECONNREFUSED 127.0.0.1:5435',
      ].join('\n'),
    );
  });
});
