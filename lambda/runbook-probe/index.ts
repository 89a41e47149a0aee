/** Runbook steps that read the cluster: confirm the primary is down, preflight, plan, record the fork point, verify (VPC, reads the DB secret). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['confirm', 'preflight', 'plan', 'forkPoint', 'verify']);
