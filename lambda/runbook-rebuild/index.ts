/** Create replacement read replicas of the new primary and wait for them. */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.rebuild);
