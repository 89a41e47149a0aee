/** One lag figure pair for one replica at one instant. */
export interface LagSample {
  readonly clusterId: string;
  readonly replicaId: string;
  /** null when unknown (not published). */
  readonly lagSeconds: number | null;
  readonly lagBytes: number | null;
  /** Milliseconds since the epoch the sample was taken. */
  readonly at: number;
}

/** Where the lag monitor publishes its metrics (CloudWatch EMF in AWS, memory in tests). */
export interface MetricsSink {
  recordLag(sample: LagSample): void;
  /** Writes out whatever is buffered. */
  flush(): Promise<void>;
}
