import { StateConflictError, type AlertStateStore, type VersionedState } from '../../src/ports/alert-state-store.js';
import type { Clock } from '../../src/ports/clock.js';
import type { LagSample, MetricsSink } from '../../src/ports/metrics-sink.js';
import type { Notification, Notifier } from '../../src/ports/notifier.js';

/** Keeps the monitor state in memory with the same version semantics as the DynamoDB store. */
export class MemoryAlertStateStore implements AlertStateStore {
  readonly saves: VersionedState[] = [];
  private current: VersionedState | null = null;

  async load(): Promise<VersionedState | null> {
    return this.current === null ? null : structuredClone(this.current);
  }

  async save(clusterId: string, state: unknown, expectedVersion: number | null): Promise<number> {
    if ((this.current?.version ?? null) !== expectedVersion) throw new StateConflictError(clusterId, expectedVersion);
    const version = (expectedVersion ?? 0) + 1;
    this.current = { state: structuredClone(state), version };
    this.saves.push(this.current);
    return version;
  }

  /** Simulates another run saving meanwhile. */
  bump(): void {
    if (this.current) this.current = { ...this.current, version: this.current.version + 1 };
    else this.current = { state: {}, version: 1 };
  }
}

export class MemoryMetricsSink implements MetricsSink {
  readonly samples: LagSample[] = [];
  flushed = 0;
  recordLag(sample: LagSample): void {
    this.samples.push(sample);
  }
  async flush(): Promise<void> {
    this.flushed += 1;
  }
}

export class RecordingNotifier implements Notifier {
  readonly sent: Notification[] = [];
  failNext = 0;
  async notify(notification: Notification): Promise<void> {
    if (this.failNext > 0) {
      this.failNext -= 1;
      throw new Error('SNS unavailable');
    }
    this.sent.push(notification);
  }
}

/** Virtual time: sleep advances the clock instantly. */
export class FakeClock implements Clock {
  readonly sleeps: number[] = [];
  constructor(public current: number) {}
  now(): number {
    return this.current;
  }
  async sleep(ms: number): Promise<void> {
    this.sleeps.push(ms);
    this.current += Math.max(0, ms);
  }
}
