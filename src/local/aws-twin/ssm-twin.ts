/**
 * AWS Systems Manager in the twin: Parameter Store (the template's parameters), the template's Command documents,
 * managed instances (the template's EC2 instances, each bound to a worker buffer on this machine), and Run Command:
 * SendCommand validates the parameters against the document's allowedPattern as SSM does, then runs the document's
 * aws:runShellScript lines under sh, with `{{ name }}` replaced, the worker's file layout mapped onto this machine
 * (the agent command, buffer and config paths fixed in the document) and `systemctl` recorded by a stand-in (the
 * machine has no worker units). GetCommandInvocation reports Pending / InProgress / Success / Failed / TimedOut with the
 * output truncated as SSM truncates it.
 *
 * An instance cut off (setReachable(id, false): its SSM Agent cannot be reached, its rds-failover agent does not sync)
 * is what SSM shows of a running instance whose SSM Agent stopped checking in: SSM does not notice at once (the agent
 * checks in about every 5 minutes; amazon-ssm-agent#210: "several minutes" before it shows offline), so
 * DescribeInstanceInformation keeps listing it Online, its LastPingDateTime frozen at the moment it was cut off, for
 * connectionLostAfterSeconds, then ConnectionLost. A command sent to it meanwhile is accepted and stays Pending. As
 * AWS documents it: a command not started within its TimeoutSeconds does not run (SendCommand TimeoutSeconds), and at
 * the command's ExpiresAfter (sent + TimeoutSeconds + the execution timeout, the document step's timeoutSeconds) every
 * invocation still Pending or InProgress becomes TimedOut, StatusDetails DeliveryTimedOut (Command.ExpiresAfter; the
 * user guide's "Understanding command statuses": Pending past TimeoutSeconds + Execution timeout is Delivery Timed
 * Out). A command that started and runs past its execution timeout is TimedOut, StatusDetails ExecutionTimedOut.
 * An instance cut off while a command runs on it runs it on, but cannot report: the invocation stays InProgress until
 * it is reachable again (then its result is reported) or the command expires. Not modeled: Delayed, Cancelled. The
 * durations are SSM's seconds times secondMs (AwsTwin shortens them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { DeployedTemplate } from './cfn-template.js';
import type { ServiceTwin, TwinAuthorization } from './service-twin.js';
import { awsError } from './twin-errors.js';

export interface TwinWorker {
  readonly bufferPath: string;
  readonly configPath: string;
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
  /** How long one second of SSM's timings (a command's timeouts, connectionLostAfterSeconds) lasts here. @default 1000 */
  readonly secondMs?: number;
  /**
   * How long SSM keeps listing a cut-off instance Online (its last ping frozen) before ConnectionLost, in SSM's
   * seconds. @default 600
   */
  readonly connectionLostAfterSeconds?: number;
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
  /** The command's process while it runs (killed if the command expires first). */
  child?: ChildProcess;
}

/** A command's deadlines (ms, Date.now() time) and its execution timeout. */
interface CommandTimes {
  /** Sent + TimeoutSeconds: not started by then, it never runs. */
  readonly startBy: number;
  readonly executionMs: number;
  /** Sent + TimeoutSeconds + the execution timeout (Command.ExpiresAfter). */
  readonly expiresAfter: number;
}

interface Sighting {
  readonly pingStatus: 'Online' | 'ConnectionLost';
  readonly lastPing: Date;
}

/** A managed instance: its tags, the local worker behind it (none: no SSM Agent ever registered it), reachability. */
interface Instance {
  readonly tags: Record<string, string>;
  readonly worker?: TwinWorker;
  /** When it was cut off (its last ping); undefined while reachable. */
  cutOffAt?: number;
  /** Deliveries and results waiting for it to be reachable again. */
  readonly waiting: Set<() => void>;
}

const STDOUT_LIMIT = 24_000;
const STDERR_LIMIT = 8_000;

