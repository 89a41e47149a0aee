/**
 * A drill runbook in its own process (childProcessController): waits for its request, attaches to the drill's
 * cluster, runs the runbook over the shared lock and journal, and reports every event, notification and the
 * result over IPC. The drill may SIGKILL it at any moment; the next one resumes from the journal.
 */
import { runRunbook } from '../../core/runbook/index.js';
import { LocalCluster } from '../../local/local-cluster.js';
import { createLocalRunbookPorts } from '../../local/local-runbook-ports.js';
import { LocalWorkerControl } from '../../local/local-worker-control.js';
import type { RunbookProcessCommand, RunbookProcessMessage, RunbookProcessSpec, RunbookRequest } from './controller.js';

const spec = JSON.parse(process.env.DRILL_RUNBOOK_SPEC ?? 'null') as RunbookProcessSpec | null;
if (!spec || typeof process.send !== 'function') {
  console.error('runbook-process: run by the drill only (needs DRILL_RUNBOOK_SPEC and an IPC channel)');
  process.exit(2);
}

const send = (message: RunbookProcessMessage) => new Promise<void>((resolve) => process.send!(message, undefined, {}, () => resolve()));

async function main(s: RunbookProcessSpec, request: RunbookRequest): Promise<void> {
  const cluster = LocalCluster.attach(s.clusterDir);
  const ports = createLocalRunbookPorts({
    cluster,
    workers: s.workers,
    stateDir: s.stateDir,
    noFailover: request.noFailover,
    killUnreachable: request.controllerOwnsNodes,
    notifier: { notify: (notification) => send({ type: 'notification', notification }) },
  });
  try {
    const result = await runRunbook(request.input, ports, { clusterId: cluster.clusterId, config: s.config, onEvent: (event) => void send({ type: 'event', event }) });
    await send({ type: 'result', result: { outcome: result.outcome, state: result.state, ...(result.error ? { error: result.error } : {}) } });
  } finally {
    if (ports.workers instanceof LocalWorkerControl) ports.workers.stopAll();
  }
}

// The drill went away (killed): a runbook nobody follows must not go on changing the cluster.
let finished = false;
process.on('disconnect', () => {
  if (!finished) process.exit(1);
});

process.once('message', (command: RunbookProcessCommand) => {
  main(spec, command.request).then(
    () => {
      finished = true;
      process.disconnect();
    },
    (error: unknown) => {
      console.error(`runbook-process: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
});
void send({ type: 'ready' });
