/**
 * What the AWS twin drill needs to know about the stack besides its template: names the config and the stack's
 * constants decide (the writer record, where the agent lives on a worker, the credentials secret, the application
 * database). One place, for the drill command and the tests. Pure: no runtime code.
 */
import type { FailoverConfig } from './config.js';
import { AGENT } from './worker-user-data.js';

export interface TwinStackInputs {
  readonly writerRecordName: string;
  readonly workerLayout: { readonly agentCommand: string; readonly bufferPath: string; readonly configPath: string };
  readonly dbSecretLogicalId: string;
  readonly databaseName: string;
}

interface TemplateJson {
  readonly Resources: Record<string, { readonly Type: string; readonly Properties?: Record<string, any> }>;
}

export function twinStackInputs(config: FailoverConfig, template: TemplateJson): TwinStackInputs {
  const probe = Object.entries(template.Resources).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.startsWith('RunbookProbeFunction'));
  const secret = probe?.[1].Properties?.Environment?.Variables?.DB_SECRET_ARN?.Ref as string | undefined;
  if (!secret) throw new Error('the template has no runbook probe function with DB_SECRET_ARN = Ref <secret>: is it a FailoverStack template?');
  return {
    writerRecordName: `${config.writerEndpoint.recordName}.${config.writerEndpoint.zoneName}`,
    workerLayout: { agentCommand: AGENT.command, bufferPath: AGENT.bufferPath, configPath: AGENT.configPath },
    dbSecretLogicalId: secret,
    databaseName: config.database.databaseName,
  };
}

/**
 * How long verify waits for the workers' confirmations in the twin drill with a worker offline, seconds. The twin
 * shortens the state machine's Wait states, not verify's own limit (timeoutSeconds.confirmations, 300 s by default,
 * measured on the wall clock): with a worker that cannot confirm during the execution, verify would wait all of it.
 */
export const TWIN_OFFLINE_CONFIRMATIONS_SECONDS = 20;

/** The config with verify's wait for confirmations capped at TWIN_OFFLINE_CONFIRMATIONS_SECONDS (the offline-worker drill). */
export function withTwinOfflineConfirmations(config: FailoverConfig): FailoverConfig {
  const current = config.runbook.timeoutSeconds.confirmations ?? 300;
  if (current <= TWIN_OFFLINE_CONFIRMATIONS_SECONDS) return config;
  return { ...config, runbook: { ...config.runbook, timeoutSeconds: { ...config.runbook.timeoutSeconds, confirmations: TWIN_OFFLINE_CONFIRMATIONS_SECONDS } } };
}
