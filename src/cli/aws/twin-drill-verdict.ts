/** Whether a twin drill run proves what it should, and a readable summary of it (the command and the test share it). */
import type { TwinDrillReport } from './twin-drill.js';

export function twinDrillVerdict(r: TwinDrillReport): { ok: boolean; text: string } {
  const problems = [
    ...(r.outcome !== 'succeeded' ? [`the failover ${r.outcome}${r.error ? `: ${r.error}` : ''}`] : []),
    ...(r.outcome === 'succeeded' && r.lost > 0 ? [`${r.lost} acknowledged rows lost`] : []),
    ...(r.duplicates > 0 ? [`${r.duplicates} duplicates`] : []),
    ...r.denials.map((d) => `denied: ${d.explanation}`),
    ...r.unsupportedConditionKeys.map((k) => `${k.policy} ${k.statement}: ${k.key} is not supported by ${k.action}`),
    ...r.rebuilt.filter((b) => b.status !== 'available' || !b.streaming).map((b) => `replica ${b.instance} is ${b.status}${b.streaming ? '' : ', not streaming'}`),
    ...(r.lockHeld ? ['the failover lock is still held'] : []),
    ...offlineProblems(r),
  ];
  const text = [
    `AWS twin failover ${r.oldPrimary} -> ${r.newPrimary ?? '(none)'}: ${problems.length === 0 ? 'OK' : 'FAILED'} in ${(r.failoverMs / 1000).toFixed(1)} s (twin time, not AWS's)`,
    r.newPrimary
      ? `rows: ${r.acknowledged} acknowledged, ${r.rowsOnNewPrimary} on the new primary, lost ${r.lost}, duplicates ${r.duplicates}; ${r.rowsOnlyOnOldPrimary} were only on the old primary (the drain re-sent ${r.drainResent})`
      : `rows: ${r.acknowledged} acknowledged, ${r.rowsOnlyOnOldPrimary} of them only on the old primary; nothing was promoted (they wait in the worker buffers)`,
    `replicas rebuilt: ${r.rebuilt.map((b) => `${b.instance} (${b.status}, from ${b.source ?? '?'})`).join(', ') || 'none'}; notifications: ${r.notifications.length}; lock released: ${!r.lockHeld}`,
    `AWS calls: ${r.calls} (${r.functionCalls} by the functions, ${r.throttled} throttled); authorizations evaluated: ${r.evaluated}; denied: ${r.denials.length}`,
    `rds-failover plan / failover / status --stack: exit ${r.cli.plan.code} / ${r.cli.failover.code} / ${r.cli.status.code}`,
    ...(r.offlineWorker ? offlineLines(r.offlineWorker, r.epoch) : []),
    ...r.warnings.map((w) => `warning: ${w}`),
    ...problems.map((p) => `problem: ${p}`),
  ];
  return { ok: problems.length === 0, text: text.join('\n') };
}

/** With a worker cut off: the execution must report it unconfirmed, and once reconnected it must confirm the execution's epoch. */
function offlineProblems(r: TwinDrillReport): string[] {
  const o = r.offlineWorker;
  if (!o || r.outcome !== 'succeeded') return [];
  return [
    ...(!o.reportedUnconfirmed ? [`the execution did not report the offline worker ${o.instanceId} unconfirmed (verification.unconfirmed: ${o.unconfirmedInExecution.join(', ') || 'none'})`] : []),
    ...(!r.epoch || o.confirmedEpoch !== r.epoch ? [o.confirmError ?? `${o.instanceId} confirmed ${o.confirmedEpoch ?? 'nothing'}, not the execution's epoch ${r.epoch ?? '(none)'}`] : []),
  ];
}

function offlineLines(o: NonNullable<TwinDrillReport['offlineWorker']>, epoch: string | undefined): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  return [
    `offline worker ${o.instanceId}: cut off ${s(o.cutOffMs)}; SSM reported it ${o.pingStatusWhenCutOff ?? 'not listed'} when cut off, ${o.pingStatusBeforeBack ?? 'not listed'} before it was reconnected (ConnectionLost after ${s(o.connectionLostAfterMs)})`,
    `  the drain step started ${o.drainsStartedAfterMs === null ? 'never' : `${s(o.drainsStartedAfterMs)} after the cut-off`}${o.drainsStartedAfterMs !== null && o.drainsStartedAfterMs >= o.connectionLostAfterMs ? ' (SSM already reported it ConnectionLost: no drain was sent to it)' : ''}; its drain: ${o.drain ? `${o.drain.status} after ${o.drain.attempts} attempt(s)${o.drain.error ? ` (${o.drain.error})` : ''}` : 'none'}`,
    `  reported unconfirmed by the execution: ${o.reportedUnconfirmed ? 'yes' : 'NO'} (unconfirmed: ${o.unconfirmedInExecution.join(', ') || 'none'}; warned: ${o.warned ? 'yes' : 'no'})`,
    o.confirmedEpoch === epoch && epoch
      ? `  confirmed ${epoch} ${s(o.confirmWaitMs)} after it was reconnected, re-sent ${o.rowsResent} rows (${o.rowsOnlyOnOldPrimary} of its rows were only on the old primary)`
      : `  did not confirm ${epoch ?? '(no epoch)'}: ${o.confirmError ?? `confirmed ${o.confirmedEpoch ?? 'nothing'}`}`,
    `  ${o.appendedWhileCutOff} rows appended while it was cut off, ${o.lostAppendedWhileCutOff} of them lost`,
  ];
}
