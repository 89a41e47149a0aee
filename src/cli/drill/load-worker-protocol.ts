/** Messages between the drill and its load-worker processes. */
export interface LoadWorkerSpec {
  readonly workerId: string;
  readonly bufferPath: string;
  readonly configPath: string;
  readonly stream: string;
  readonly ratePerSecond: number;
}

export type LoadWorkerMessage =
  | { readonly type: 'ready'; readonly pid: number }
  /** [id, wall-clock ms when acknowledged, append latency µs] */
  | { readonly type: 'acks'; readonly acks: readonly [string, number, number][] }
  | { readonly type: 'stopped'; readonly appended: number; readonly pendingRows: number; readonly lastSyncError: string | null };
