import { formatDurationMs } from '../../core/duration.js';
import type { DrillResult } from './report.js';

const WIDTH = 960;
const PLOT_HEIGHT = 360;
const MARGIN = { left: 64, right: 24, top: 72, bottom: 48 };
const EVENT_LINE = 15;
const NODE_COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#8c564b'];

/** A timeline chart a person can read: writes acknowledged vs committed per node, with the runbook's events. */
export function renderDrillChart(result: DrillResult): string {
  const { series } = result;
  const buckets = Math.max(series.acknowledged.length, ...Object.values(series.committed).map((s) => s.length), 1);
  const perSecond = 1000 / series.bucketMs;
  const allRates = [...series.acknowledged, ...Object.values(series.committed).flat()].map((v) => v * perSecond);
  const yMax = niceCeiling(Math.max(1, ...allRates));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PLOT_HEIGHT - MARGIN.top - MARGIN.bottom;
  const events = result.timeline;
  const HEIGHT = PLOT_HEIGHT + 24 + Math.ceil(events.length / 2) * EVENT_LINE;
  const totalMs = buckets * series.bucketMs;
  const x = (ms: number) => MARGIN.left + (ms / totalMs) * plotW;
  const y = (rate: number) => MARGIN.top + plotH - (rate / yMax) * plotH;
  const path = (values: readonly number[]) =>
    values.map((v, i) => `${i === 0 ? 'M' : 'L'}${x((i + 0.5) * series.bucketMs).toFixed(1)},${y(v * perSecond).toFixed(1)}`).join(' ');

  const parts: string[] = [];
  parts.push(`<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  const verdict = result.ok ? 'PASS' : 'FAIL';
  parts.push(
    text(MARGIN.left, 24, `Failover drill (${result.fault}, seed ${result.seed}): ${verdict} — lost ${result.rows.lost}, duplicates ${result.rows.duplicates}, ${result.rows.acknowledged} rows acknowledged`, 15, 'bold'),
  );
  parts.push(
    text(
      MARGIN.left,
      44,
      `detection ${formatDurationMs(result.timings.detectionMs)} · first write on ${result.newPrimary} ${formatDurationMs(result.timings.firstWriteMs)} after the fault · drain ${formatDurationMs(result.timings.drainMs)} · RTO ${formatDurationMs(result.timings.rtoMs)}`,
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
    parts.push(text(x(s * 1000), PLOT_HEIGHT - MARGIN.bottom + 16, `${s}s`, 11, 'normal', 'middle'));
  }
  parts.push(text(16, MARGIN.top + plotH / 2, 'rows/s', 11, 'normal', 'middle', -90));
  parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(0)}" y2="${y(0)}" stroke="#333"/>`);
  parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${y(0)}" stroke="#333"/>`);

  // Events: numbered markers on the plot (numbers staggered, events are often milliseconds apart), listed below it.
  events.forEach((event, i) => {
    const ex = x(event.atMs);
    parts.push(`<line x1="${ex.toFixed(1)}" x2="${ex.toFixed(1)}" y1="${MARGIN.top - 4}" y2="${y(0)}" stroke="#ff7f0e" stroke-dasharray="3,3"/>`);
    parts.push(text(ex, MARGIN.top - 6 - (i % 2) * 11, String(i + 1), 9, 'bold', 'middle', 0, '#b35900'));
    const column = i < Math.ceil(events.length / 2) ? 0 : 1;
    const row = column === 0 ? i : i - Math.ceil(events.length / 2);
    const label = `${i + 1}. ${(event.atMs / 1000).toFixed(2)}s ${event.name}`;
    parts.push(text(MARGIN.left + column * (plotW / 2), PLOT_HEIGHT + 16 + row * EVENT_LINE, label, 11, 'normal', 'start', 0, '#7a3d00'));
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
    const ly = MARGIN.top + 12 + i * 16;
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" stroke-width="2"/>`);
    parts.push(text(lx + 24, ly, label!, 11));
  });

  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif">\n${parts.join('\n')}\n</svg>\n`;
}

function niceCeiling(value: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((c) => c >= value) ?? value;
}

function text(x: number, y: number, content: string, size: number, weight = 'normal', anchor = 'start', rotate = 0, fill = '#222'): string {
  const transform = rotate ? ` transform="rotate(${rotate} ${x} ${y})"` : '';
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-size="${size}" font-weight="${weight}" text-anchor="${anchor}" fill="${fill}"${transform}>${escapeXml(content)}</text>`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
