import { InvalidArgumentError, type Command } from 'commander';
import { parseDurationMs } from '../core/duration.js';
import { isLsn } from '../core/lsn.js';

/** Exit codes of `rds-failover` (documented in the README). */
export const ExitCode = {
  Ok: 0,
  /** The operation ran and failed (runbook failed, drill lost or duplicated rows). */
  Failed: 1,
  /** Bad arguments or configuration: nothing was done. */
  Usage: 2,
  /** The operation was refused (no eligible candidate, another failover running, not confirmed). */
  Refused: 3,
  Interrupted: 130,
} as const;

/** An error that ends the command with a given exit code and a message for the operator. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = ExitCode.Usage,
  ) {
    super(message);
  }
}

export function durationOption(flag: string): (value: string) => number {
  return (value) => {
    try {
      return parseDurationMs(value, flag);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

export function positiveNumberOption(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
      throw new InvalidArgumentError(`${flag}: '${value}' must be a number greater than 0`);
    }
    return n;
  };
}

export function positiveIntegerOption(flag: string, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < 1 || n > max) {
      throw new InvalidArgumentError(`${flag}: '${value}' must be a whole number from 1 to ${max}`);
    }
    return n;
  };
}

export function nonNegativeIntegerOption(flag: string): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError(`${flag}: '${value}' must be a whole number ≥ 0`);
    return Number(value);
  };
}

/** Where a command writes and reads: injected so tests run the program in-process. */
export interface CliIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  /** Whether a person can answer a confirmation prompt on stdin. */
  readonly interactive: boolean;
  readonly env: NodeJS.ProcessEnv;
  /** Directory relative paths are resolved against (npm run changes the cwd; INIT_CWD is where the user typed). */
  readonly cwd: string;
}

export function processIo(): CliIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    interactive: process.stdin.isTTY === true && process.stderr.isTTY === true,
    env: process.env,
    cwd: process.env.INIT_CWD ?? process.cwd(),
  };
}

/** The same rule as the runbook input (RDS DB instance identifiers; local node ids like pg-1 match it too). */
const NODE_ID = /^[A-Za-z][A-Za-z0-9-]{0,62}$/;

export function nodeIdOption(flag: string): (value: string) => string {
  return (value) => {
    if (!NODE_ID.test(value)) {
      throw new InvalidArgumentError(`${flag}: '${value}' is not a node id; expected a DB instance identifier or local node id (a letter, then letters, digits or '-', at most 63), e.g. pg-1`);
    }
    return value;
  };
}

/** A PostgreSQL LSN as printed by pg_current_wal_lsn(): two hex numbers separated by '/'. */
export function lsnOption(flag: string): (value: string) => string {
  return (value) => {
    const v = value.trim();
    if (!isLsn(v)) {
      throw new InvalidArgumentError(`${flag}: '${value}' is not an LSN; expected two hex numbers separated by '/', e.g. 0/3000060`);
    }
    return v.toUpperCase();
  };
}

export function awsRegionOption(flag: string): (value: string) => string {
  return (value) => {
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(value)) throw new InvalidArgumentError(`${flag}: '${value}' is not an AWS region; expected e.g. eu-west-1`);
    return value;
  };
}

export function stateMachineArnOption(flag: string): (value: string) => string {
  return (value) => {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/.test(value)) {
      throw new InvalidArgumentError(`${flag}: '${value}' is not a state machine ARN; expected arn:aws:states:<region>:<account>:stateMachine:<name>`);
    }
    return value;
  };
}

export function clusterIdOption(flag: string): (value: string) => string {
  return (value) => {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(value)) {
      throw new InvalidArgumentError(`${flag}: '${value}' is not a cluster id; expected a lower-case letter, then lower-case letters, digits or '-' (at most 31)`);
    }
    return value;
  };
}

/** Where a command acts: the local cluster (--local) or an AWS stack. Every command that touches the cluster takes these. */
export interface TargetFlags {
  /** true = the default directory (.local-cluster). */
  readonly local?: string | true;
  readonly buffer?: string[];
  readonly agentConfig?: string[];
  readonly region?: string;
  readonly profile?: string;
  readonly stack?: string;
  readonly clusterId?: string;
  readonly stateMachineArn?: string;
}

export function addTargetOptions(command: Command, options: { workers: boolean; stateMachine: boolean }): Command {
  command.option('--local [dir]', 'act on the local cluster started by `npm run cluster -- up` (state directory, default .local-cluster)');
  if (options.workers) {
    command
      .option('--buffer <files...>', 'local workers: their SQLite buffer files (worker id = file name without extension)')
      .option('--agent-config <files...>', 'local workers: the agent config (one for all buffers, or one per buffer in the same order)');
  }
  command
    .option('--region <region>', 'AWS region (default: AWS_REGION / the profile, as the AWS CLI)', awsRegionOption('--region'))
    .option('--profile <name>', 'AWS named profile (default: AWS_PROFILE, as the AWS CLI)')
    .option('--stack <name>', 'CloudFormation stack to read outputs from (default: $RDS_FAILOVER_STACK, or RdsFailover-<cluster-id>)')
    .option('--cluster-id <id>', 'cluster id (default: the stack output ClusterId)', clusterIdOption('--cluster-id'));
  if (options.stateMachine) {
    command.option('--state-machine-arn <arn>', 'the runbook state machine (skips the stack lookup)', stateMachineArnOption('--state-machine-arn'));
  }
  return command;
}

/** The command-line flag of an option key: stateMachineArn -> --state-machine-arn. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Local and AWS flags do not mix: say so before anything is done. */
export function checkTargetFlags(flags: TargetFlags): 'local' | 'aws' {
  const awsFlags = (['region', 'profile', 'stack', 'clusterId', 'stateMachineArn'] as const).filter((k) => flags[k] !== undefined);
  if (flags.local !== undefined) {
    if (awsFlags.length > 0) {
      throw new CliError(`--local cannot be combined with AWS options (${awsFlags.map(flagName).join(', ')})`);
    }
    return 'local';
  }
  if (flags.buffer !== undefined || flags.agentConfig !== undefined) {
    throw new CliError('--buffer and --agent-config describe local workers: use them with --local (in AWS the stack knows its workers)');
  }
  return 'aws';
}
