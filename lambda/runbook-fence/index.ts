/** Fence the old primary: read-only + terminate sessions over pg, quarantine security group via ModifyDBInstance (VPC). */
import { runbookHandler } from '../../src/aws/runbook-lambda.js';

export const handler = runbookHandler(['fence', 'isolate']);
