/** Drain every worker's buffer through SSM Run Command and collect the JSON summaries. */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['startDrains', 'drainStatus']);
