/**
 * AWS Systems Manager in the twin: Parameter Store (the template's parameters), the template's Command documents,
 * managed instances (the template's EC2 instances, each bound to a worker buffer on this machine), and Run Command:
 * SendCommand validates the parameters against the document's allowedPattern as SSM does, then runs the document's
 * aws:runShellScript lines under sh, with `{{ name }}` replaced, the worker's file layout mapped onto this machine
 * (the agent command, buffer and config paths fixed in the document) and `systemctl` recorded by a stand-in (the
 * machine has no worker units). GetCommandInvocation reports Pending / InProgress / Success / Failed / TimedOut with the
 * output truncated as SSM truncates it.
 *
 * A worker whose agent is down (TwinWorker.agentUp() false: it neither syncs nor answers SSM) is what SSM shows of a
 * running instance whose SSM Agent lost its connection: DescribeInstanceInformation still lists it, with PingStatus
 * ConnectionLost and its last ping time; SendCommand to it is accepted and its invocation stays Pending until the agent
 * is back (then it runs) or until the command's total timeout (TimeoutSeconds + the document's execution timeout)
 * passes: then TimedOut, StatusDetails DeliveryTimedOut, and it never runs (docs/aws-twin.md cites the AWS documentation).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DeployedTemplate } from './cfn-template.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { awsError } from './twin-errors.js';

export interface TwinWorker {
  readonly bufferPath: string;
  readonly configPath: string;
  /**
   * Whether the worker's agent is up (it syncs and answers SSM). Down: SSM lists the instance as ConnectionLost and
   * cannot deliver commands to it. @default - always up
   */
  readonly agentUp?: () => boolean;
}

export interface SsmTwinOptions {
  /** Local workers bound, in order, to the template's EC2 instances (fewer: the rest are offline). */
  readonly workers: readonly TwinWorker[];
  /** What the documents name on a worker, replaced by the local equivalents. */
  readonly workerLayout: { readonly agentCommand: string; readonly bufferPath: string; readonly configPath?: string };
  /** The command that runs the agent CLI here (e.g. node --import tsx bin/rds-failover-agent.ts). */
  readonly localAgentCommand: readonly string[];
  /** Scratch directory (the systemctl stand-in and its record). */
  readonly workDir: string;
  /** How long one second of a command's timeouts lasts here (tests shorten it). @default 1000 */
  readonly secondMs?: number;
}

interface Parameter {
  value: string;
  type: string;
  version: number;
}

interface Invocation {
  status: 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut';
  /** GetCommandInvocation's StatusDetails (DeliveryTimedOut / ExecutionTimedOut for the two kinds of TimedOut). */
  details: string;
  stdout: string;
  stderr: string;
  code: number;
}

const STDOUT_LIMIT = 24_000;
const STDERR_LIMIT = 8_000;

export class SsmTwin implements ServiceTwin {
  readonly service = 'ssm';
  private readonly parameters = new Map<string, Parameter>();
  private readonly documents = new Map<string, Record<string, any>>();
  /** instance id -> tags, worker (undefined: no SSM Agent ever registered it: SSM does not list it), last ping. */
  private readonly instances = new Map<string, { tags: Record<string, string>; worker?: TwinWorker; lastPing: Date }>();
  private readonly invocations = new Map<string, Invocation>();
  /** Commands delivered and running on a worker (settle() waits for them). */
  private readonly running = new Set<Promise<void>>();
  /** Commands waiting for an agent that is down: the timer that delivers or times them out (stop() cancels them). */
  private readonly undelivered = new Set<NodeJS.Timeout>();
  private nextCommand = 1;
  private readonly shimDir: string;

