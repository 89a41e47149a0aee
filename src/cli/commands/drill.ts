import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { renderDrillChart } from '../drill/chart.js';
import { FAULT_NAMES, FAULTS } from '../drill/faults/index.js';
import { renderDrillTable, renderRunsTable, summarizeRuns, type DrillResult } from '../drill/report.js';
import { runDrill, type DrillOptions } from '../drill/run-drill.js';
import { CliError, durationOption, ExitCode, nonNegativeIntegerOption, positiveIntegerOption, positiveNumberOption } from '../options.js';
import { consoleProgress } from '../progress.js';

interface DrillFlags {
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
}

export function registerDrillCommand(program: Command): Command {
  return program
    .command('drill')
    .description(
      'Run a failover drill on this machine: a real PostgreSQL primary + streaming replicas, worker processes writing through real buffers, a fault, the runbook, and an exact count of lost and duplicated rows.',
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
    .option('--report <dir>', 'where to write drill-report.json, drill-report.txt and drill-timeline.svg', 'drill-report')
    .option('--json', 'print the report as JSON instead of tables')
    .action(async (flags: DrillFlags) => {
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
