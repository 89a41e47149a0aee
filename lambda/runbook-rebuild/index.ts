/** Create replacement read replicas of the new primary and wait for them. */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['startRebuilds', 'rebuildStatus']);
