/** PromoteReadReplica and wait until the new primary accepts writes (VPC: clears the replayed write fence, probes). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['promote', 'promotionStatus']);
