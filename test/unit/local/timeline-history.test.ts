import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { historyFileName, historySwitchPoint, parseTimelineHistory } from '../../../src/local/timeline-history.js';

const HISTORY_3 = '1\t0/5000060\tno recovery target specified\n\n2\t0/7000A28\tno recovery target specified\n';

describe('timeline history', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tli-'));
  writeFileSync(path.join(dir, '00000003.history'), HISTORY_3);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('parses ancestors and their switch points', () => {
    expect(parseTimelineHistory(HISTORY_3)).toEqual([
      { parentTimeline: 1, switchPoint: '0/5000060' },
      { parentTimeline: 2, switchPoint: '0/7000A28' },
    ]);
    expect(() => parseTimelineHistory('x 0/1 reason')).toThrow(/invalid timeline history line 'x 0\/1 reason'/);
  });

  it('names history files with 8 hex digits', () => {
    expect(historyFileName(3)).toBe('00000003.history');
    expect(historyFileName(26)).toBe('0000001A.history');
  });

  it('finds where an ancestor timeline ended, and says when it is not an ancestor or cannot tell', () => {
    expect(historySwitchPoint(dir, 3, 1)).toBe('0/5000060');
    expect(historySwitchPoint(dir, 3, 2)).toBe('0/7000A28');
    expect(historySwitchPoint(dir, 3, 3)).toBeUndefined();
    expect(historySwitchPoint(dir, 3, 4)).toBeNull();
    expect(historySwitchPoint(dir, 5, 1)).toBeUndefined(); // no 00000005.history here
  });
});
