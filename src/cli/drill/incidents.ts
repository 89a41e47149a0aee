/**
 * From the runbook rounds the drill ran to the figures it reports: rounds grouped by the nemesis action they
 * answered (an incident), each incident's detection, promotion, first write on its new primary, drain and RTO.
 */
import type { RunbookEvent, RunbookState } from '../../core/runbook/index.js';
import type { RoundReport } from './faults/fault.js';
import type { DrillIncident, DrillRound, DrillTimings } from './report.js';

export interface RoundWithState extends RoundReport {
  readonly state: RunbookState | null;
  readonly cause: string;
}

export function drillRounds(rounds: readonly RoundWithState[], origin: number): DrillRound[] {
  return rounds.map((r) => ({
    round: r.round,
    mode: r.request.input.mode,
    triggeredBy: r.request.input.trigger?.sourceId ?? null,
    forced: r.request.input.force === true,
    outcome: r.outcome,
    error: r.error,
    resumed: r.events.some((e) => e.step === 'preflight' && e.phase === 'done' && e.figures.resumed === true),
    startedAtMs: r.startedAt - origin,
    endedAtMs: r.endedAt - origin,
  }));
}

/**
 * `firstCommitAt(port, afterMs)`: the earliest commit time of a drill row first committed on the node with
 * that port (at or after `afterMs`), or null.
 */
export function drillIncidents(
  rounds: readonly RoundWithState[],
  origin: number,
  portOf: (nodeId: string) => number | undefined,
  firstCommitAt: (port: number, afterMs: number) => number | null,
): DrillIncident[] {
  const groups = new Map<number, RoundWithState[]>();
  for (const r of rounds) groups.set(r.incidentAt, [...(groups.get(r.incidentAt) ?? []), r]);
  return [...groups.entries()].map(([incidentAt, group]) => {
    const events = group.flatMap((r) => r.events);
    const last = group[group.length - 1]!;
    const plan = [...events].reverse().find((e) => e.step === 'plan' && e.phase === 'done');
    const oldPrimary = typeof plan?.figures.oldPrimary === 'string' ? plan.figures.oldPrimary : null;
    const newPrimary = typeof plan?.figures.candidate === 'string' ? plan.figures.candidate : null;
    const at = (step: RunbookEvent['step'], phase: RunbookEvent['phase'], which: 'first' | 'last' = 'first') => {
      const matching = events.filter((e) => e.step === step && e.phase === phase);
      const e = which === 'first' ? matching[0] : matching[matching.length - 1];
      return e ? Date.parse(e.at) : null;
    };
    const confirmed = at('confirm', 'done') ?? incidentAt;
    const writable = at('waitWritable', 'done');
    const drainStart = at('drain', 'start');
    const drainDone = at('drain', 'done', 'last');
    const port = newPrimary === null ? undefined : portOf(newPrimary);
    const firstWrite = port === undefined || writable === null ? null : firstCommitAt(port, incidentAt);
    const timings: DrillTimings = {
      detectionMs: confirmed - incidentAt,
      promotionMs: writable === null ? null : writable - confirmed,
      firstWriteMs: firstWrite === null ? null : firstWrite - incidentAt,
      drainMs: drainStart === null || drainDone === null ? null : drainDone - drainStart,
      rtoMs: last.outcome === 'succeeded' ? last.endedAt - incidentAt : null,
    };
    return { cause: group[0]!.cause, atMs: incidentAt - origin, rounds: group.map((r) => r.round), outcome: last.outcome, oldPrimary, newPrimary, timings };
  });
}

/** The worst (largest) of each figure over the incidents; null when no incident measured it. */
export function worstTimings(incidents: readonly DrillIncident[]): DrillTimings {
  const worst = (pick: (t: DrillTimings) => number | null) => {
    const values = incidents.map((i) => pick(i.timings)).filter((v): v is number => v !== null);
    return values.length === 0 ? null : Math.max(...values);
  };
  return {
    detectionMs: worst((t) => t.detectionMs),
    promotionMs: worst((t) => t.promotionMs),
    firstWriteMs: worst((t) => t.firstWriteMs),
    drainMs: worst((t) => t.drainMs),
    rtoMs: worst((t) => t.rtoMs),
  };
}

/** Rows the drains re-inserted: from each incident's last known runbook state (a resumed state carries the drains before it). */
export function recoveredByDrain(rounds: readonly RoundWithState[]): number {
  const lastState = new Map<number, RunbookState>();
  for (const r of rounds) if (r.state) lastState.set(r.incidentAt, r.state);
  return [...lastState.values()].reduce((sum, s) => sum + (s.drains ?? []).reduce((n, d) => n + (d.summary?.inserted ?? 0), 0), 0);
}
