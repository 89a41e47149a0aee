import type { Client, Connection } from 'pg';

/**
 * `COPY ... FROM STDIN` over pg's own protocol handling, without pg-copy-streams (not installed): pg
 * accepts any object with `submit(connection)` as a query and routes the backend's messages to it.
 * The data is sent from memory; callers build COPY text with `copyTextField`.
 */
class CopyFromQuery {
  callback?: (error: Error | null, rowCount?: number) => void;
  private rowCount = 0;
  private error: Error | null = null;

  constructor(
    readonly text: string,
    private readonly chunks: readonly Buffer[],
  ) {}

  // The data goes out right behind the COPY statement instead of after CopyInResponse, so the server can
  // run the whole COPY while this process is busy with other (synchronous) work. A backend that fails the
  // statement before entering COPY mode discards the stray CopyData/CopyDone messages (protocol rule).
  submit(connection: Connection & { sendCopyFromChunk(chunk: Buffer): void; endCopyFrom(): void }): void {
    connection.query(this.text);
    for (const chunk of this.chunks) connection.sendCopyFromChunk(chunk);
    connection.endCopyFrom();
  }

  handleCopyInResponse(): void {}

  handleCommandComplete(message: { text: string }): void {
    const match = /^COPY (\d+)/.exec(message.text);
    if (match) this.rowCount = Number(match[1]);
  }

  handleReadyForQuery(): void {
    this.finish();
  }

  handleError(error: Error): void {
    // pg calls this for a backend error (ReadyForQuery follows without an active query) and for a dead socket.
    this.error = error;
    this.finish();
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
  handleCopyData(): void {}

  private finish(): void {
    const callback = this.callback;
    this.callback = undefined;
    callback?.(this.error, this.rowCount);
  }
}

/** Runs `copySql` (a COPY ... FROM STDIN statement) with `data` as its input; resolves to the row count. */
export function copyFrom(client: Client, copySql: string, data: string | Buffer): Promise<number> {
  const buffer = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const chunks: Buffer[] = [];
  const chunkSize = 1 << 20;
  for (let offset = 0; offset < buffer.length; offset += chunkSize) chunks.push(buffer.subarray(offset, offset + chunkSize));
  return new Promise((resolve, reject) => {
    const query = new CopyFromQuery(copySql, chunks);
    query.callback = (error, rowCount) => (error ? reject(error) : resolve(rowCount ?? 0));
    (client as unknown as { query(q: CopyFromQuery): void }).query(query);
  });
}

/** One field in COPY text format: NULL as \N, backslash, tab, newline and carriage return escaped. */
export function copyTextField(value: string | null): string {
  if (value === null) return '\\N';
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}
