/** Point the writer endpoint at the new primary: Route 53 UPSERT, SSM writer id and topology parameters. */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.repoint);
