import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { parseWeeklyWindow, toSsmSchedule } from './maintenance-windows.js';

export interface WorkerMaintenanceProps {
  readonly clusterId: string;
  /** Weekly window `ddd:hh24:mi-ddd:hh24:mi` (UTC) of whole hours; must not overlap the database windows (checked by the config). */
  readonly window: string;
  /**
   * Hours before the end of the window when no new patch task starts.
   * @default 1
   */
  readonly cutoffHours?: number;
  /** Tags (all must match) that select the worker instances. */
  readonly targetTags: Readonly<Record<string, string>>;
}

/**
 * SSM Maintenance Window that patches the workers with AWS-RunPatchBaseline, one worker at a time (max concurrency 1,
 * max errors 0: a failed worker stops the rollout), rebooting if needed. The agent's buffer is on its own volume and
 * the systemd unit restarts the agent after the reboot, so writes buffered meanwhile are synced afterwards.
 */
export class WorkerMaintenance extends Construct {
  readonly window: ssm.CfnMaintenanceWindow;
  readonly target: ssm.CfnMaintenanceWindowTarget;
  readonly patchTask: ssm.CfnMaintenanceWindowTask;

  constructor(scope: Construct, id: string, props: WorkerMaintenanceProps) {
    super(scope, id);
    const { schedule, durationHours } = toSsmSchedule(parseWeeklyWindow(props.window));
    const cutoff = props.cutoffHours ?? 1;
    if (!Number.isInteger(cutoff) || cutoff < 0 || cutoff >= durationHours) {
      throw new Error(`WorkerMaintenance ${id}: cutoffHours must be an integer from 0 to ${durationHours - 1} (the window lasts ${durationHours} h), got ${cutoff}`);
    }
    if (Object.keys(props.targetTags).length === 0) throw new Error(`WorkerMaintenance ${id}: targetTags must select the workers by at least one tag`);

    this.window = new ssm.CfnMaintenanceWindow(this, 'Window', {
      name: `rds-failover-${props.clusterId}-workers`,
      description: `rds-failover ${props.clusterId}: rolling OS patching of the buffered workers (${props.window} UTC)`,
      schedule,
      scheduleTimezone: 'UTC',
      duration: durationHours,
      cutoff,
      allowUnassociatedTargets: false,
    });
    this.target = new ssm.CfnMaintenanceWindowTarget(this, 'Workers', {
      windowId: this.window.ref,
      resourceType: 'INSTANCE',
      targets: Object.entries(props.targetTags).map(([key, value]) => ({ key: `tag:${key}`, values: [value] })),
      description: 'The buffered workers of this cluster',
    });
    this.patchTask = new ssm.CfnMaintenanceWindowTask(this, 'Patch', {
      windowId: this.window.ref,
      taskType: 'RUN_COMMAND',
      taskArn: 'AWS-RunPatchBaseline',
      priority: 1,
      maxConcurrency: '1',
      maxErrors: '0',
      targets: [{ key: 'WindowTargetIds', values: [this.target.ref] }],
      taskInvocationParameters: {
        maintenanceWindowRunCommandParameters: {
          parameters: { Operation: ['Install'], RebootOption: ['RebootIfNeeded'] },
          timeoutSeconds: 600,
          comment: 'rds-failover rolling patch',
        },
      },
      description: 'Install patches, one worker at a time',
    });
  }
}
