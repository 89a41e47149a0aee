/** Runbook steps that read the cluster: confirm the primary is down, preflight, plan, record the fork point, verify (VPC, reads the DB secret). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.probe);
