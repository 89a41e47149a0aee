/** Every drill fault, by name: adding a fault is one module and one line here. */
import { killPrimary, replicaLag, switchover } from './basic.js';
import { controllerCrash } from './controller-crash.js';
import { diskFull } from './disk-full.js';
import { doubleFailover } from './double-failover.js';
import type { AnyFault } from './fault.js';
import { killDuringDrain } from './kill-during-drain.js';
import { partition } from './partition.js';
import { slackDown } from './slack-down.js';

export const FAULTS: readonly AnyFault[] = [killPrimary, switchover, replicaLag, doubleFailover, killDuringDrain, controllerCrash, partition, slackDown, diskFull];

export const FAULT_NAMES: readonly string[] = FAULTS.map((f) => f.name);

export function faultByName(name: string): AnyFault {
  const fault = FAULTS.find((f) => f.name === name);
  if (!fault) throw new Error(`--fault: unknown fault '${name}'; expected one of ${FAULT_NAMES.join(', ')}`);
  return fault;
}
