/** Every drill fault, by name: adding a fault is one module and one line here. */
import { killPrimary, replicaLag, switchover } from './basic.js';
import type { AnyFault } from './fault.js';

export const FAULTS: readonly AnyFault[] = [killPrimary, switchover, replicaLag];

export const FAULT_NAMES: readonly string[] = FAULTS.map((f) => f.name);

export function faultByName(name: string): AnyFault {
  const fault = FAULTS.find((f) => f.name === name);
  if (!fault) throw new Error(`--fault: unknown fault '${name}'; expected one of ${FAULT_NAMES.join(', ')}`);
  return fault;
}
