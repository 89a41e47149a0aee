/**
 * `rds-failover drill --target aws-twin`: the failover drill with the synthesized stack (its state machine, the real
 * Lambda handlers and AWS adapters) on the twin of AWS over a local cluster (docs/aws-twin.md). The CDK app is
 * loaded only here, so the local drill does not pay for it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CliError, ExitCode } from '../options.js';
import type { Progress } from '../progress.js';

export interface TwinDrillFlags {
  readonly config: string;
  /** Share of the functions' AWS calls answered with throttling. */
  readonly throttle: number;
  readonly rate: number;
  readonly seed: number;
  /** Cut this worker instance off through the failover (TwinDrillSpec.offlineWorker): a 1-based position among the template's worker instances, or its instance id. */
  readonly offlineWorker?: number | string;
  readonly json?: boolean;
}

export async function runAwsTwinDrill(flags: TwinDrillFlags, progress: Progress): Promise<void> {
  const [{ App }, { ConfigError, loadConfigFile }, { FailoverStack, stackName }, { twinStackInputs, withTwinOfflineConfirmations }, { runTwinDrillProcess }, { twinDrillVerdict }] = await Promise.all([
    import('aws-cdk-lib'),
    import('../../../lib/config.js'),
    import('../../../lib/failover-stack.js'),
    import('../../../lib/twin-inputs.js'),
    import('./twin-drill-process.js'),
    import('./twin-drill-verdict.js'),
  ]);
  let config;
  try {
    config = loadConfigFile(flags.config);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, ExitCode.Usage);
    throw e;
  }
  if (flags.offlineWorker !== undefined) {
    const capped = withTwinOfflineConfirmations(config);
    if (capped !== config) {
      progress.event('info', 'offline worker', `verify waits ${capped.runbook.timeoutSeconds.confirmations} s for confirmations in this run (the config says ${config.runbook.timeoutSeconds.confirmations ?? 300} s): the offline worker cannot confirm during the execution, and the twin does not shorten that wait`);
      config = capped;
    }
  }
  const outdir = mkdtempSync(path.join(os.tmpdir(), 'aws-twin-synth-'));
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'aws-twin-drill-'));
  try {
    const cdkJson = JSON.parse(readFileSync(path.join(__dirname, '..', '..', '..', 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
    // The Lambda code runs in-process from lambda/: no bundling needed to synthesize what the twin deploys.
    const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
    const stack = new FailoverStack(app, stackName(config), { config });
    const template = app.synth().getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string }> };
    progress.event('info', 'synthesized', `${stack.stackName}: ${Object.keys(template.Resources).length} resources; running the drill on the twin`);
    const where = { template: template as never, stackName: stack.stackName, account: '123456789012', region: 'eu-west-1' };
    if (flags.offlineWorker !== undefined) {
      const { offlineWorkerIndex, workerInstanceIds } = await import('./twin-drill-workers.js');
      const ids = workerInstanceIds(where);
      try {
        offlineWorkerIndex(flags.offlineWorker, ids);
      } catch (e) {
        throw new CliError(`--offline-worker: ${(e as Error).message}`, ExitCode.Usage);
      }
    }
    const report = await runTwinDrillProcess(
      { ...where, ...twinStackInputs(config, template), workDir, throttleRate: flags.throttle, seed: flags.seed, ratePerSecond: flags.rate, ...(flags.offlineWorker !== undefined ? { offlineWorker: flags.offlineWorker } : {}) },
      (line) => progress.event('info', 'twin', line),
    );
    const verdict = twinDrillVerdict(report);
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${verdict.text}\n`);
    if (!verdict.ok) throw new CliError('AWS twin drill failed (see the problems above)', ExitCode.Failed);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
    rmSync(workDir, { recursive: true, force: true });
  }
}
