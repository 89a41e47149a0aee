/** battery.svg: per fault, a square per run (green passed, red failed) and every run's RTO on one axis. */
import { formatDurationMs } from '../../core/duration.js';
import { percentile } from '../../core/stats.js';
import type { BatteryReport } from './battery.js';
import { escapeXml, niceCeiling, svgDocument, svgText } from './svg.js';

/** Per fault: a square per run (green passed, red failed; the seed in its tooltip) and the RTO of each run on one axis, with the median marked. */
export function renderBatteryChart(report: BatteryReport): string {
  const WIDTH = 960;
  const ROW = 34;
  const TOP = 70;
  const NAME_W = 150;
  const SQUARES_W = 230;
  const axisLeft = NAME_W + SQUARES_W + 20;
  const axisRight = WIDTH - 30;
  const height = TOP + report.faults.length * ROW + 50;
  const allRto = report.runs.map((r) => r.rtoMs).filter((v): v is number => v !== null && Number.isFinite(v));
  const xMax = niceCeiling(Math.max(1000, ...allRto));
  const x = (msValue: number) => axisLeft + (msValue / xMax) * (axisRight - axisLeft);
  const parts: string[] = [`<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`];
  const t = report.totals;
  parts.push(svgText(16, 26, `Nemesis battery: ${t.passed}/${t.runs} runs passed · lost ${t.lost} · duplicates ${t.duplicates} · ${t.acknowledged} rows acknowledged`, 15, 'bold'));
  parts.push(svgText(16, 46, `per fault: one square per run (seed in the tooltip), and the RTO (fault → runbook finished) of every run; | = median`, 12));
  // RTO axis.
  for (let i = 0; i <= 5; i++) {
    const v = (xMax * i) / 5;
    parts.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${TOP - 8}" y2="${TOP + report.faults.length * ROW}" stroke="#eeeeee"/>`);
    parts.push(svgText(x(v), TOP + report.faults.length * ROW + 16, formatDurationMs(v), 11, 'normal', 'middle'));
  }
  parts.push(svgText((axisLeft + axisRight) / 2, TOP + report.faults.length * ROW + 34, 'RTO', 11, 'normal', 'middle'));
  report.faults.forEach((f, row) => {
    const cy = TOP + row * ROW + ROW / 2;
    const colour = f.passed === f.runs ? '#1a7f37' : '#cf222e';
    parts.push(svgText(16, cy + 4, f.fault, 12, 'bold'));
    parts.push(svgText(NAME_W - 8, cy + 4, `${f.passed}/${f.runs}`, 12, 'bold', 'end', 0, colour));
    const runs = report.runs.filter((r) => r.fault === f.fault);
    const size = Math.max(4, Math.min(14, Math.floor(SQUARES_W / Math.max(1, runs.length)) - 2));
    runs.forEach((r, i) => {
      const sx = NAME_W + i * (size + 2);
      parts.push(`<rect x="${sx}" y="${cy - size / 2}" width="${size}" height="${size}" fill="${r.ok ? '#2da44e' : '#cf222e'}"><title>seed ${r.seed}: ${escapeXml(r.ok ? 'passed' : (r.failure ?? 'failed'))}</title></rect>`);
    });
    const values = runs.map((r) => r.rtoMs).filter((v): v is number => v !== null && Number.isFinite(v));
    if (values.length > 0) {
      parts.push(`<line x1="${x(Math.min(...values))}" x2="${x(Math.max(...values))}" y1="${cy}" y2="${cy}" stroke="#999999" stroke-width="2"/>`);
      runs.forEach((r) => {
        if (r.rtoMs === null || !Number.isFinite(r.rtoMs)) return;
        parts.push(`<circle cx="${x(r.rtoMs).toFixed(1)}" cy="${cy}" r="3.5" fill="${r.ok ? '#2da44e' : '#cf222e'}" fill-opacity="0.7"><title>seed ${r.seed}: RTO ${formatDurationMs(r.rtoMs)}</title></circle>`);
      });
      const p50 = percentile(values, 50);
      parts.push(`<line x1="${x(p50)}" x2="${x(p50)}" y1="${cy - 9}" y2="${cy + 9}" stroke="#111111" stroke-width="2"/>`);
    } else {
      parts.push(svgText(axisLeft, cy + 4, 'no runbook finished', 11, 'normal', 'start', 0, '#cf222e'));
    }
  });
  return svgDocument(WIDTH, height, parts);
}
