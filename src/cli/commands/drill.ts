import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { renderBatteryTable, runBattery } from '../drill/battery.js';
import { renderBatteryChart } from '../drill/battery-chart.js';
import { renderDrillChart } from '../drill/chart.js';
import { FAULT_NAMES, FAULTS, faultByName, faultSettingsProblem } from '../drill/faults/index.js';
import { ms, renderDrillTable, renderRunsTable, summarizeRuns, type DrillResult } from '../drill/report.js';
import { formatDurationMs } from '../../core/duration.js';
import { runDrill, type DrillOptions } from '../drill/run-drill.js';
import { CliError, durationOption, ExitCode, flagName, nonNegativeIntegerOption, positiveIntegerOption, positiveNumberOption } from '../options.js';
import { consoleProgress } from '../progress.js';
import { runAwsTwinDrill } from '../aws/twin-drill-command.js';

interface DrillFlags {
  target: 'local' | 'aws-twin';
  config?: string;
  throttle?: number;
  offlineWorker?: number | string;
  seed?: number;
  fault: string;
  replicas: number;
  workers: number;
  rate: number;
  warmup: number;
  jitter: number;
  after: number;
  confirm: number;
  runs: number;
  report: string;
  json?: boolean;
  battery?: boolean;
  runsPerFault: number;
  faults?: string[];
}