  constructor(
    private readonly deployed: DeployedTemplate,
    private readonly o: SsmTwinOptions,
  ) {
    for (const id of deployed.ofType('AWS::SSM::Parameter')) {
      this.parameters.set(deployed.ref(id), { value: String(deployed.property(id, 'Value')), type: String(deployed.property(id, 'Type') ?? 'String'), version: 1 });
    }
    for (const id of deployed.ofType('AWS::SSM::Document')) {
      const content = deployed.property<Record<string, any> | string>(id, 'Content');
      this.documents.set(deployed.ref(id), typeof content === 'string' ? (JSON.parse(content) as Record<string, any>) : content!);
    }
    deployed.ofType('AWS::EC2::Instance').forEach((id, index) => {
      const tags = Object.fromEntries(((deployed.property<{ Key: string; Value: string }[]>(id, 'Tags')) ?? []).map((t) => [t.Key, t.Value]));
      this.instances.set(deployed.ref(id), { tags, worker: o.workers[index], lastPing: new Date() });
    });
    this.shimDir = path.join(o.workDir, 'ssm-bin');
    mkdirSync(this.shimDir, { recursive: true });
    writeFileSync(path.join(this.shimDir, 'systemctl'), `#!/bin/sh\necho "systemctl $*" >> "${path.join(o.workDir, 'systemctl.calls')}"\n`);
    chmodSync(path.join(this.shimDir, 'systemctl'), 0o755);
  }

  /** Instance ids of the template's workers that are online (bound to a local buffer, agent up). */
  onlineInstances(): string[] {
    return [...this.instances].filter(([id]) => this.pingStatus(id) === 'Online').map(([id]) => id);
  }

  /** What DescribeInstanceInformation says of an instance: Online, ConnectionLost, or undefined (not listed). */
  pingStatus(instanceId: string): 'Online' | 'ConnectionLost' | undefined {
    const instance = this.instances.get(instanceId);
    if (!instance?.worker) return undefined;
    if (instance.worker.agentUp?.() === false) return 'ConnectionLost';
    instance.lastPing = new Date();
    return 'Online';
  }

  /** Cancels the deliveries still waiting for an agent (the twin is going away). */
  stop(): void {
    for (const timer of this.undelivered) clearTimeout(timer);
    this.undelivered.clear();
  }

