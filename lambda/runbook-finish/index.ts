/** Final notification, journal and lock; the failure path (gives a switchover's primary its writes back: VPC). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.finish);
