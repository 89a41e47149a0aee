/**
 * Environment variable names of the runbook Lambdas: the contract between lib/runbook.ts (which sets them)
 * and src/aws/runbook-lambda.ts (which reads them). Names and ARNs only, never secrets.
 */
export const RunbookEnvVar = {
  ClusterId: 'CLUSTER_ID',
  /** JSON: a partial RunbookConfig over AWS_RUNBOOK_CONFIG. */
  Config: 'RUNBOOK_CONFIG',
  /** DynamoDB table holding the failover lock and the runbook journal. */
  LockTable: 'LOCK_TABLE_NAME',
  TopicArn: 'TOPIC_ARN',
  WriterParameter: 'WRITER_PARAMETER_NAME',
  TopologyParameter: 'TOPOLOGY_PARAMETER_NAME',
  HostedZoneId: 'HOSTED_ZONE_ID',
  WriterRecordName: 'WRITER_RECORD_NAME',
  WriterRecordTtl: 'WRITER_RECORD_TTL',
  QuarantineSecurityGroup: 'QUARANTINE_SECURITY_GROUP_ID',
  BackupRetentionDays: 'BACKUP_RETENTION_DAYS',
  /** Only in functions that talk to PostgreSQL (in the VPC). */
  DbSecretArn: 'DB_SECRET_ARN',
  DbName: 'DB_NAME',
  /** Comma-separated application databases the fence sets read-only; unset = every database the role owns. */
  DbFenceDatabases: 'DB_FENCE_DATABASES',
  /** Only in the drain function. */
  WorkerTagKey: 'WORKER_TAG_KEY',
  WorkerTagValue: 'WORKER_TAG_VALUE',
  /** Name of the stack's SSM drain document (lib/drain-document.ts). */
  DrainDocument: 'DRAIN_DOCUMENT',
} as const;

/** The Lambda functions of the runbook and the actions each runs (each has an IAM policy for exactly these). */
export const RUNBOOK_FUNCTIONS = {
  probe: ['confirm', 'preflight', 'plan', 'forkPoint', 'verify'],
  fence: ['fence', 'isolate'],
  promote: ['promote', 'promotionStatus', 'recordEpoch'],
  repoint: ['repoint'],
  drain: ['startDrains', 'drainStatus'],
  rebuild: ['startRebuilds', 'rebuildStatus'],
  finish: ['finish', 'failed'],
} as const;

export type RunbookFunctionName = keyof typeof RUNBOOK_FUNCTIONS;