export class SsmTwin implements ServiceTwin {
  readonly service = 'ssm';
  private readonly parameters = new Map<string, Parameter>();
  private readonly documents = new Map<string, Record<string, any>>();
  private readonly instances = new Map<string, Instance>();
  private readonly invocations = new Map<string, Invocation>();
  /** Commands delivered and running on a worker (settle() waits for them). */
  private readonly running = new Set<Promise<void>>();
  /** Each command's expiry (stop() cancels them). */
  private readonly expiries = new Set<NodeJS.Timeout>();
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
      this.instances.set(deployed.ref(id), { tags, worker: o.workers[index], waiting: new Set() });
    });
    this.shimDir = path.join(o.workDir, 'ssm-bin');
    mkdirSync(this.shimDir, { recursive: true });
    writeFileSync(path.join(this.shimDir, 'systemctl'), `#!/bin/sh\necho "systemctl $*" >> "${path.join(o.workDir, 'systemctl.calls')}"\n`);
    chmodSync(path.join(this.shimDir, 'systemctl'), 0o755);
  }

  /**
   * Cuts a worker instance off (its SSM Agent cannot be reached, its rds-failover agent does not sync) or reconnects
   * it: SSM goes on listing it Online with the last ping of this moment for connectionLostAfterSeconds, then
   * ConnectionLost; a command waiting for it is delivered on reconnection if its TimeoutSeconds has not passed.
   */
  setReachable(instanceId: string, reachable: boolean): void {
    const instance = this.instances.get(instanceId);
    if (!instance?.worker) throw new Error(`SsmTwin.setReachable: ${instanceId} is not a worker instance of the template bound to a local worker`);
    if (!reachable) {
      instance.cutOffAt ??= Date.now();
      return;
    }
    instance.cutOffAt = undefined;
    for (const deliver of [...instance.waiting]) deliver();
  }

  /** Cancels the commands' expiries (the twin is going away). */
  stop(): void {
    for (const timer of this.expiries) clearTimeout(timer);
    this.expiries.clear();
    for (const instance of this.instances.values()) instance.waiting.clear();
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
        // "If you specify a node ID that isn't valid or a node that you don't own, you receive an error" (the API
        // reference); AWS's InvalidInstanceId often comes with no message at all (aws/aws-cli#3646).
        const unknown = filters.filter((f) => f.Key === 'InstanceIds').flatMap((f) => f.Values).filter((id) => !this.instances.get(id)?.worker);
        if (unknown.length > 0) throw awsError('InvalidInstanceId', '');
        const list = [...this.instances]
          .map(([id, i]) => ({ id, i, seen: this.sighting(i) }))
          .filter((x): x is { id: string; i: Instance; seen: Sighting } => x.seen !== undefined)
          .filter(({ id, i, seen }) =>
            filters.every((f) => {
              if (f.Key === 'InstanceIds') return f.Values.includes(id);
              if (f.Key === 'PingStatus') return f.Values.includes(seen.pingStatus);
              if (!f.Key.startsWith('tag:')) throw awsError('InvalidFilterKey', `The twin filters instance information by tag:<key>, InstanceIds and PingStatus only, got ${f.Key}`);
              return f.Values.includes(i.tags[f.Key.slice(4)] ?? '\u0000');
            }),
          )
          .map(({ id, seen }) => ({ InstanceId: id, PingStatus: seen.pingStatus, LastPingDateTime: seen.lastPing, PlatformType: 'Linux', ResourceType: 'EC2Instance' }));
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
    const timeoutSeconds = input.TimeoutSeconds ?? 3600;
    // The execution timeout: the step's timeoutSeconds (3600 when it gives none).
    const executionMs = Number(step?.inputs?.timeoutSeconds ?? 3600) * this.second;
    const sentAt = Date.now();
    const times: CommandTimes = { startBy: sentAt + timeoutSeconds * this.second, executionMs, expiresAfter: sentAt + timeoutSeconds * this.second + executionMs };
    for (const id of input.InstanceIds) {
      const inv: Invocation = { status: 'Pending', details: 'Pending', stdout: '', stderr: '', code: -1 };
      this.invocations.set(`${commandId}/${id}`, inv);
      this.deliver(document, values, this.instances.get(id)!, inv, times);
    }
    return {
      Command: { CommandId: commandId, DocumentName: input.DocumentName, InstanceIds: input.InstanceIds, Status: 'Pending', TimeoutSeconds: timeoutSeconds, ExpiresAfter: new Date(times.expiresAfter) },
    };
  }

  /**
   * Runs the command now if the instance is reachable, else when it is reachable again before its TimeoutSeconds
   * passed (later, it never runs). At ExpiresAfter an invocation still Pending or InProgress is DeliveryTimedOut.
   */
  private deliver(document: Record<string, any>, values: Record<string, string>, instance: Instance, inv: Invocation, times: CommandTimes): void {
    const start = () => {
      instance.waiting.delete(start);
      if (Date.now() > times.startBy) return; // "If this time is reached and the command hasn't already started running, it won't run."
      const run = this.run(document, values, instance, inv, times.executionMs);
      this.running.add(run);
      void run.finally(() => this.running.delete(run));
    };
    const expiry = setTimeout(() => {
      this.expiries.delete(expiry);
      instance.waiting.delete(start);
      if (inv.status !== 'Pending' && inv.status !== 'InProgress') return;
      inv.status = 'TimedOut';
      inv.details = 'DeliveryTimedOut';
      inv.child?.kill('SIGKILL');
    }, Math.max(0, times.expiresAfter - Date.now()));
    this.expiries.add(expiry);
    if (instance.cutOffAt === undefined) start();
    else instance.waiting.add(start);
  }

  /** What DescribeInstanceInformation says of an instance (undefined: not listed, no SSM Agent ever registered it). */
  private sighting(instance: Instance): Sighting | undefined {
    if (!instance.worker) return undefined;
    const now = Date.now();
    if (instance.cutOffAt === undefined) return { pingStatus: 'Online', lastPing: new Date(now) };
    const lost = now - instance.cutOffAt >= this.connectionLostAfterMs;
    return { pingStatus: lost ? 'ConnectionLost' : 'Online', lastPing: new Date(instance.cutOffAt) };
  }

  /** How long a cut-off instance is still listed Online here, ms. */
  get connectionLostAfterMs(): number {
    return (this.o.connectionLostAfterSeconds ?? 600) * this.second;
  }

  private get second(): number {
    return this.o.secondMs ?? 1000;
  }

  private async run(document: Record<string, any>, values: Record<string, string>, instance: Instance, inv: Invocation, executionMs: number): Promise<void> {
    const worker = instance.worker!;
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
    await new Promise<void>((resolve) => {
      const child = spawn('sh', ['-c', script], { env: { ...process.env, PATH: `${this.shimDir}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
      inv.child = child;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, executionMs);
      child.stdout.on('data', (d: Buffer) => (inv.stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (inv.stderr += d.toString()));
      child.on('close', (code) => {
        clearTimeout(timer);
        inv.child = undefined;
        const report = () => {
          instance.waiting.delete(report);
          if (inv.status !== 'InProgress') return; // expired meanwhile
          inv.code = code ?? -1;
          if (timedOut) {
            inv.status = 'TimedOut';
            inv.details = 'ExecutionTimedOut';
          } else inv.status = inv.details = code === 0 ? 'Success' : 'Failed';
        };
        // An agent that cannot be reached cannot report: the result waits for it (or the command expires first).
        if (instance.cutOffAt === undefined) report();
        else instance.waiting.add(report);
        resolve();
      });
    });
  }
}
