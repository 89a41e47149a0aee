export * from './database-probe.js';
export * from './cluster-control.js';
export * from './worker-control.js';
export * from './notifier.js';
export * from './clock.js';
export * from './failover-lock.js';
export * from './runbook-journal.js';
export * from './lineage-store.js';
