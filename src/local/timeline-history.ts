import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isLsn, type Lsn } from '../core/lsn.js';

export interface HistoryEntry {
  readonly parentTimeline: number;
  readonly switchPoint: Lsn;
}

/** Parse a timeline history file (pg_wal/0000000N.history): "parentTLI<TAB>switchpoint<TAB>reason" per ancestor. */
export function parseTimelineHistory(text: string): HistoryEntry[] {
  const entries: HistoryEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [tli, lsn] = line.split(/\s+/);
    const parentTimeline = Number(tli);
    if (!Number.isInteger(parentTimeline) || parentTimeline < 1 || !isLsn(lsn)) {
      throw new Error(`invalid timeline history line '${line}': expected "<timeline id> <LSN> <reason>"`);
    }
    entries.push({ parentTimeline, switchPoint: lsn });
  }
  return entries;
}

export function historyFileName(timeline: number): string {
  return `${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/**
 * Where `ancestor` ended on the way to `timeline`: the LSN up to which a node on `ancestor` can follow a
 * primary on `timeline`. null when `ancestor` is not in that history, undefined when the history file
 * cannot be read (then we cannot tell).
 */
export function historySwitchPoint(walDir: string, timeline: number, ancestor: number): Lsn | null | undefined {
  if (ancestor === timeline) return undefined;
  if (ancestor > timeline) return null;
  let text: string;
  try {
    text = readFileSync(path.join(walDir, historyFileName(timeline)), 'utf8');
  } catch {
    return undefined;
  }
  const entry = parseTimelineHistory(text).find((e) => e.parentTimeline === ancestor);
  return entry ? entry.switchPoint : null;
}
