/** Plain-text tables for CLI output: every command's human format goes through here. */
export interface Column<Row> {
  readonly header: string;
  readonly value: (row: Row) => string | number | boolean | null | undefined;
  readonly align?: 'left' | 'right';
}

export function renderTable<Row>(columns: readonly Column<Row>[], rows: readonly Row[]): string {
  const cells = rows.map((row) => columns.map((c) => formatCell(c.value(row))));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) =>
    values
      .map((v, i) => (columns[i]!.align === 'right' ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

/** Two-column key/value table for single-record results (status, summaries). */
export function renderKeyValues(record: Readonly<Record<string, unknown>>): string {
  const rows = flatten(record, '');
  return renderTable(
    [
      { header: 'field', value: (r) => r.key },
      { header: 'value', value: (r) => stringify(r.value) },
    ],
    rows,
  );
}

/** Nested objects as dotted keys (`lineage.epoch`), so a report reads as one column of fields; arrays stay JSON. */
function flatten(record: Readonly<Record<string, unknown>>, prefix: string): { key: string; value: unknown }[] {
  return Object.entries(record).flatMap(([key, value]) =>
    value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0
      ? flatten(value as Record<string, unknown>, `${prefix}${key}.`)
      : [{ key: `${prefix}${key}`, value }],
  );
}

function stringify(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function formatCell(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return String(v);
}
