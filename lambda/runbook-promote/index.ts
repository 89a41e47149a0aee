/** PromoteReadReplica and wait until the new primary accepts writes (VPC: clears the replayed write fence, probes). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';
import { RUNBOOK_FUNCTIONS } from '../../src/core/runbook/lambda-environment.js';

export const handler = runbookHandler(RUNBOOK_FUNCTIONS.promote);
