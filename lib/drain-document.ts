import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DRAIN_DOCUMENT_PARAMETERS, drainDocumentName } from '../src/core/drain-parameters.js';

/** Where the agent lives on the workers (paths validated by the Runbook construct). */
export interface DrainDocumentProps {
  /** Names the document (drainDocumentName): the CLI finds it from the cluster id. */
  readonly clusterId: string;
  /** @default /usr/local/bin/rds-failover-agent */
  readonly agentCommand?: string;
  readonly bufferPath: string;
  /** @default - the agent's default configuration */
  readonly configPath?: string;
  /** The agent daemon's systemd unit, sent SIGHUP before the drain. @default rds-failover-agent.service */
  readonly daemonUnit?: string;
  /** Run Command execution timeout of one drain. */
  readonly timeoutSeconds: number;
}

/**
 * The one command the runbook may run on the workers: an SSM Command document that drains the agent's buffer.
 * Its only input is the promotion's epoch (a UUID), held to a strict pattern by SSM itself; the paths are fixed here at synth time. So the drain function's SendCommand permission, scoped
 * to this document, cannot run anything else on a worker (AWS-RunShellScript would run any shell line).
 */
export class DrainDocument extends Construct {
  readonly document: ssm.CfnDocument;

  constructor(scope: Construct, id: string, props: DrainDocumentProps) {
    super(scope, id);
    const errors = drainDocumentPropsErrors(props);
    if (!Number.isInteger(props.timeoutSeconds) || props.timeoutSeconds < 1) errors.push(`timeoutSeconds must be a whole number of seconds >= 1, got ${props.timeoutSeconds}`);
    if (errors.length > 0) throw new Error(`DrainDocument ${id}: ${errors.join('; ')}`);
    // Named after the cluster (the CLI derives the name): a change that needs a replacement must also change
    // the name, or CloudFormation cannot create the new document beside the old one.
    this.document = new ssm.CfnDocument(this, 'Document', {
      name: drainDocumentName(props.clusterId),
      documentType: 'Command',
      // a changed document becomes a new version of the same name (senders ask for $LATEST)
      updateMethod: 'NewVersion',
      content: drainDocumentContent(props),
    });
  }

  /** The document's name (what SendCommand takes). */
  get documentName(): string {
    return this.document.ref;
  }
}

/**
 * What the script puts unquoted on its command lines must be plain paths and a unit name (checked here and
 * by the Runbook construct, which names the fields with `prefix`).
 */
export function drainDocumentPropsErrors(props: Pick<DrainDocumentProps, 'agentCommand' | 'bufferPath' | 'configPath' | 'daemonUnit'>, prefix = ''): string[] {
  const errors: string[] = [];
  for (const [field, value] of [['bufferPath', props.bufferPath], ['agentCommand', props.agentCommand], ['configPath', props.configPath]] as const) {
    if (value !== undefined && !/^\/[A-Za-z0-9._/-]+$/.test(value)) errors.push(`${prefix}${field} '${value}' must be an absolute path of letters, digits, '.', '_', '-', '/'`);
  }
  if (props.daemonUnit !== undefined && !/^[A-Za-z0-9@._-]+\.service$/.test(props.daemonUnit)) {
    errors.push(`${prefix}daemonUnit '${props.daemonUnit}' must be a systemd service name like rds-failover-agent.service`);
  }
  return errors;
}

/** The document (schema 2.2). Pure: exported so tests can run its script the way the SSM agent does. */
export function drainDocumentContent(props: DrainDocumentProps): Record<string, unknown> {
  const agent = [props.agentCommand ?? '/usr/local/bin/rds-failover-agent', 'drain', '--json', '--buffer', props.bufferPath];
  if (props.configPath) agent.push('--config', props.configPath);
  return {
    schemaVersion: '2.2',
    description: "rds-failover: drain the worker write buffer into the new primary after a failover (converge on the promotion's epoch)",
    parameters: {
      epoch: {
        type: 'String',
        default: '',
        allowedPattern: DRAIN_DOCUMENT_PARAMETERS.epoch.source,
        description: "The promotion's epoch (UUID): the writer must be on it or a newer one. Empty: converge on the writer's lineage.",
      },
    },
    mainSteps: [
      {
        action: 'aws:runShellScript',
        name: 'drain',
        inputs: {
          timeoutSeconds: String(props.timeoutSeconds),
          runCommand: [
            'set -eu',
            // the daemon's sync loop drops its session and resolves the (repointed) writer now; a worker without it still drains
            `systemctl kill --signal=HUP ${props.daemonUnit ?? 'rds-failover-agent.service'} 2>/dev/null || true`,
            // single-quoted: even a value that got past the pattern could not leave the quotes without a ' (the pattern allows none)
            "epoch='{{ epoch }}'",
            'if [ -n "$epoch" ]; then',
            `  exec ${agent.join(' ')} --epoch "$epoch"`,
            'fi',
            `exec ${agent.join(' ')}`,
          ],
        },
      },
    ],
  };
}
