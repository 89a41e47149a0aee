import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrainDocument } from '../../lib/drain-document.js';
import { parseDrainSummary } from '../../src/core/drain-summary.js';
import { DRAIN_DOCUMENT_PARAMETERS, drainParameters } from '../../src/core/drain-parameters.js';

interface DocumentContent {
  parameters: Record<string, { type: string; default: string; allowedPattern: string }>;
  mainSteps: { action: string; inputs: { runCommand: string[]; timeoutSeconds: string } }[];
}

let dir: string;
let content: DocumentContent;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'drain-document-'));
  // A stand-in agent and systemctl that record their arguments; the agent prints a drain summary as the real one does.
  const fake = (name: string, extra = '') => {
    writeFileSync(path.join(dir, name), `#!/bin/sh\nprintf '%s\\n' "$@" > ${dir}/${name}.args\n${extra}`);
    chmodSync(path.join(dir, name), 0o755);
  };
  fake('agent', `echo '{"epochId":"${'3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d'}","examined":10,"resent":4,"inserted":1,"alreadyPresent":3,"remainingPending":0,"rejected":0}'\n`);
  fake('systemctl');
  const stack = new Stack(new App(), 'Drain');
  new DrainDocument(stack, 'Drain', { clusterId: 'orders', agentCommand: `${dir}/agent`, bufferPath: '/var/lib/b.sqlite', configPath: '/etc/a.json', timeoutSeconds: 300 });
  const documents = Template.fromStack(stack).findResources('AWS::SSM::Document');
  expect(Object.values(documents)).toHaveLength(1);
  const properties = Object.values(documents)[0]!.Properties as { Name: string; DocumentType: string; Content: DocumentContent };
  expect(properties).toMatchObject({ Name: 'rds-failover-orders-drain', DocumentType: 'Command', UpdateMethod: 'NewVersion' });
  content = properties.Content;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs the synthesized document the way SSM Run Command does: each parameter must match its allowedPattern
 * (SSM refuses the command otherwise), `{{ name }}` is replaced by the value, and the runCommand lines run as
 * one script under sh.
 */
function runDocument(parameters: Record<string, [string]>): { code: number | null; stdout: string; stderr: string; agentArgs: string[] | null; systemctlArgs: string[] | null } {
  const values: Record<string, string> = {};
  for (const [name, spec] of Object.entries(content.parameters)) {
    const value = parameters[name]?.[0] ?? spec.default;
    if (!new RegExp(spec.allowedPattern).test(value)) throw new Error(`SSM refuses parameter ${name}: '${value}' does not match ${spec.allowedPattern}`);
    values[name] = value;
  }
  const [step] = content.mainSteps;
  expect(step!.action).toBe('aws:runShellScript');
  const script = step!.inputs.runCommand.map((line) => line.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => values[name]!)).join('\n');
  for (const f of ['agent.args', 'systemctl.args']) rmSync(path.join(dir, f), { force: true });
  const run = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
  const read = (f: string) => {
    try {
      return readFileSync(path.join(dir, f), 'utf8').trimEnd().split('\n');
    } catch {
      return null;
    }
  };
  return { code: run.status, stdout: run.stdout, stderr: run.stderr, agentArgs: read('agent.args'), systemctlArgs: read('systemctl.args') };
}

const EPOCH = '3f2b1c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

describe('DrainDocument: the only command the runbook runs on workers', () => {
  it('declares exactly the drain parameter, with the pattern the runbook checks before sending', () => {
    expect(content.parameters).toEqual({
      epoch: expect.objectContaining({ type: 'String', default: '', allowedPattern: DRAIN_DOCUMENT_PARAMETERS.epoch.source }),
    });
    expect(content.mainSteps[0]!.inputs.timeoutSeconds).toBe('300');
  });

  it("with the promotion's epoch: wakes the daemon, then runs the agent drain with the fixed paths and the epoch", () => {
    const run = runDocument(drainParameters({ epochId: EPOCH }));
    expect(run.code).toBe(0);
    expect(run.systemctlArgs).toEqual(['kill', '--signal=HUP', 'rds-failover-agent.service']);
    expect(run.agentArgs).toEqual(['drain', '--json', '--buffer', '/var/lib/b.sqlite', '--config', '/etc/a.json', '--epoch', EPOCH]);
    expect(parseDrainSummary(run.stdout)).toEqual({ epochId: EPOCH, examined: 10, resent: 4, inserted: 1, alreadyPresent: 3, remainingPending: 0, rejected: 0 });
  });

  it("without one: the agent converges on the writer's lineage", () => {
    const run = runDocument(drainParameters({}));
    expect(run.code).toBe(0);
    expect(run.agentArgs).toEqual(['drain', '--json', '--buffer', '/var/lib/b.sqlite', '--config', '/etc/a.json']);
  });

  it('the runbook refuses to send anything but a lowercase UUID', () => {
    expect(() => drainParameters({ epochId: EPOCH.toUpperCase() })).toThrow("drain: epoch must be the epoch's UUID (lowercase), got '3F2B1C4D-");
    expect(() => drainParameters({ epochId: 'x' })).toThrow("drain: epoch must be the epoch's UUID (lowercase), got 'x'");
  });

  it('refuses paths and a unit name that would not be plain words on the command line', () => {
    const stack = new Stack(new App(), 'Bad');
    expect(() => new DrainDocument(stack, 'D', { clusterId: 'orders', bufferPath: '/data/$(id)', daemonUnit: 'x; reboot', timeoutSeconds: 0 })).toThrow(
      "DrainDocument D: bufferPath '/data/$(id)' must be an absolute path of letters, digits, '.', '_', '-', '/'; daemonUnit 'x; reboot' must be a systemd service name like rds-failover-agent.service; timeoutSeconds must be a whole number of seconds >= 1, got 0",
    );
  });

  it('SSM itself refuses anything but a value in the parameter (no shell can get through)', () => {
    for (const value of [`${EPOCH}'; touch /tmp/pwned; '`, `${EPOCH} x`, '$(id)', EPOCH.toUpperCase(), EPOCH.slice(1)]) {
      expect(() => runDocument({ epoch: [value] }), value).toThrow('SSM refuses parameter epoch');
    }
  });
});