export function registerDrillCommand(program: Command): Command {
  return program
    .command('drill')
    .description(
      'Run a failover drill on this machine: a real PostgreSQL primary + streaming replicas, worker processes writing through real buffers, a fault, the runbook, and an exact count of lost and duplicated rows.',
    )
    .addOption(new Option('--target <where>', 'local: the local cluster and the runbook in-process; aws-twin: the synthesized stack (state machine, Lambda handlers, AWS adapters) on a twin of AWS over a local cluster (docs/aws-twin.md)').choices(['local', 'aws-twin']).default('local'))
    .option('--config <file>', 'aws-twin: the stack config to synthesize (default config/default.json)')
    .option('--throttle <share>', "aws-twin: share of the functions' AWS calls answered with throttling (default 0.02)", shareOption('--throttle'))
    .option(
      '--offline-worker <which>',
      "aws-twin: cut one worker instance off through the failover (SSM cannot reach it, its agent does not sync, its application goes on appending; SSM notices minutes late, so its first drain waits out its timeout) and check it is reported unconfirmed, then confirms once reconnected; a 1-based position among the template's worker instances or an instance id",
      offlineWorkerOption,
    )
    .addOption(new Option('--fault <kind>', `what fails: ${FAULTS.map((f) => `${f.name} (${f.summary})`).join('; ')}`).choices([...FAULT_NAMES]).default('kill-primary'))
    .option('--seed <n>', 'seed for the random choices (fault moment, the fault\'s plan); same seed, same schedule', nonNegativeIntegerOption('--seed'))
    .option('--replicas <n>', 'streaming replicas besides the primary', positiveIntegerOption('--replicas', 5), 2)
    .option('--workers <n>', 'worker processes, each with its own buffer', positiveIntegerOption('--workers', 32), 3)
    .option('--rate <rows/s>', 'rows appended per second by each worker', positiveNumberOption('--rate'), 200)
    .option('--warmup <duration>', 'load before the fault window opens', durationOption('--warmup'), 4000)
    .option('--jitter <duration>', 'the fault lands at a random moment within this window after the warm-up', durationOption('--jitter'), 3000)
    .option('--after <duration>', 'load kept running after the runbook finished', durationOption('--after'), 2000)
    .option('--confirm <duration>', 'how long the primary must stay unreachable before the runbook acts', durationOption('--confirm'), 300)
    .option('--runs <n>', 'repeat the drill (seeds seed, seed+1, ...) and print medians', positiveIntegerOption('--runs', 100), 1)
    .option('--report <dir>', 'where to write drill-report.json, drill-report.txt and drill-timeline.svg (battery: battery.json, battery.txt, battery.svg)', 'drill-report')
    .option('--json', 'print the report as JSON instead of tables')
    .option('--battery', 'the nemesis battery: every fault (or --faults) × --runs-per-fault seeds, one after the other')
    .option('--runs-per-fault <n>', 'battery: seeds per fault (seed, seed+1, ...)', positiveIntegerOption('--runs-per-fault', 1000), 3)
    .option('--faults <names>', `battery: comma-separated faults to run (default all: ${FAULT_NAMES.join(',')})`, faultListOption)
    .action(async (flags: DrillFlags, command: Command) => {
      if (flags.target === 'aws-twin') return awsTwin(flags, command);
      for (const flag of ['config', 'throttle', 'offlineWorker'] as const) {
        if (command.getOptionValueSource(flag) === 'cli') throw new CliError(`${flagName(flag)} goes with --target aws-twin${flag === 'offlineWorker' ? ' (the local drill: --fault worker-down)' : ''}`);
      }
      if (flags.battery) return battery(flags, command);
      for (const flag of ['faults', 'runsPerFault'] as const) {
        if (command.getOptionValueSource(flag) === 'cli') throw new CliError(`${flagName(flag)} goes with --battery`);
      }
      checkSettings([flags.fault], flags.replicas);
      const baseSeed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
      const progress = consoleProgress();
      const results: DrillResult[] = [];
      mkdirSync(flags.report, { recursive: true });
      for (let run = 0; run < flags.runs; run++) {
        const seed = baseSeed + run;
        if (flags.runs > 1) progress.event('info', `run ${run + 1}/${flags.runs}`, `seed ${seed}`);
        const result = await runDrill({ ...drillOptions(flags), seed, fault: flags.fault, progress });
        results.push(result);
        writeRunReport(flags.report, flags.runs > 1 ? `run-${run + 1}-` : '', result);
        if (!flags.json) process.stdout.write(`\n${renderDrillTable(result)}\n`);
      }
      const summary = summarizeRuns(results);
      if (flags.runs > 1) {
        writeFileSync(path.join(flags.report, 'drill-summary.json'), JSON.stringify({ medians: summary, runs: results.map(stripSeries) }, null, 2));
        writeFileSync(path.join(flags.report, 'drill-summary.txt'), `${renderRunsTable(results)}\n`);
        if (!flags.json) process.stdout.write(`\n${renderRunsTable(results)}\n`);
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(flags.runs > 1 ? { medians: summary, runs: results.map(stripSeries) } : stripSeries(results[0]!), null, 2)}\n`);
      }
      process.stderr.write(`report written to ${path.resolve(flags.report)}\n`);
      if (summary.passed !== summary.runs) {
        const failures = results.filter((r) => !r.ok).map((r) => `seed ${r.seed}: ${r.failure}`);
        throw new CliError(`drill failed: ${summary.runs - summary.passed} of ${summary.runs} runs failed (${failures.join('; ')})`, ExitCode.Failed);
      }
    });
}

/** The twin drill: one failover (kill of the primary under load); the local drill's fault and load flags do not apply. */
async function awsTwin(flags: DrillFlags, command: Command): Promise<void> {
  const localOnly = ['fault', 'replicas', 'workers', 'warmup', 'jitter', 'after', 'confirm', 'runs', 'report', 'battery', 'runsPerFault', 'faults'] as const;
  const given = localOnly.filter((flag) => command.getOptionValueSource(flag) === 'cli');
  if (given.length > 0) {
    throw new CliError(`${given.map(flagName).join(', ')} ${given.length > 1 ? 'do' : 'does'} not go with --target aws-twin (it runs one failover of the synthesized stack; see docs/aws-twin.md)`);
  }
  await runAwsTwinDrill(
    { config: flags.config ?? 'config/default.json', throttle: flags.throttle ?? 0.02, rate: flags.rate, seed: flags.seed ?? 1, json: flags.json, ...(flags.offlineWorker !== undefined ? { offlineWorker: flags.offlineWorker } : {}) },
    consoleProgress(),
  );
}

/** `--throttle 0.05`: a share from 0 to below 1. */
function shareOption(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < 0 || n >= 1) throw new InvalidArgumentError(`${flag} must be a number from 0 to below 1, got '${value}'`);
    return n;
  };
}

/** `--offline-worker 2` (a 1-based position) or `--offline-worker i-0abc...` (an instance id of the template). */
function offlineWorkerOption(value: string): number | string {
  const v = value.trim();
  if (/^[0-9]+$/.test(v) && Number(v) >= 1) return Number(v);
  if (/^i-[0-9a-f]+$/.test(v)) return v;
  throw new InvalidArgumentError(`--offline-worker must be a worker's position (1, 2, ...) or its instance id (i-...), got '${value}'`);
}

/** A fault the settings cannot run is a usage error, said before anything starts. */
function checkSettings(faults: readonly string[], replicas: number): void {
  const problems = faults.map((f) => faultSettingsProblem(faultByName(f), replicas)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) throw new CliError(problems.join('; '), ExitCode.Usage);
}

/** `--faults a,b`: every name checked before anything runs. */
function faultListOption(value: string): string[] {
  const names = value.split(',').map((n) => n.trim()).filter(Boolean);
  const unknown = names.filter((n) => !FAULT_NAMES.includes(n));
  if (names.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`--faults: ${names.length === 0 ? 'no fault given' : `unknown fault${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}`}; expected a comma-separated list of ${FAULT_NAMES.join(', ')}`);
  }
  return [...new Set(names)];
}

async function battery(flags: DrillFlags, command: Command): Promise<void> {
  for (const flag of ['fault', 'runs'] as const) {
    if (command.getOptionValueSource(flag) === 'cli') throw new CliError(`--${flag} does not go with --battery: use ${flag === 'fault' ? '--faults' : '--runs-per-fault'}`);
  }
  const faults = flags.faults ?? [...FAULT_NAMES];
  checkSettings(faults, flags.replicas);
  const baseSeed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
  mkdirSync(flags.report, { recursive: true });
  const failedDir = path.join(flags.report, 'failed');
  const line = liveLine(process.stderr);
  const report = await runBattery({
    faults,
    runsPerFault: flags.runsPerFault,
    baseSeed,
    settings: drillOptions(flags),
    runDrill,
    line: line.update,
    onRun: (run, result) => {
      line.done(`${run.ok ? '✔' : '✖'} ${run.fault} seed ${run.seed} (${formatDurationMs(run.durationMs)}): ${run.ok ? `acknowledged ${run.acknowledged}, lost 0, duplicates 0, RTO ${ms(run.rtoMs)}` : run.failure}`);
      if (run.ok || !result) return;
      const dir = path.join(failedDir, `${result.fault}-seed-${result.seed}`);
      mkdirSync(dir, { recursive: true });
      writeRunReport(dir, '', result);
    },
  });
  line.update('');
  writeFileSync(path.join(flags.report, 'battery.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(flags.report, 'battery.txt'), `${renderBatteryTable(report)}\n`);
  writeFileSync(path.join(flags.report, 'battery.svg'), renderBatteryChart(report));
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `\n${renderBatteryTable(report)}\n`);
  process.stderr.write(`battery report written to ${path.resolve(flags.report)}${report.ok ? '' : ` (failed runs' reports in ${path.resolve(failedDir)})`}\n`);
  if (!report.ok) throw new CliError(`battery failed: ${report.totals.runs - report.totals.passed} of ${report.totals.runs} runs failed`, ExitCode.Failed);
}

/** One progress line, rewritten in place on a terminal; elsewhere only the finished runs, one line each. */
function liveLine(stream: NodeJS.WriteStream): { update: (text: string) => void; done: (text: string) => void } {
  const tty = stream.isTTY === true;
  let shown = '';
  return {
    update(text) {
      if (!tty || text === shown) return;
      const width = stream.columns ?? 120;
      stream.write(`\r\x1b[K${text.length > width - 1 ? `${text.slice(0, width - 2)}…` : text}`);
      shown = text;
    },
    done(text) {
      stream.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
      shown = '';
    },
  };
}

/** The drill's settings from the flags, for one run (seed, fault and progress are the caller's). */
function drillOptions(flags: DrillFlags): Omit<DrillOptions, 'seed' | 'fault' | 'progress'> {
  return {
    replicas: flags.replicas,
    workers: flags.workers,
    rate: flags.rate,
    warmupMs: flags.warmup,
    jitterMs: flags.jitter,
    afterMs: flags.after,
    confirmMs: flags.confirm,
    probeIntervalMs: 50,
  };
}

export function writeRunReport(dir: string, prefix: string, result: DrillResult): void {
  writeFileSync(path.join(dir, `${prefix}drill-report.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(dir, `${prefix}drill-report.txt`), `${renderDrillTable(result)}\n`);
  writeFileSync(path.join(dir, `${prefix}drill-timeline.svg`), renderDrillChart(result));
}

/** The per-bucket series is for the chart; the JSON summary leaves it out. */
export function stripSeries(result: DrillResult): Omit<DrillResult, 'series'> {
  const { series: _series, ...rest } = result;
  return rest;
}
