#!/usr/bin/env node
// `npm run drill:aws-twin [-- --config config/<env>.json]`: the failover drill against the AWS twin (docs/aws-twin.md).
import { App } from 'aws-cdk-lib';
import { Command, InvalidArgumentError } from 'commander';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfigFile } from '../lib/config.js';
import { FailoverStack, stackName } from '../lib/failover-stack.js';
import { twinStackInputs } from '../lib/twin-inputs.js';
import { runTwinDrillProcess } from '../src/cli/aws/twin-drill-process.js';
import { twinDrillVerdict } from '../src/cli/aws/twin-drill-verdict.js';

const rate = (flag: string, max: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || n >= max) throw new InvalidArgumentError(`${flag} must be a number from 0 to below ${max}, got '${v}'`);
  return n;
};

const program = new Command('aws-twin-drill')
  .description('Kill the primary under load and fail over with the synthesized stack: its state machine, the real Lambda handlers and AWS adapters, on a twin of AWS over a local cluster; every call checked against the roles\' policies')
  .option('--config <file>', 'the stack config to synthesize', 'config/default.json')
  .option('--throttle <share>', 'share of the functions\' AWS calls answered with throttling', rate('--throttle', 1), 0.02)
  .option('--rate <rows>', 'rows per second each worker appends', rate('--rate', 10_000), 200)
  .option('--seed <n>', 'seed of the throttling draw', (v) => Number.parseInt(v, 10), 1)
  .option('--json', 'print the report as JSON')
  .action(async (flags: { config: string; throttle: number; rate: number; seed: number; json?: boolean }) => {
    let config;
    try {
      config = loadConfigFile(flags.config);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      process.stderr.write(`${e.message}\n`);
      process.exit(2);
    }
    const outdir = mkdtempSync(path.join(os.tmpdir(), 'aws-twin-synth-'));
    const workDir = mkdtempSync(path.join(os.tmpdir(), 'aws-twin-drill-'));
    try {
      const cdkJson = JSON.parse(readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
      // The Lambda code runs in-process from lambda/: no bundling needed to synthesize what the twin deploys.
      const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
      const stack = new FailoverStack(app, stackName(config), { config });
      const template = app.synth().getStackByName(stack.stackName).template as { Resources: Record<string, { Type: string }> };
      process.stderr.write(`synthesized ${stack.stackName}: ${Object.keys(template.Resources).length} resources; running the drill on the twin...\n`);
      const report = await runTwinDrillProcess(
        { template: template as never, stackName: stack.stackName, account: '123456789012', region: 'eu-west-1', ...twinStackInputs(config, template), workDir, throttleRate: flags.throttle, seed: flags.seed, ratePerSecond: flags.rate },
        (line) => process.stderr.write(`  ${line}\n`),
      );
      const verdict = twinDrillVerdict(report);
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${verdict.text}\n`);
      process.exitCode = verdict.ok ? 0 : 1;
    } finally {
      rmSync(outdir, { recursive: true, force: true });
      rmSync(workDir, { recursive: true, force: true });
    }
  });

program.parseAsync(process.argv).catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exit(1);
});
