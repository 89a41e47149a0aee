import { describe, expect, it } from 'vitest';
import { fitText, labelLanes, renderDrillChart } from '../../../src/cli/drill/chart.js';
import type { DrillEvent, DrillResult } from '../../../src/cli/drill/report.js';

/** A result whose events crowd together: a runbook's steps are often milliseconds apart. */
function crowdedResult(events: DrillEvent[]): DrillResult {
  return {
    seed: 1,
    fault: 'double-failover',
    plan: {},
    workers: 3,
    ratePerWorker: 200,
    oldPrimary: 'pg-0',
    newPrimary: 'pg-2',
    forkPoint: null,
    timings: { detectionMs: 300, promotionMs: 100, firstWriteMs: 900, drainMs: 2000, rtoMs: 4000 },
    incidents: [],
    rounds: [],
    rows: { acknowledged: 100, inNewPrimary: 100, lost: 0, duplicates: 0, recoveredByDrain: 0, resentByWorkers: 0, refused: 0, refusedButStored: 0 },
    appendLatencyMs: { p50: 1, p99: 2, max: 3 },
    maxAckGapMs: 100,
    notifications: 0,
    slack: { published: 0, delivered: 0, undelivered: 0, deadLetters: [], refusedCalls: {} },
    checks: [],
    failure: null,
    timeline: events,
    series: { bucketMs: 250, acknowledged: new Array(80).fill(50), committed: { 'pg-0': new Array(80).fill(50) } },
    ok: true,
  };
}

interface Box {
  readonly text: string;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

/** The boxes of the SVG's text elements of one font size, with the chart's own width estimate (0.62 em per character). */
function textBoxes(svg: string, size: number): Box[] {
  const boxes: Box[] = [];
  for (const m of svg.matchAll(/<text x="([\d.]+)" y="([\d.]+)" font-size="(\d+)"[^>]*text-anchor="(\w+)"[^>]*>([^<]*)<\/text>/g)) {
    if (Number(m[3]) !== size) continue;
    const x = Number(m[1]);
    const y = Number(m[2]);
    const width = [...m[5]!].length * size * 0.62;
    const left = m[4] === 'middle' ? x - width / 2 : m[4] === 'end' ? x - width : x;
    boxes.push({ text: m[5]!, left, right: left + width, top: y - size, bottom: y });
  }
  return boxes;
}

const overlap = (a: Box, b: Box) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

describe('drill chart', () => {
  it('labelLanes never puts two overlapping labels in one lane, and uses a new lane only when it must', () => {
    const xs = [100, 101, 102, 103, 200, 104, 300];
    const widths = xs.map(() => 10);
    const lanes = labelLanes(xs, widths);
    for (let i = 0; i < xs.length; i++) {
      for (let j = i + 1; j < xs.length; j++) {
        if (lanes[i] === lanes[j]) expect(Math.abs(xs[i]! - xs[j]!)).toBeGreaterThanOrEqual(10);
      }
    }
    expect(lanes[4]).toBe(0); // far from the crowd: back in the first lane
    expect(lanes[6]).toBe(0);
    expect(Math.max(...lanes)).toBe(4); // five labels within 4 px of each other: five lanes
  });

  it('no two event numbers overlap on the chart, however close the events are (the bug: they printed on top of each other)', () => {
    const names = ['confirm primary down done', 'preflight start', 'preflight done', 'plan warning', 'plan done', 'fence old primary done', 'record fork point done', 'promote done', 'wait until writable done', 'isolate old primary done', 'repoint writer done', 'drain workers start'];
    const events: DrillEvent[] = [
      { atMs: 0, kind: 'drill', name: 'load started' },
      { atMs: 6000, kind: 'nemesis', name: 'primary killed', detail: 'kill -9 pg-0' },
      ...names.map((name, i): DrillEvent => ({ atMs: 6300 + i * 3, kind: 'runbook', name })),
      ...names.map((name, i): DrillEvent => ({ atMs: 12_000 + i * 2, kind: 'runbook', name: `#2 ${name}` })),
    ];
    const svg = renderDrillChart(crowdedResult(events));
    const numbers = textBoxes(svg, 9);
    expect(numbers.map((b) => b.text)).toEqual(events.map((_, i) => String(i + 1)));
    for (let i = 0; i < numbers.length; i++) {
      for (let j = i + 1; j < numbers.length; j++) expect(overlap(numbers[i]!, numbers[j]!), `${numbers[i]!.text} and ${numbers[j]!.text}`).toBe(false);
    }
    // The numbers sit above the plot area, not on the chart's title lines.
    const titleBottom = 48;
    for (const b of numbers) expect(b.top).toBeGreaterThan(titleBottom);
  });

  it('the event list below the plot fits its two columns (long labels are cut with an ellipsis)', () => {
    const events: DrillEvent[] = Array.from({ length: 30 }, (_, i) => ({ atMs: i * 500, kind: 'runbook', name: `step ${i} ${'with a very long description '.repeat(4)}` }));
    const svg = renderDrillChart(crowdedResult(events));
    const list = textBoxes(svg, 11).filter((b) => /^\d+\. /.test(b.text));
    expect(list).toHaveLength(30);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) expect(overlap(list[i]!, list[j]!), `${list[i]!.text} / ${list[j]!.text}`).toBe(false);
    }
    expect(list.every((b) => b.text.endsWith('…'))).toBe(true);
  });

  it('marks nemesis events in their own colour', () => {
    const svg = renderDrillChart(crowdedResult([{ atMs: 1000, kind: 'nemesis', name: 'partition' }]));
    expect(svg).toContain('stroke="#d62728"');
    expect(svg).toMatch(/1\. 1\.00s ⚡ partition/);
  });

  it('fitText cuts only what is too long', () => {
    expect(fitText('short', 10)).toBe('short');
    expect(fitText('exactly ten', 11)).toBe('exactly ten');
    expect(fitText('much too long', 5)).toBe('much…');
  });
});
