/**
 * Starting the twin drill in its own process: the twin's CA and server certificate are made first, and the process is
 * started with NODE_EXTRA_CA_CERTS naming the CA (Node reads it only at start), as Lambda starts with the RDS CAs.
 */
import { fork } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RdsTwin } from '../../local/aws-twin/rds-twin.js';
import { makeTwinCertificates, type TwinCertificates } from '../../local/aws-twin/twin-tls.js';
import { resolvePgOsUser } from '../../local/os-user.js';
import type { TwinDrillReport, TwinDrillSpec } from './twin-drill.js';

const CHILD = path.join(__dirname, 'twin-drill-child.ts');
/** Loopback addresses the twin's RDS endpoints may use (the TLS certificate covers them). */
const ENDPOINT_ADDRESSES = 16;

/** The twin's CA and server certificate (run before starting the process that runs the drill). */
export function prepareTwinCertificates(dir: string): TwinCertificates {
  return makeTwinCertificates(dir, RdsTwin.addresses(ENDPOINT_ADDRESSES), resolvePgOsUser());
}

/**
 * Runs the drill in a child process started with NODE_EXTRA_CA_CERTS naming the twin's CA (made here), as Lambda
 * starts with the RDS CAs; resolves with its report. `log` receives the child's progress lines.
 */
export async function runTwinDrillProcess(spec: Omit<TwinDrillSpec, 'certificates' | 'log'>, log: (line: string) => void = () => undefined): Promise<TwinDrillReport> {
  mkdirSync(spec.workDir, { recursive: true });
  // The PostgreSQL OS user must reach the certificate files below it.
  chmodSync(spec.workDir, 0o711);
  const certificates = prepareTwinCertificates(path.join(spec.workDir, 'tls'));
  const specFile = path.join(spec.workDir, 'twin-drill-spec.json');
  writeFileSync(specFile, JSON.stringify({ ...spec, certificates }));
  const child = fork(CHILD, [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: certificates.caFile, TWIN_DRILL_SPEC: specFile },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let report: TwinDrillReport | undefined;
  let failure: string | undefined;
  child.on('message', (m: { type: 'log'; line: string } | { type: 'report'; report: TwinDrillReport } | { type: 'error'; message: string }) => {
    if (m.type === 'log') log(m.line);
    else if (m.type === 'report') report = m.report;
    else failure = m.message;
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  child.stdout!.resume();
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (report) return report;
  throw new Error(`the twin drill process exited with ${code}: ${failure ?? stderr.trim()}`);
}
