import { ms, type DrillEventKind, type DrillResult } from './report.js';
import { niceCeiling, svgDocument, svgText as text } from './svg.js';

const WIDTH = 960;
const PLOT_HEIGHT = 360;
const MARGIN = { left: 64, right: 24, top: 60, bottom: 48 };
const EVENT_LINE = 15;
/** Height of one row of event numbers above the plot. */
const LANE_HEIGHT = 11;
const NODE_COLOURS = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#17becf'];
const KIND_COLOURS: Readonly<Record<DrillEventKind, { line: string; text: string }>> = {
  nemesis: { line: '#d62728', text: '#a50f15' },
  runbook: { line: '#ff7f0e', text: '#7a3d00' },
  drill: { line: '#999999', text: '#444444' },
};
/** Width of a character of the chart's sans-serif at `size` px, generously estimated (labels must not touch). */
const charWidth = (size: number) => size * 0.62;

/**
 * Rows ("lanes") for labels centred at xs with the given widths, so that no two labels in one lane overlap:
 * each label takes the lowest lane whose last label ends left of it (with a gap). Returns the lane of each.
 */
export function labelLanes(xs: readonly number[], widths: readonly number[], gap = 3): number[] {
  const order = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]! || a - b);
  const laneEnds: number[] = [];
  const lanes = new Array<number>(xs.length);
  for (const i of order) {
    const left = xs[i]! - widths[i]! / 2;
    let lane = laneEnds.findIndex((end) => end + gap <= left);
    if (lane === -1) lane = laneEnds.push(Number.NEGATIVE_INFINITY) - 1;
    laneEnds[lane] = xs[i]! + widths[i]! / 2;
    lanes[i] = lane;
  }
  return lanes;
}

/** `text` cut to at most `maxChars` characters, with an ellipsis when cut. */
export function fitText(text: string, maxChars: number): string {
  return text.length <= maxChars ? text : `${text.slice(0, Math.max(0, maxChars - 1))}…`;
}

/**
 * A timeline chart a person can read: writes acknowledged vs committed per node, with every event (nemesis
 * actions in red, runbook steps in orange, the drill's own in grey) numbered on the plot and listed below it.
 */
export function renderDrillChart(result: DrillResult): string {
  const { series } = result;
  const buckets = Math.max(series.acknowledged.length, ...Object.values(series.committed).map((s) => s.length), 1);
  const perSecond = 1000 / series.bucketMs;
  const allRates = [...series.acknowledged, ...Object.values(series.committed).flat()].map((v) => v * perSecond);
  const yMax = niceCeiling(allRates.reduce((a, b) => Math.max(a, b), 1));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const events = result.timeline;
  const totalMs = buckets * series.bucketMs;
  const x = (atMs: number) => MARGIN.left + (atMs / totalMs) * plotW;
  // Event numbers above the plot, in as many lanes as it takes for none to overlap another.
  const numberWidths = events.map((_, i) => String(i + 1).length * charWidth(9) + 2);
  const lanes = labelLanes(events.map((e) => x(e.atMs)), numberWidths);
  const laneCount = lanes.reduce((a, b) => Math.max(a, b + 1), 0);
  const top = MARGIN.top + laneCount * LANE_HEIGHT;
  const plotBottom = PLOT_HEIGHT - MARGIN.bottom + laneCount * LANE_HEIGHT;
  const plotH = plotBottom - top;
  const listTop = plotBottom + MARGIN.bottom;
  const HEIGHT = listTop + 24 + Math.ceil(events.length / 2) * EVENT_LINE;
  const y = (rate: number) => top + plotH - (rate / yMax) * plotH;
  const path = (values: readonly number[]) =>
    values.map((v, i) => `${i === 0 ? 'M' : 'L'}${x((i + 0.5) * series.bucketMs).toFixed(1)},${y(v * perSecond).toFixed(1)}`).join(' ');

  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  const verdict = result.ok ? 'PASS' : 'FAIL';
  parts.push(
    text(MARGIN.left, 24, `Failover drill (${result.fault}, seed ${result.seed}): ${verdict} — lost ${result.rows.lost ?? '-'}, duplicates ${result.rows.duplicates ?? '-'}, ${result.rows.acknowledged} rows acknowledged`, 15, 'bold'),
  );
  parts.push(
    text(
      MARGIN.left,
      44,
      `detection ${ms(result.timings.detectionMs)} · first write on ${result.newPrimary ?? '(none)'} ${ms(result.timings.firstWriteMs)} after the fault · drain ${ms(result.timings.drainMs)} · RTO ${ms(result.timings.rtoMs)}`,
      12,
    ),
  );
  // Axes and grid.
  for (let i = 0; i <= 4; i++) {
    const rate = (yMax * i) / 4;
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(rate)}" y2="${y(rate)}" stroke="#e5e5e5"/>`);
    parts.push(text(MARGIN.left - 8, y(rate) + 4, String(Math.round(rate)), 11, 'normal', 'end'));
  }
  const stepS = Math.max(1, Math.ceil(totalMs / 1000 / 12));
  for (let s = 0; s * 1000 <= totalMs; s += stepS) {
    parts.push(text(x(s * 1000), plotBottom + 16, `${s}s`, 11, 'normal', 'middle'));
  }
  parts.push(text(16, top + plotH / 2, 'rows/s', 11, 'normal', 'middle', -90));
  parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${top}" y2="${y(0)}" stroke="#333"/>`);

  // Events: a numbered marker on the plot each (numbers in lanes, never on top of each other), listed below it.
  const perColumn = Math.ceil(events.length / 2);
  const columnChars = Math.floor((plotW / 2 - 12) / charWidth(11));
  events.forEach((event, i) => {
    const ex = x(event.atMs);
    const colour = KIND_COLOURS[event.kind];
    const laneY = top - 6 - lanes[i]! * LANE_HEIGHT;
    parts.push(`<line x1="${ex.toFixed(1)}" x2="${ex.toFixed(1)}" y1="${(laneY + 2).toFixed(1)}" y2="${y(0)}" stroke="${colour.line}" stroke-dasharray="3,3"/>`);
    parts.push(text(ex, laneY, String(i + 1), 9, 'bold', 'middle', 0, colour.text));
    const column = i < perColumn ? 0 : 1;
    const row = column === 0 ? i : i - perColumn;
    const label = fitText(`${i + 1}. ${(event.atMs / 1000).toFixed(2)}s ${event.kind === 'nemesis' ? '⚡ ' : ''}${event.name}`, columnChars);
    parts.push(text(MARGIN.left + column * (plotW / 2), listTop + 16 + row * EVENT_LINE, label, 11, 'normal', 'start', 0, colour.text));
  });

  // Series.
  parts.push(`<path d="${path(series.acknowledged)}" fill="none" stroke="#111" stroke-width="2"/>`);
  Object.values(series.committed).forEach((values, i) => {
    parts.push(`<path d="${path(values)}" fill="none" stroke="${NODE_COLOURS[i % NODE_COLOURS.length]}" stroke-width="1.5"/>`);
  });

  // Legend.
  const legend = [['acknowledged by the buffers', '#111'], ...Object.keys(series.committed).map((n, i) => [`committed on ${n}`, NODE_COLOURS[i % NODE_COLOURS.length]!])];
  legend.forEach(([label, colour], i) => {
    const lx = WIDTH - MARGIN.right - 220;
    const ly = top + 12 + i * 16;
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`);
    parts.push(text(lx + 24, ly, label!, 11));
  });

  return svgDocument(WIDTH, HEIGHT, parts);
}
