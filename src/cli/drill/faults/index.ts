/** Every drill fault, by name: adding a fault is one module and one line here. */
import { killPrimary, replicaLag, switchover } from './basic.js';
import { controllerCrash } from './controller-crash.js';
import { diskFull } from './disk-full.js';
import { doubleFailover } from './double-failover.js';
import type { AnyFault } from './fault.js';
import { killDuringDrain } from './kill-during-drain.js';
import { partition } from './partition.js';
import { pausePrimary } from './pause-primary.js';
import { slackDown } from './slack-down.js';
import { staleReplica } from './stale-replica.js';
import { workerDown } from './worker-down.js';

export const FAULTS: readonly AnyFault[] = [killPrimary, switchover, replicaLag, doubleFailover, killDuringDrain, controllerCrash, partition, slackDown, diskFull, pausePrimary, staleReplica, workerDown];

export const FAULT_NAMES: readonly string[] = FAULTS.map((f) => f.name);

export function faultByName(name: string): AnyFault {
  const fault = FAULTS.find((f) => f.name === name);
  if (!fault) throw new Error(`--fault: unknown fault '${name}'; expected one of ${FAULT_NAMES.join(', ')}`);
  return fault;
}

/** Why the drill cannot run this fault with these settings (checked before anything starts), or undefined. */
export function faultSettingsProblem(fault: AnyFault, replicas: number): string | undefined {
  const min = fault.needs?.minReplicas ?? 1;
  return replicas < min ? `--replicas: the ${fault.name} fault needs at least ${min} replicas, got ${replicas}` : undefined;
}
