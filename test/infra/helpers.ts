/**
 * Shared helpers for infrastructure tests: build the FailoverStack (or any stack) from a config object, synthesize
 * it with the same feature flags as `cdk synth` (cdk.json), with esbuild bundling skipped unless asked, run cdk-nag
 * AwsSolutions, and return the template plus every unacknowledged cdk-nag finding.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Validations, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig, type FailoverConfig } from '../../lib/config.js';
import { FailoverStack, stackName } from '../../lib/failover-stack.js';

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

type RawObject = { [key: string]: unknown };
/** A partial raw config: objects are merged into config/default.json, arrays and scalars replace. */
export type ConfigPatch = { [key: string]: unknown };

/** The feature flags and context of cdk.json, so tests synthesize what `cdk synth` synthesizes. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as { context?: Record<string, unknown> };
  return { ...cdkJson.context };
}

/** A fresh copy of config/default.json (the raw, unvalidated object). */
export function defaultRawConfig(): RawObject {
  return JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'config', 'default.json'), 'utf8')) as RawObject;
}

function isObject(v: unknown): v is RawObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `patch` into `base` (objects merge, everything else replaces; `undefined` deletes the key). */
export function mergeRaw(base: RawObject, patch: ConfigPatch): RawObject {
  const out: RawObject = { ...base };
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) delete out[key];
    else if (isObject(value) && isObject(out[key])) out[key] = mergeRaw(out[key] as RawObject, value);
    else out[key] = value;
  }
  return out;
}

/** config/default.json with `patch` merged in, validated. */
export function makeConfig(patch: ConfigPatch = {}): FailoverConfig {
  return parseConfig(mergeRaw(defaultRawConfig(), patch), 'test config');
}

export interface SynthOptions {
  /** @default config/default.json */
  readonly config?: FailoverConfig;
  /** Run esbuild for NodejsFunctions (slow). @default false */
  readonly bundling?: boolean;
  /** Register cdk-nag AwsSolutions. @default true */
  readonly nag?: boolean;
  /** Extra context (e.g. availability zones of a pinned env). */
  readonly context?: Record<string, unknown>;
  /** Called with the stack before synthesis, e.g. to add a construct under test. */
  readonly configure?: (stack: FailoverStack) => void;
  /** Keep the cloud assembly directory (the caller removes `outdir`). @default false */
  readonly keepOutdir?: boolean;
}

export interface SynthResult<S extends Stack = FailoverStack> {
  readonly app: App;
  readonly stack: S;
  readonly template: Template;
  /** Unacknowledged cdk-nag (and CloudFormation validation) findings: `<rule> <construct path>: <description>`. */
  readonly findings: string[];
  /** Cloud assembly directory; already removed unless keepOutdir. */
  readonly outdir: string;
}

export function makeApp(options: { bundling?: boolean; context?: Record<string, unknown>; outdir?: string } = {}): App {
  return new App({
    outdir: options.outdir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'rds-failover-cdk-')),
    context: {
      ...cdkJsonContext(),
      // As the CLI does: construct paths in the template metadata (logicalIdByPath relies on them).
      'aws:cdk:enable-path-metadata': true,
      ...(options.bundling ? {} : { 'aws:cdk:bundling-stacks': [] }),
      ...options.context,
    },
  });
}

/** Builds and synthesizes the FailoverStack. */
export function synthFailoverStack(options: SynthOptions = {}): SynthResult {
  const config = options.config ?? makeConfig();
  const app = makeApp(options);
  const stack = new FailoverStack(app, stackName(config), { config });
  options.configure?.(stack);
  return synthStack(app, stack, options);
}

/** Synthesizes any stack of `app` (e.g. a small test stack around one construct) with cdk-nag. */
export function synthStack<S extends Stack>(app: App, stack: S, options: { nag?: boolean; keepOutdir?: boolean } = {}): SynthResult<S> {
  if (options.nag ?? true) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const outdir = app.outdir;
  try {
    try {
      app.synth();
    } catch (e) {
      // Validation failures are reported as findings below; anything else is a real error.
      if (!String(e).includes('ValidationFailed')) throw e;
    }
    const template = Template.fromJSON(JSON.parse(fs.readFileSync(path.join(outdir, stack.templateFile), 'utf8')) as Record<string, unknown>);
    return { app, stack, template, findings: readFindings(outdir), outdir };
  } finally {
    if (!options.keepOutdir) fs.rmSync(outdir, { recursive: true, force: true });
  }
}

interface ValidationReport {
  pluginReports: Array<{
    pluginName: string;
    violations: Array<{ ruleName: string; description: string; severity: string; violatingConstructs?: Array<{ constructPath?: string }> }>;
  }>;
}

function readFindings(outdir: string): string[] {
  const file = path.join(outdir, 'validation-report.json');
  if (!fs.existsSync(file)) return [];
  const report = JSON.parse(fs.readFileSync(file, 'utf8')) as ValidationReport;
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.flatMap((v) =>
      (v.violatingConstructs ?? [{}]).map((c) => `${v.ruleName} ${c.constructPath ?? '?'}: ${v.description} (${plugin.pluginName}, ${v.severity})`),
    ),
  );
}

/** Resources of one type: logical id -> resource. */
export function resourcesOfType(template: Template, type: string): Record<string, { Properties: Record<string, unknown>; [key: string]: unknown }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, unknown> }>;
}

/** The single logical id whose construct path ends with `pathSuffix` (e.g. 'Database/Node-a'). */
export function logicalIdByPath(template: Template, pathSuffix: string): string {
  const json = template.toJSON() as { Resources: Record<string, { Metadata?: Record<string, unknown> }> };
  const ids = Object.entries(json.Resources)
    .filter(([, r]) => String(r.Metadata?.['aws:cdk:path'] ?? '').endsWith(pathSuffix))
    .map(([id]) => id);
  if (ids.length !== 1) throw new Error(`expected one resource at a path ending with ${pathSuffix}, found ${ids.length}: ${ids.join(', ')}`);
  return ids[0];
}
