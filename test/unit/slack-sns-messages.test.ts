import { describe, expect, it } from 'vitest';
import { deliverToSlack, slackMessageFor } from '../../src/slack/sns-to-slack.js';
import { alarmNotification } from '../../src/slack/alarm-notification.js';
import { renderSlackText, type SlackMessage } from '../../src/slack/block-kit.js';
import { decodeNotification, encodeNotification } from '../../src/core/notification-envelope.js';
import { SlackDeliveryError } from '../../src/slack/webhook-client.js';
import type { Notification } from '../../src/ports/notifier.js';

const notification: Notification = {
  source: 'runbook',
  severity: 'info',
  clusterId: 'prod',
  title: 'promote prod-b: done in 4.1 s',
  fields: { step: 'promote', node: 'prod-b', durationSeconds: 4.1 },
  at: '2026-03-01T10:00:00.000Z',
};

/** What CloudWatch publishes to SNS for an alarm state change (shape from a real alarm notification). */
const alarmMessage = {
  AlarmName: 'rds-failover-prod-replica-lag-prod-b',
  AlarmDescription: 'warning: AWS/RDS ReplicaLag of prod-b at or above 120 s for 5 minutes',
  AWSAccountId: '123456789012',
  AlarmConfigurationUpdatedTimestamp: '2026-02-01T00:00:00.000+0000',
  NewStateValue: 'ALARM',
  NewStateReason: 'Threshold Crossed: 5 out of the last 5 datapoints [180.0 (01/03/26 09:59:00)] were greater than or equal to the threshold (120.0).',
  StateChangeTime: '2026-03-01T10:00:12.345+0000',
  Region: 'EU (Ireland)',
  AlarmArn: 'arn:aws:cloudwatch:eu-west-1:123456789012:alarm:rds-failover-prod-replica-lag-prod-b',
  OldStateValue: 'OK',
  OKActions: [],
  AlarmActions: ['arn:aws:sns:eu-west-1:123456789012:alerts'],
  InsufficientDataActions: [],
  Trigger: {
    MetricName: 'ReplicaLag',
    Namespace: 'AWS/RDS',
    StatisticType: 'Statistic',
    Statistic: 'MAXIMUM',
    Unit: null,
    Dimensions: [{ value: 'prod-b', name: 'DBInstanceIdentifier' }],
    Period: 60,
    EvaluationPeriods: 5,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    Threshold: 120.0,
    TreatMissingData: 'notBreaching',
  },
};

describe('notification envelope', () => {
  it('round-trips a notification', () => {
    expect(decodeNotification(JSON.parse(encodeNotification(notification)))).toEqual(notification);
  });

  it('is null for other JSON and an error naming the field for a broken envelope', () => {
    expect(decodeNotification({ AlarmName: 'x' })).toBeNull();
    expect(decodeNotification('text')).toBeNull();
    expect(() => decodeNotification({ type: 'rds-failover.notification', version: 1, notification: { ...notification, severity: 'fatal', fields: { a: {} } } })).toThrow(
      'notification envelope: severity must be one of info|warning|critical|resolved; fields.a must be a string, number, boolean or null',
    );
    expect(() => decodeNotification({ type: 'rds-failover.notification', version: 2 })).toThrow('version must be 1, got 2');
  });
});

describe('alarmNotification', () => {
  it('maps an ALARM to the severity named in the description, with metric, threshold, reason and a console link', () => {
    expect(alarmNotification(alarmMessage as never, 'prod')).toEqual({
      notification: {
        source: 'alarm',
        severity: 'warning',
        clusterId: 'prod',
        title: 'ALARM: rds-failover-prod-replica-lag-prod-b',
        fields: {
          alarm: 'rds-failover-prod-replica-lag-prod-b',
          state: 'OK → ALARM',
          metric: 'AWS/RDS ReplicaLag',
          dimensions: 'DBInstanceIdentifier=prod-b',
          threshold: '>= 120',
        },
        text: `AWS/RDS ReplicaLag of prod-b at or above 120 s for 5 minutes\n${alarmMessage.NewStateReason}`,
        at: '2026-03-01T10:00:12.345Z',
      },
      links: [{ text: 'Alarm', url: 'https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/rds-failover-prod-replica-lag-prod-b' }],
    });
  });

  it('is resolved on OK, info on INSUFFICIENT_DATA, critical by default, and takes the cluster from a ClusterId dimension', () => {
    const ok = alarmNotification({ ...alarmMessage, NewStateValue: 'OK', OldStateValue: 'ALARM' } as never, 'x').notification;
    expect(ok).toMatchObject({ severity: 'resolved', title: 'OK: rds-failover-prod-replica-lag-prod-b', fields: { state: 'ALARM → OK' } });
    expect(alarmNotification({ ...alarmMessage, NewStateValue: 'INSUFFICIENT_DATA' } as never, 'x').notification.severity).toBe('info');
    const plain = alarmNotification(
      { AlarmName: 'a', NewStateValue: 'ALARM', AlarmDescription: 'no prefix', Trigger: { Dimensions: [{ name: 'ClusterId', value: 'stage' }, { name: 'ReplicaId', value: 'stage-b' }] } },
      'x',
    ).notification;
    expect(plain).toMatchObject({ severity: 'critical', clusterId: 'stage', text: 'no prefix', fields: { dimensions: 'ClusterId=stage, ReplicaId=stage-b' } });
  });

  it('describes a Metrics Insights alarm by its query', () => {
    const insights = alarmNotification(
      { AlarmName: 'backlog', NewStateValue: 'ALARM', Trigger: { Metrics: [{ Id: 'q', Expression: 'SELECT MAX(BufferPendingRows) FROM SCHEMA("RdsFailover", ClusterId, WorkerId)' }], Threshold: 5, ComparisonOperator: 'GreaterThanThreshold' } },
      'prod',
    ).notification;
    expect(insights.fields).toMatchObject({ metric: 'SELECT MAX(BufferPendingRows) FROM SCHEMA("RdsFailover", ClusterId, WorkerId)', threshold: '> 5' });
  });
});

