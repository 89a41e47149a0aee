/**
 * The AWS path, executed: the synthesized FailoverStack deployed onto the AWS twin (src/local/aws-twin) over a local
 * cluster with TLS; worker buffers under load follow the writer record; the primary is killed after its replicas
 * stopped receiving WAL; the synthesized state machine runs with every task calling the real lambda/runbook-* handler
 * and the real src/aws adapters, as the function's role. Every AWS call is authorized against that role's policies
 * from the template with a real IAM evaluator (@cloud-copilot/iam-simulate).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { twinStackInputs } from '../../lib/twin-inputs.js';
import { runTwinDrillProcess } from '../../src/cli/aws/twin-drill-process.js';
import { twinDrillVerdict } from '../../src/cli/aws/twin-drill-verdict.js';
import type { TwinDrillReport } from '../../src/cli/aws/twin-drill.js';
import type { CfnTemplate } from '../../src/local/aws-twin/cfn-template.js';
import { makeConfig, synthFailoverStack } from '../infra/helpers.js';

let workDir: string;
let report: TwinDrillReport;

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'aws-twin-'));
  const config = makeConfig();
  const synth = synthFailoverStack({ config, nag: false });
  const template = synth.template.toJSON() as CfnTemplate;
  report = await runTwinDrillProcess(
    { template, stackName: synth.stack.stackName, account: '123456789012', region: 'eu-west-1', ...twinStackInputs(config, template), workDir, throttleRate: 0.02, seed: 7 },
    (line) => process.env.AWS_TWIN_VERBOSE && console.log(line),
  );
  if (process.env.AWS_TWIN_VERBOSE) console.log(JSON.stringify(report, null, 1));
}, 600_000);

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

it('fails over under load through the synthesized state machine with the real handlers and adapters: 0 lost, 0 duplicates', () => {
  expect(twinDrillVerdict(report).text).not.toContain('problem:');
  expect(report.error).toBeUndefined();
  expect(report.outcome).toBe('succeeded');
  expect(report.newPrimary).not.toBe(report.oldPrimary);
  expect(report.acknowledged).toBeGreaterThan(0);
  expect(report.rowsOnlyOnOldPrimary).toBeGreaterThan(0); // the drain had something to recover
  expect(report.lost).toBe(0);
  expect(report.duplicates).toBe(0);
});

it('rebuilds the replica from the new primary, notifies every step, releases the lock', () => {
  expect(report.rebuilt.length).toBeGreaterThan(0);
  for (const r of report.rebuilt) expect(r).toMatchObject({ status: 'available', source: report.newPrimary, streaming: true });
  expect(report.notifications.length).toBeGreaterThan(10);
  expect(report.warnings.filter((w) => w.includes('rebuild'))).toEqual([]);
  expect(report.lockHeld).toBe(false);
  expect(report.journalStatus).toBe('succeeded');
});

it('every AWS call of the run is allowed by the calling function\'s policies from the template (0 denials)', () => {
  expect(report.functionCalls).toBeGreaterThan(100);
  expect(report.evaluated).toBeGreaterThanOrEqual(report.functionCalls);
  expect(report.denials).toEqual([]);
  expect(report.unsupportedConditionKeys).toEqual([]);
});

it('rds-failover plan, failover and status --stack run against the twin: the plan names the candidate, the failover is followed to its end, the status shows the new writer', () => {
  expect(report.cli.plan.code, report.cli.plan.stderr).toBe(0);
  expect(report.cli.plan.report).toMatchObject({ outcome: 'plan', plan: { oldPrimaryId: report.oldPrimary, candidateId: report.newPrimary } });
  expect(report.cli.failover.code, report.cli.failover.stderr).toBe(0);
  expect(report.cli.failover.report).toMatchObject({ ok: true, oldPrimary: report.oldPrimary, newPrimary: report.newPrimary });
  expect(report.cli.status.code, report.cli.status.stderr).toBe(0);
  expect(report.cli.status.report).toMatchObject({ source: 'aws', writerId: report.newPrimary, primaryId: report.newPrimary });
});
