/**
 * The `rds-failover` operator CLI: one commander program, every command against AWS or `--local`.
 * Runs in-process for tests (runCli with captured io); bin/rds-failover.ts only calls runCli and exits.
 */
import { Command, CommanderError } from 'commander';
import { systemClock, type Clock } from '../ports/clock.js';
import { registerDrainCommand } from './commands/drain.js';
import { registerDrillCommand } from './commands/drill.js';
import { registerFailoverCommands } from './commands/failover.js';
import { registerPlanCommand } from './commands/plan.js';
import { registerReconcileCommand } from './commands/reconcile.js';
import { registerStatusCommand } from './commands/status.js';
import { CliError, ExitCode, processIo, type CliIo } from './options.js';

/** What tests replace: the clock AWS polling sleeps on (local work always runs in real time), and how often it polls. */
export interface CliDeps {
  readonly clock: Clock;
  /** Interval between DescribeExecution / drain status polls in AWS. @default 2000 */
  readonly awsPollMs: number;
}

export const DEFAULT_DEPS: CliDeps = { clock: systemClock, awsPollMs: 2_000 };

export function createProgram(io: CliIo, deps: CliDeps = DEFAULT_DEPS): Command {
  const program = new Command('rds-failover')
    .description(
      'Operate the rds-failover stack: status, plan, failover, switchover, drain, reconcile, and the local drill.\n' +
        'Every command acts on AWS (--stack/--region/--profile, as the AWS CLI) or on the local cluster (--local).',
    )
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(add --help for usage)')
    .addHelpText(
      'after',
      '\nExit codes: 0 done, 1 the operation failed, 2 bad arguments or configuration (nothing was done),\n' +
        '3 refused (no eligible candidate, healthy primary, another failover running, not confirmed), 130 interrupted.\n' +
        'See docs/cli.md.',
    );
  registerStatusCommand(program, io, deps);
  registerPlanCommand(program, io, deps);
  registerFailoverCommands(program, io, deps);
  registerDrainCommand(program, io, deps);
  registerReconcileCommand(program, io);
  registerDrillCommand(program);
  return program;
}

/** Parses and runs one command line; resolves to the exit code (never throws). */
export async function runCli(argv: readonly string[], io: CliIo = processIo(), deps: CliDeps = DEFAULT_DEPS): Promise<number> {
  const program = createProgram(io, deps);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ExitCode.Ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the message (or the help).
      return error.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
    }
    if (error instanceof CliError) {
      io.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof Error && error.name === 'CredentialsProviderError') {
      io.stderr.write(`error: no AWS credentials (${error.message}): pass --profile <name> or set AWS_PROFILE / AWS credentials as for the AWS CLI; --local acts on the local cluster\n`);
      return ExitCode.Usage;
    }
    io.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    return ExitCode.Failed;
  }
}
