#!/usr/bin/env node
'use strict';
// Placeholder agent bundle. The real one (the write-buffer agent, bin/rds-failover-agent.ts) is built into this
// folder as rds-failover-agent.cjs; see README.md in this folder. Until then every command fails loudly: the
// systemd unit keeps restarting it and the DLM pre-script falls back to crash-consistent snapshots.
process.stderr.write(
  `rds-failover-agent: placeholder bundle, cannot run '${process.argv.slice(2).join(' ')}'; ` +
    'build the agent into lib/assets/agent/rds-failover-agent.cjs and deploy again\n',
);
process.exit(78); // EX_CONFIG
