import { isLsn } from './lsn.js';
import type { DrainRequest } from '../ports/worker-control.js';

/** The stack's drain document (lib/drain-document.ts), named after the cluster so the CLI finds it without the stack. */
export function drainDocumentName(clusterId: string): string {
  return `rds-failover-${clusterId}-drain`;
}

/**
 * The drain document's parameters, each empty or a value: SSM refuses any other text (the document's
 * allowedPattern), and drainParameters checks the same before anything is sent.
 */
export const DRAIN_DOCUMENT_PARAMETERS = {
  forkTimeline: /^([1-9][0-9]{0,9})?$/,
  forkLsn: /^([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})?$/,
  windowSeconds: /^([1-9][0-9]{0,8})?$/,
} as const;

/** The drain document's parameters for a request (every value checked against the document's patterns). */
export function drainParameters(request: DrainRequest): Record<'forkTimeline' | 'forkLsn' | 'windowSeconds', [string]> {
  let values: { forkTimeline: string; forkLsn: string; windowSeconds: string };
  if (request.forkPoint) {
    const { timelineId, lsn } = request.forkPoint;
    if (!Number.isInteger(timelineId) || timelineId < 1) throw new Error(`drain: fork timeline must be an integer >= 1, got ${timelineId}`);
    if (!isLsn(lsn)) throw new Error(`drain: fork LSN must look like 0/3000060, got '${lsn}'`);
    values = { forkTimeline: String(timelineId), forkLsn: lsn, windowSeconds: '' };
  } else {
    const seconds = request.windowSeconds;
    if (!Number.isInteger(seconds) || seconds <= 0) throw new Error(`drain: window must be a positive whole number of seconds, got ${seconds}`);
    values = { forkTimeline: '', forkLsn: '', windowSeconds: String(seconds) };
  }
  for (const [name, value] of Object.entries(values) as [keyof typeof values, string][]) {
    if (!DRAIN_DOCUMENT_PARAMETERS[name].test(value)) throw new Error(`drain: ${name} '${value}' is outside what the drain document accepts (${DRAIN_DOCUMENT_PARAMETERS[name].source})`);
  }
  return { forkTimeline: [values.forkTimeline], forkLsn: [values.forkLsn], windowSeconds: [values.windowSeconds] };
}
