/** Messages between the drill and its load-worker processes. */
export interface LoadWorkerSpec {
  readonly workerId: string;
  readonly bufferPath: string;
  readonly configPath: string;
  readonly stream: string;
  readonly ratePerSecond: number;
  /**
   * true (default): this process also runs the agent's sync daemon (a Node app embedding WriteBuffer).
   * false: it only appends; the agent runs as its own process (`rds-failover-agent run`, like the systemd unit
   * on a worker instance), which the drill can kill and start again while the appends go on.
   */
  readonly syncInProcess?: boolean;
}

export type LoadWorkerCommand =
  /** Stop appending, wait until nothing is pending (synced by whichever daemon runs), report 'stopped' and exit. */
  | { readonly type: 'stop'; readonly syncTimeoutMs: number }
  /** 'full': appends get no room beyond what the buffer holds now (a full volume); null: room again. */
  | { readonly type: 'disk'; readonly space: 'full' | null };

export type LoadWorkerMessage =
  | { readonly type: 'ready'; readonly pid: number }
  /** [id, wall-clock ms when acknowledged, append latency µs] */
  | { readonly type: 'acks'; readonly acks: readonly [string, number, number][] }
  /** Appends the buffer refused (nothing stored, never acknowledged): [id, wall-clock ms], and the first error's text. */
  | { readonly type: 'refused'; readonly refused: readonly [string, number][]; readonly error: string }
  | { readonly type: 'stopped'; readonly appended: number; readonly pendingRows: number; readonly lastSyncError: string | null };