describe('slackMessageFor', () => {
  it('formats our own notifications with a dashboard link', () => {
    const message = slackMessageFor({ messageId: 'm1', message: encodeNotification(notification) }, 'prod', 'https://example.test/dash');
    expect(renderSlackText(message)).toBe(
      [
        '┃ (#36C5F0)',
        '┃ :large_blue_circle: promote prod-b: done in 4.1 s',
        '┃   Step: promote',
        '┃   Node: prod-b',
        '┃   Duration seconds: 4.1 s',
        '┃ INFO · cluster prod · runbook · 2026-03-01T10:00:00.000Z · Dashboard (https://example.test/dash)',
      ].join('\n'),
    );
  });

  it('formats CloudWatch alarms with the alarm link first', () => {
    const message = slackMessageFor({ messageId: 'm2', message: JSON.stringify(alarmMessage) }, 'prod', 'https://example.test/dash');
    const text = renderSlackText(message);
    expect(message.attachments[0].color).toBe('#ECB22E');
    expect(text).toContain('┃ :large_orange_circle: ALARM: rds-failover-prod-replica-lag-prod-b');
    expect(text).toContain('Alarm (https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/rds-failover-prod-replica-lag-prod-b) · Dashboard (https://example.test/dash)');
  });

  it('posts anything else as raw text instead of dropping it, and says what was wrong with a broken envelope', () => {
    const raw = slackMessageFor({ messageId: 'm3', message: 'hello from the console', subject: 'test', timestamp: '2026-03-01T10:00:00.000Z' }, 'prod');
    expect(renderSlackText(raw)).toBe(
      ['┃ (#36C5F0)', '┃ :large_blue_circle: Message on the alert topic: test', '┃ hello from the console', '┃   Message id: m3', '┃ INFO · cluster prod · alarm · 2026-03-01T10:00:00.000Z'].join('\n'),
    );
    const broken = slackMessageFor({ messageId: 'm4', message: JSON.stringify({ type: 'rds-failover.notification', version: 1, notification: { title: 1 } }), timestamp: '2026-03-01T10:00:00.000Z' }, 'prod');
    expect(renderSlackText(broken)).toContain('Problem: notification envelope: source must be one of lag-monitor|runbook|alarm');
  });
});

describe('deliverToSlack', () => {
  it('posts every message and fails the batch after trying all when one could not be delivered', async () => {
    const posted: SlackMessage[] = [];
    const post = async (m: SlackMessage) => {
      posted.push(m);
      if (posted.length === 1) throw new SlackDeliveryError('Slack unavailable after 5 attempts (last: HTTP 503)', 503, true, 5);
      return { attempts: 1, waitedMs: 0, retriedStatuses: [] };
    };
    const messages = [
      { messageId: 'a', message: encodeNotification(notification) },
      { messageId: 'b', message: encodeNotification({ ...notification, title: 'second' }) },
    ];
    await expect(deliverToSlack(messages, { post, clusterId: 'prod' })).rejects.toThrow('1 of 2 message(s) not delivered to Slack: a: Slack unavailable after 5 attempts (last: HTTP 503)');
    expect(posted).toHaveLength(2);
  });

  it('returns the count when all went through', async () => {
    const lines: string[] = [];
    const result = await deliverToSlack([{ messageId: 'a', message: encodeNotification(notification) }], {
      post: async () => ({ attempts: 2, waitedMs: 1000, retriedStatuses: [429] }),
      clusterId: 'prod',
      log: (l) => lines.push(l),
    });
    expect(result).toEqual({ delivered: 1 });
    expect(lines).toEqual(['delivered a to Slack in 2 attempt(s), waited 1000 ms (retried after 429)']);
  });
});
