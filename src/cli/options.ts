import { InvalidArgumentError } from 'commander';
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
