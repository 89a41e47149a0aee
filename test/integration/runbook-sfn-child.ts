/**
 * A runbook runner in its own process, so the test can kill it with SIGKILL mid-way: it executes the
 * synthesized state machine against the local cluster (attached from its state file) and, once the
 * promotion is confirmed, prints "PROMOTED <node>" and hangs until killed.
 */
import '../setup.js'; // Promise.withResolvers for aws-local-stepfunctions on Node 20
import { LocalCluster } from '../../src/local/local-cluster.js';
import type { LocalWorker } from '../../src/local/local-worker-control.js';
import { localRunbookEnv, startExecution, synthesizeRunbook } from './runbook-sfn-harness.js';

interface ChildSpec {
  readonly baseDir: string;
  readonly stateDir: string;
  readonly workers: readonly LocalWorker[];
  readonly executionName: string;
  readonly input: unknown;
}

const spec = JSON.parse(process.env.RUNBOOK_CHILD_SPEC ?? 'null') as ChildSpec | null;
if (!spec) {
  console.error('runbook-sfn-child: run by test/integration/runbook-sfn.test.ts only (RUNBOOK_CHILD_SPEC)');
  process.exit(2);
}

const cluster = LocalCluster.attach(spec.baseDir);
const env = localRunbookEnv({ cluster, workers: spec.workers, stateDir: spec.stateDir });
const execution = startExecution(synthesizeRunbook(), env, spec.input, spec.executionName, {
  PromotionStatus: async (_input, real) => {
    const state = await real();
    if (state.poll?.done) {
      process.stdout.write(`PROMOTED ${state.plan?.candidateId} timeline-request ${state.promotion?.requestedAt}\n`);
      await new Promise(() => undefined); // wait for SIGKILL
    }
    return state;
  },
});
execution.result.then(
  (state) => {
    process.stdout.write(`FINISHED ${state.outcome}\n`);
    process.exit(0);
  },
  (error: Error) => {
    process.stdout.write(`FAILED ${error.message}\n`);
    process.exit(1);
  },
);
