/** Final notification, journal and lock; the failure path (gives a switchover's primary its writes back: VPC). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['finish', 'failed']);
