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
  ];
  const text = [
    `AWS twin failover ${r.oldPrimary} -> ${r.newPrimary ?? '(none)'}: ${problems.length === 0 ? 'OK' : 'FAILED'} in ${(r.failoverMs / 1000).toFixed(1)} s (twin time, not AWS's)`,
    r.newPrimary
      ? `rows: ${r.acknowledged} acknowledged, ${r.rowsOnNewPrimary} on the new primary, lost ${r.lost}, duplicates ${r.duplicates}; ${r.rowsOnlyOnOldPrimary} were only on the old primary (the drain re-sent ${r.drainResent})`
      : `rows: ${r.acknowledged} acknowledged, ${r.rowsOnlyOnOldPrimary} of them only on the old primary; nothing was promoted (they wait in the worker buffers)`,
    `replicas rebuilt: ${r.rebuilt.map((b) => `${b.instance} (${b.status}, from ${b.source ?? '?'})`).join(', ') || 'none'}; notifications: ${r.notifications.length}; lock released: ${!r.lockHeld}`,
    `AWS calls: ${r.calls} (${r.functionCalls} by the functions, ${r.throttled} throttled); authorizations evaluated: ${r.evaluated}; denied: ${r.denials.length}`,
    `rds-failover plan / failover / status --stack: exit ${r.cli.plan.code} / ${r.cli.failover.code} / ${r.cli.status.code}`,
    ...r.warnings.map((w) => `warning: ${w}`),
    ...problems.map((p) => `problem: ${p}`),
  ];
  return { ok: problems.length === 0, text: text.join('\n') };
}
