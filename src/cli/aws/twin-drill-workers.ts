/** The twin drill's workers: the template's worker instances, and which one a drill keeps offline. */
import { DeployedTemplate, type CfnTemplate } from '../../local/aws-twin/cfn-template.js';

/** The instance ids the twin gives the template's EC2 instances, in template order (the drill's workers are known by them). */
export function workerInstanceIds(o: { readonly template: CfnTemplate; readonly account: string; readonly region: string; readonly stackName: string }): string[] {
  const names = new DeployedTemplate(o.template, { account: o.account, region: o.region, stackName: o.stackName });
  return names.ofType('AWS::EC2::Instance').map((id) => names.ref(id));
}

/** Which of the template's worker instances is kept offline: a 1-based position or an instance id. */
export function offlineWorkerIndex(which: number | string | undefined, instanceIds: readonly string[]): number | undefined {
  if (which === undefined) return undefined;
  const listed = `the template's worker instances are ${instanceIds.map((id, i) => `${i + 1}: ${id}`).join(', ') || 'none'}`;
  if (typeof which === 'number') {
    if (!Number.isInteger(which) || which < 1 || which > instanceIds.length) throw new Error(`offlineWorker must be a position from 1 to ${instanceIds.length} or an instance id, got ${which}; ${listed}`);
    return which - 1;
  }
  const index = instanceIds.indexOf(which);
  if (index < 0) throw new Error(`offlineWorker '${which}' is not a worker instance of the template; ${listed}`);
  return index;
}

