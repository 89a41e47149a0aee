import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runInProcess } from './cli-harness.js';

const REPO = path.join(__dirname, '..', '..', '..');
const COMMANDS = ['status', 'plan', 'failover', 'switchover', 'drain', 'reconcile', 'drill'] as const;
const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:orders-runbook';

describe('rds-failover --help', () => {
  it.each(COMMANDS)('%s --help prints its usage and exits 0', async (command) => {
    const run = await runInProcess([command, '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Usage: rds-failover ${command} [options]`);
    expect(run.stderr).toBe('');
  });

  it('lists every command and the exit codes at the top level', async () => {
    const run = await runInProcess(['--help']);
    expect(run.code).toBe(0);
    for (const command of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${command} \\[options\\]`, 'm'));
    expect(run.stdout).toContain('3 refused');
  });

  it('the commands that act on the cluster take --local and the AWS options', async () => {
    for (const command of ['status', 'plan', 'failover', 'switchover', 'drain', 'reconcile']) {
      const { stdout } = await runInProcess([command, '--help']);
      for (const flag of ['--local [dir]', '--region <region>', '--profile <name>', '--stack <name>']) expect(stdout, `${command} ${flag}`).toContain(flag);
    }
    for (const command of ['plan', 'failover', 'switchover']) expect((await runInProcess([command, '--help'])).stdout).toContain('--state-machine-arn <arn>');
    for (const command of ['failover', 'switchover']) expect((await runInProcess([command, '--help'])).stdout).toMatch(/--candidate <id>[\s\S]*--force[\s\S]*--yes/);
  });

  it('works as a spawned process through bin/rds-failover.ts (the package bin)', () => {
    const out = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'bin', 'rds-failover.ts'), 'switchover', '--help'], { cwd: REPO, encoding: 'utf8' });
    expect(out.status).toBe(0);
    expect(out.stdout).toContain('Usage: rds-failover switchover [options]');
    const bad = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'bin', 'rds-failover.ts'), 'plan', '--mode', 'sideways'], { cwd: REPO, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("option '--mode <mode>' argument 'sideways' is invalid");
  });
});

describe('bad arguments: a message naming the flag, exit 2, nothing started', () => {
  const sfn = mockClient(SFNClient);
  const cfn = mockClient(CloudFormationClient);
  const ssm = mockClient(SSMClient);
  beforeEach(() => {
    sfn.reset();
    cfn.reset();
    ssm.reset();
  });
  afterEach(() => {
    // No AWS call at all: validation happens before any lookup.
    expect(sfn.calls()).toHaveLength(0);
    expect(cfn.calls()).toHaveLength(0);
    expect(ssm.calls()).toHaveLength(0);
  });

  const cases: ReadonlyArray<readonly [string, readonly string[], RegExp]> = [
    ['unknown mode', ['plan', '--mode', 'sideways', '--stack', 's'], /--mode <mode>.*'sideways' is invalid\. Allowed choices are failover, switchover/],
    ['malformed candidate', ['failover', '--candidate', 'pg 1', '--yes', '--stack', 's'], /--candidate: 'pg 1' is not a node id/],
    ['malformed epoch', ['drain', '--epoch', '0/3000060', '--stack', 's'], /--epoch: expected the epoch's UUID as the failover reported it \(lowercase\), got '0\/3000060'/],
    ['upper-case epoch', ['drain', '--epoch', '3F2B1C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D', '--stack', 's'], /--epoch: expected the epoch's UUID/],
    ['drain windows are gone', ['drain', '--window', '15m', '--stack', 's'], /unknown option '--window'/],
    ['bad timeout duration', ['drain', '--timeout', 'soon', '--stack', 's'], /--timeout: 'soon' is not a duration/],
    ['bad region', ['status', '--region', 'mars'], /--region: 'mars' is not an AWS region/],
    ['bad state machine ARN', ['failover', '--state-machine-arn', 'arn:aws:lambda:x', '--yes'], /--state-machine-arn: .* is not a state machine ARN/],
    ['local and AWS mixed', ['status', '--local', '--region', 'eu-west-1'], /--local cannot be combined with AWS options \(--region\)/],
    ['local buffers without --local', ['status', '--buffer', 'w1.sqlite', '--stack', 's'], /--buffer and --agent-config describe local workers: use them with --local/],
    ['no AWS target', ['plan'], /no AWS target: pass --stack <name>/],
    ['negative drill rate', ['drill', '--rate', '-5'], /--rate: '-5' must be a number greater than 0/],
    ['zero drill rate', ['drill', '--rate', '0'], /--rate: '0' must be a number greater than 0/],
    ['bad drill duration', ['drill', '--warmup', '4 seconds'], /--warmup: '4 seconds' is not a duration/],
    ['unknown drill fault', ['drill', '--fault', 'meteor'], /--fault <kind>.*'meteor' is invalid/],
    ['twin flag on the local drill', ['drill', '--offline-worker', '2'], /--offline-worker goes with --target aws-twin \(the local drill: --fault worker-down\)/],
    ['battery flag without --battery', ['drill', '--runs-per-fault', '2'], /--runs-per-fault goes with --battery/],
    ['local flags on the twin drill', ['drill', '--target', 'aws-twin', '--runs-per-fault', '2', '--warmup', '1s'], /--warmup, --runs-per-fault do not go with --target aws-twin/],
    ['unknown command', ['promote'], /unknown command 'promote'/],
  ];

  it.each(cases)('%s', async (_name, argv, message) => {
    const run = await runInProcess(argv, { env: {} });
    expect(run.stderr).toMatch(message);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
  });

  it('a failover without --yes and without a terminal is refused before anything is looked up', async () => {
    const run = await runInProcess(['failover', '--cluster-id', 'orders', '--state-machine-arn', ARN], { interactive: false });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('needs confirmation: stdin is not a terminal, so re-run with --yes');
  });

  it('a local command on a directory without a cluster says where it looked', async () => {
    const run = await runInProcess(['status', '--local', 'no-such-dir'], { cwd: '/tmp' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--local: no local cluster in /tmp/no-such-dir (no state.json): start one with `npm run cluster -- up`');
  });

  it('local drain: bad flags are reported before the (missing) cluster is even opened', async () => {
    const run = await runInProcess(['drain', '--local', 'no-such-dir', '--epoch', '1'], { cwd: '/tmp' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--epoch: expected the epoch's UUID");
  });

  it('local workers: a buffer that does not exist is named', async () => {
    const run = await runInProcess(['status', '--local', 'no-such-dir', '--buffer', 'missing.sqlite'], { cwd: '/tmp' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--buffer: /tmp/missing.sqlite does not exist');
  });
});

describe('AWS configuration problems', () => {
  it('missing AWS credentials: exit 2 with what to set', async () => {
    const cfn = mockClient(CloudFormationClient);
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    const run = await runInProcess(['status', '--stack', 'RdsFailover-orders']);
    expect(run.code).toBe(2);
    cfn.restore();
    expect(run.stderr).toContain('error: no AWS credentials (Could not load credentials from any providers): pass --profile <name> or set AWS_PROFILE');
  });
});
