/**
 * Tag keys on AWS resources: the stack writes them, the runbook, the CLI and DLM select by them.
 * One definition, imported by lib/ (pure constants, no runtime code) and by src/.
 */
export const ResourceTag = {
  /** Every resource of a cluster: its clusterId. */
  Cluster: 'rds-failover:cluster',
  /** Workers: 'worker' (SSM Run Command and patching target them by this tag). */
  Role: 'rds-failover:role',
  /** DB instances: the stable node name from the config. */
  Node: 'rds-failover:node',
  /** DB instances: candidate priority for promotion, lower wins on equal LSN. */
  Priority: 'rds-failover:priority',
  /** DB instances: 'true' = never promote (like Patroni's nofailover). */
  NoFailover: 'rds-failover:nofailover',
  /** Replicas the runbook created: the node they replace. */
  RebuiltFrom: 'rds-failover:rebuilt-from',
  /**
   * Old primaries the fence isolated: when its reboot dropped the sessions opened before the quarantine security
   * group applied (ISO time). Removed when a new quarantine is requested, so it never speaks for an older one.
   */
  FencedAt: 'rds-failover:fenced-at',
} as const;

export const WORKER_ROLE = 'worker';

/** Priority of a DB instance without the priority tag. */
export const DEFAULT_FAILOVER_PRIORITY = 100;
