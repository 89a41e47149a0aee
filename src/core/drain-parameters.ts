import { isEpochId } from './lineage.js';
import type { DrainRequest } from '../ports/worker-control.js';

/** The stack's drain document (lib/drain-document.ts), named after the cluster so the CLI finds it without the stack. */
export function drainDocumentName(clusterId: string): string {
  return `rds-failover-${clusterId}-drain`;
}

/**
 * SendCommand TimeoutSeconds of a drain: a drain not started on the instance within this does not run. With the
 * document's execution timeout (the stack's drainTimeoutSeconds) it makes the command's total timeout: how long a
 * drain sent to an instance SSM still lists Online but cannot reach stays Pending before it ends DeliveryTimedOut.
 */
export const DRAIN_DELIVERY_TIMEOUT_SECONDS = 60;

/**
 * The drain document's parameters, each empty or a value: SSM refuses any other text (the document's
 * allowedPattern), and drainParameters checks the same before anything is sent.
 */
export const DRAIN_DOCUMENT_PARAMETERS = {
  epoch: /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$/,
} as const;

/** The drain document's parameters for a request (every value checked against the document's patterns). */
export function drainParameters(request: DrainRequest): Record<'epoch', [string]> {
  const epoch = request.epochId ?? '';
  if (epoch !== '' && !isEpochId(epoch)) throw new Error(`drain: epoch must be the epoch's UUID (lowercase), got '${epoch}'`);
  if (!DRAIN_DOCUMENT_PARAMETERS.epoch.test(epoch)) throw new Error(`drain: epoch '${epoch}' is outside what the drain document accepts (${DRAIN_DOCUMENT_PARAMETERS.epoch.source})`);
  return { epoch: [epoch] };
}
