/**
 * The worker's boot script, as lines of bash, run at every boot (BufferedWorkers), so it is idempotent. Pure:
 * values may be CDK tokens (they are joined by the template).
 * Paths and the unit name are a contract with the runbook (SSM SendCommand runs the agent CLI on the workers)
 * and the snapshot pre-script.
 */
export const AGENT = {
  user: 'rds-failover',
  installDir: '/opt/rds-failover-agent',
  entry: 'rds-failover-agent.cjs',
  /** Node.js 22 and the RDS CA bundle, shipped in the agent asset (lib/agent-bundle.ts). */
  node: '/opt/rds-failover-agent/node',
  rdsCaFile: '/opt/rds-failover-agent/rds-ca-bundle.pem',
  command: '/usr/local/bin/rds-failover-agent',
  dataDir: '/var/lib/rds-failover',
  bufferPath: '/var/lib/rds-failover/outbox.sqlite',
  configPath: '/etc/rds-failover/agent.json',
  unit: 'rds-failover-agent.service',
  /** Replaced by the instance id at boot. */
  instanceIdPlaceholder: '__INSTANCE_ID__',
} as const;

export interface WorkerUserDataInput {
  readonly region: string;
  /** S3 location of the agent bundle (zip). */
  readonly agentBucket: string;
  readonly agentKey: string;
  /** EBS volume id of the buffer's data volume (vol-...). */
  readonly dataVolumeId: string;
  /** JSON of the agent config; may contain AGENT.instanceIdPlaceholder. */
  readonly agentConfigJson: string;
}

export function workerUserData(input: WorkerUserDataInput): string[] {
  return [
    'set -euo pipefail',
    'exec >>/var/log/rds-failover-bootstrap.log 2>&1',
    'echo "rds-failover bootstrap start $(date -Is)"',
    '',
    `# The agent runs as its own user; the wrapper drops to it so SSM commands (drain, checkpoint) keep one file owner.`,
    `id -u ${AGENT.user} >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin ${AGENT.user}`,
    `install -d -m 0755 ${AGENT.installDir}`,
    `aws s3 cp --region ${input.region} "s3://${input.agentBucket}/${input.agentKey}" ${AGENT.installDir}/agent.zip`,
    `python3 -m zipfile -e ${AGENT.installDir}/agent.zip ${AGENT.installDir}/`,
    `rm -f ${AGENT.installDir}/agent.zip`,
    `chmod 0755 ${AGENT.node}`,
    '# The agent runs on the Node.js 22 shipped with it (node:sqlite, no native addon; ExperimentalWarning is noise).',
    `cat > ${AGENT.command} <<EOF`,
    '#!/bin/sh',
    `if [ "\\$(id -u)" = "0" ]; then exec runuser -u ${AGENT.user} -- "\\$0" "\\$@"; fi`,
    `exec ${AGENT.node} --disable-warning=ExperimentalWarning ${AGENT.installDir}/${AGENT.entry} "\\$@"`,
    'EOF',
    `chmod 0755 ${AGENT.command}`,
    '',
    '# The data volume is attached by CloudFormation after boot starts: wait for it, format it only if it is blank,',
    `# mount it at ${AGENT.dataDir}. A volume that already holds a filesystem (the buffer of a replaced instance) is kept.`,
    `VOLUME_ID='${input.dataVolumeId}'`,
    'DEVICE=""',
    'for attempt in $(seq 1 120); do',
    '  for candidate in "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOLUME_ID//-/}" /dev/xvdf; do',
    '    if [ -b "$candidate" ]; then DEVICE=$(readlink -f "$candidate"); break 2; fi',
    '  done',
    '  sleep 5',
    'done',
    'if [ -z "$DEVICE" ]; then echo "data volume $VOLUME_ID not attached after 10 minutes" >&2; exit 1; fi',
    'status=0; blkid -p "$DEVICE" >/dev/null 2>&1 || status=$?',
    'if [ "$status" -eq 2 ]; then',
    '  mkfs.xfs -L rdsfailover "$DEVICE"',
    'elif [ "$status" -ne 0 ]; then',
    '  echo "cannot probe $DEVICE (blkid exit $status): not formatting it" >&2; exit 1',
    'fi',
    'FS_UUID=$(blkid -s UUID -o value "$DEVICE")',
    `install -d -m 0750 ${AGENT.dataDir}`,
    `grep -q "UUID=$FS_UUID" /etc/fstab || echo "UUID=$FS_UUID ${AGENT.dataDir} xfs defaults,nofail,noatime 0 2" >> /etc/fstab`,
    `mountpoint -q ${AGENT.dataDir} || mount ${AGENT.dataDir}`,
    `chown ${AGENT.user}:${AGENT.user} ${AGENT.dataDir}`,
    `chmod 0750 ${AGENT.dataDir}`,
    '',
    '# Agent config: writer endpoint, database, credentials secret, buffer path.',
    `TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')`,
    `INSTANCE_ID=$(curl -sS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)`,
    `install -d -m 0755 $(dirname ${AGENT.configPath})`,
    `cat > ${AGENT.configPath}.tmp <<'AGENT_CONFIG'`,
    input.agentConfigJson,
    'AGENT_CONFIG',
    `sed -i "s/${AGENT.instanceIdPlaceholder}/$INSTANCE_ID/g" ${AGENT.configPath}.tmp`,
    `chmod 0644 ${AGENT.configPath}.tmp`,
    `mv ${AGENT.configPath}.tmp ${AGENT.configPath}`,
    '',
    `cat > /etc/systemd/system/${AGENT.unit} <<'UNIT'`,
    '[Unit]',
    'Description=rds-failover worker write buffer agent',
    'Wants=network-online.target',
    'After=network-online.target',
    `RequiresMountsFor=${AGENT.dataDir}`,
    'StartLimitIntervalSec=0',
    '',
    '[Service]',
    'Type=simple',
    `User=${AGENT.user}`,
    `Environment=AWS_REGION=${input.region}`,
    `ExecStart=${AGENT.command} run --buffer ${AGENT.bufferPath} --config ${AGENT.configPath}`,
    'Restart=always',
    'RestartSec=5',
    'TimeoutStopSec=60',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    'UNIT',
    'systemctl daemon-reload',
    `systemctl enable ${AGENT.unit}`,
    '# This script runs at every boot, after systemd started the unit with what was installed before: restart it.',
    `systemctl restart ${AGENT.unit}`,
    'echo "rds-failover bootstrap done $(date -Is)"',
  ];
}
