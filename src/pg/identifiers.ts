export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** 'schema.table' or 'table', each part quoted. */
export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}