  parameter(name: string): string | undefined {
    return this.parameters.get(name)?.value;
  }

  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  handlers(): Record<string, (input: any) => Promise<unknown>> {
    return {
      GetParameter: async (input: { Name: string }) => {
        const p = this.parameters.get(input.Name);
        if (!p) throw awsError('ParameterNotFound', `Parameter ${input.Name} not found.`);
        return { Parameter: { Name: input.Name, Type: p.type, Value: p.value, Version: p.version, ARN: this.parameterArn(input.Name) } };
      },
      PutParameter: async (input: { Name: string; Value: string; Type?: string; Overwrite?: boolean }) => {
        const p = this.parameters.get(input.Name);
        if (p && !input.Overwrite) throw awsError('ParameterAlreadyExists', `The parameter already exists. To overwrite this value, set the overwrite option in the request to true.`);
        if (Buffer.byteLength(input.Value) > 4096) throw awsError('ValidationException', `Standard tier parameters support a maximum parameter value of 4096 characters.`);
        const version = (p?.version ?? 0) + 1;
        this.parameters.set(input.Name, { value: input.Value, type: input.Type ?? p?.type ?? 'String', version });
        return { Version: version, Tier: 'Standard' };
      },
      DescribeInstanceInformation: async (input: { Filters?: { Key: string; Values: string[] }[]; NextToken?: string }) => {
        const filters = input.Filters ?? [];
        const list = [...this.instances]
          .filter(([id]) => this.pingStatus(id) !== undefined)
          .filter(([id, i]) =>
            filters.every((f) => {
              if (f.Key === 'InstanceIds') return f.Values.includes(id);
              if (f.Key === 'PingStatus') return f.Values.includes(this.pingStatus(id)!);
              if (!f.Key.startsWith('tag:')) throw awsError('InvalidFilterKey', `The twin filters instance information by tag:<key>, InstanceIds and PingStatus only, got ${f.Key}`);
              return f.Values.includes(i.tags[f.Key.slice(4)] ?? '\u0000');
            }),
          )
          .map(([id, i]) => ({ InstanceId: id, PingStatus: this.pingStatus(id)!, LastPingDateTime: i.lastPing, PlatformType: 'Linux', ResourceType: 'EC2Instance' }));
        return { InstanceInformationList: list };
      },
      SendCommand: async (input: { InstanceIds: string[]; DocumentName: string; Parameters?: Record<string, string[]>; TimeoutSeconds?: number }) => this.sendCommand(input),
      GetCommandInvocation: async (input: { CommandId: string; InstanceId: string }) => {
        const inv = this.invocations.get(`${input.CommandId}/${input.InstanceId}`);
        if (!inv) throw awsError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist) when calling the GetCommandInvocation operation');
        const done = inv.status !== 'Pending' && inv.status !== 'InProgress';
        return {
          CommandId: input.CommandId,
          InstanceId: input.InstanceId,
          Status: inv.status,
          StatusDetails: inv.details,
          ResponseCode: done ? inv.code : -1,
          StandardOutputContent: inv.stdout.slice(0, STDOUT_LIMIT),
          StandardErrorContent: inv.stderr.slice(0, STDERR_LIMIT),
        };
      },
    };
  }

  authorizations(operation: string, input: any): TwinAuthorization[] {
    const action = `ssm:${operation}`;
    switch (operation) {
      case 'GetParameter':
      case 'PutParameter':
        return [{ action, resource: this.parameterArn(input.Name) }];
      case 'SendCommand':
        return [
          { action, resource: `arn:aws:ssm:${this.deployed.region}:${this.deployed.account}:document/${input.DocumentName}` },
          ...(input.InstanceIds as string[]).map((id) => {
            const tags = this.instances.get(id)?.tags ?? {};
            const context = Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`ssm:resourceTag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
            return { action, resource: `arn:aws:ec2:${this.deployed.region}:${this.deployed.account}:instance/${id}`, context };
          }),
        ];
      default:
        return [{ action, resource: '*' }];
    }
  }

  private parameterArn(name: string): string {
    return `arn:aws:ssm:${this.deployed.region}:${this.deployed.account}:parameter/${name.replace(/^\//, '')}`;
  }

  private async sendCommand(input: { InstanceIds: string[]; DocumentName: string; Parameters?: Record<string, string[]>; TimeoutSeconds?: number }) {
    const document = this.documents.get(input.DocumentName);
    if (!document) throw awsError('InvalidDocument', `Document ${input.DocumentName} does not exist in your account.`);
    const declared = (document.parameters ?? {}) as Record<string, { default?: string; allowedPattern?: string; allowedValues?: string[] }>;
    const values: Record<string, string> = {};
    for (const name of Object.keys(input.Parameters ?? {})) if (!declared[name]) throw awsError('InvalidParameters', `Parameter "${name}" is not declared by the document.`);
    for (const [name, spec] of Object.entries(declared)) {
      const value = input.Parameters?.[name]?.[0] ?? spec.default;
      if (value === undefined) throw awsError('InvalidParameters', `Parameter "${name}" is required but was not provided.`);
      if (spec.allowedPattern !== undefined && !new RegExp(spec.allowedPattern).test(value)) {
        throw awsError('InvalidParameters', `Parameter "${name}" "${value}" failed to satisfy constraint: Member must satisfy regular expression pattern: ${spec.allowedPattern}`);
      }
      if (spec.allowedValues && !spec.allowedValues.includes(value)) throw awsError('InvalidParameters', `Parameter "${name}" "${value}" is not an allowed value.`);
      values[name] = value;
    }
    // SSM accepts a command for a managed instance whose agent lost its connection (it waits for the agent), and
    // refuses an instance no agent ever registered.
    for (const id of input.InstanceIds) if (!this.instances.get(id)?.worker) throw awsError('InvalidInstanceId', `Instances [[${id}]] not in a valid state for account ${this.deployed.account}`);
    const commandId = `twin-cmd-${String(this.nextCommand++).padStart(8, '0')}`;
    const step = (document.mainSteps as { inputs?: { timeoutSeconds?: string } }[] | undefined)?.[0];
    // Total timeout: the delivery timeout (TimeoutSeconds, default 3600) plus the execution timeout.
    const totalMs = ((input.TimeoutSeconds ?? 3600) + Number(step?.inputs?.timeoutSeconds ?? 3600)) * (this.o.secondMs ?? 1000);
    const deadline = Date.now() + totalMs;
    for (const id of input.InstanceIds) {
      const inv: Invocation = { status: 'Pending', details: 'Pending', stdout: '', stderr: '', code: -1 };
      this.invocations.set(`${commandId}/${id}`, inv);
      this.deliver(document, values, id, inv, deadline);
    }
    return { Command: { CommandId: commandId, DocumentName: input.DocumentName, InstanceIds: input.InstanceIds, Status: 'Pending', TimeoutSeconds: input.TimeoutSeconds ?? 3600 } };
  }

  /** Runs the command once the instance's agent is up; an agent that stays down past the deadline never gets it. */
  private deliver(document: Record<string, any>, values: Record<string, string>, instanceId: string, inv: Invocation, deadline: number): void {
    const worker = this.instances.get(instanceId)!.worker!;
    if (worker.agentUp?.() !== false) {
      const run = this.run(document, values, worker, inv);
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
      return;
    }
    if (Date.now() >= deadline) {
      inv.status = 'TimedOut';
      inv.details = 'DeliveryTimedOut';
      return;
    }
    const timer = setTimeout(() => {
      this.undelivered.delete(timer);
      this.deliver(document, values, instanceId, inv, deadline);
    }, Math.min(100, Math.max(1, deadline - Date.now())));
    this.undelivered.add(timer);
  }

  private async run(document: Record<string, any>, values: Record<string, string>, worker: TwinWorker, inv: Invocation): Promise<void> {
    const step = (document.mainSteps as { action: string; inputs: { runCommand: string[]; timeoutSeconds?: string } }[])[0];
    if (!step || step.action !== 'aws:runShellScript') {
      inv.status = 'Failed';
      inv.details = 'Failed';
      inv.stderr = 'the AWS twin runs aws:runShellScript steps only';
      return;
    }
    const layout = this.o.workerLayout;
    const local = this.o.localAgentCommand.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const script = step.inputs.runCommand
      .map((line) => line.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => values[name] ?? ''))
      .map((line) => line.split(layout.agentCommand).join(local).split(layout.bufferPath).join(worker.bufferPath))
      .map((line) => (layout.configPath ? line.split(layout.configPath).join(worker.configPath) : line))
      .join('\n');
    inv.status = 'InProgress';
    inv.details = 'InProgress';
    const timeoutMs = Number(step.inputs.timeoutSeconds ?? 3600) * (this.o.secondMs ?? 1000);
    await new Promise<void>((resolve) => {
      const child = spawn('sh', ['-c', script], { env: { ...process.env, PATH: `${this.shimDir}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
      const timer = setTimeout(() => {
        inv.status = 'TimedOut';
        inv.details = 'ExecutionTimedOut';
        child.kill('SIGKILL');
      }, timeoutMs);
      child.stdout.on('data', (d: Buffer) => (inv.stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (inv.stderr += d.toString()));
      child.on('close', (code) => {
        clearTimeout(timer);
        inv.code = code ?? -1;
        if (inv.status !== 'TimedOut') inv.status = inv.details = code === 0 ? 'Success' : 'Failed';
        resolve();
      });
    });
  }
}
