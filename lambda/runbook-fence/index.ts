/** Fence the old primary: read-only + terminate sessions over pg, quarantine security group via ModifyDBInstance (VPC). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.fence);
