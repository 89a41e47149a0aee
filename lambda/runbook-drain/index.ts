/** Drain every worker's buffer through SSM Run Command and collect the JSON summaries. */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.drain);
