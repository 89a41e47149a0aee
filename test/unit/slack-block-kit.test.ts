import { describe, expect, it } from 'vitest';
import { fieldLabel, fieldValue, renderSlackText, toSlackMessage } from '../../src/slack/block-kit.js';
import type { Notification } from '../../src/ports/notifier.js';
import { formatBytes, formatSeconds } from '../../src/core/format-units.js';

const lagAlert: Notification = {
  source: 'lag-monitor',
  severity: 'critical',
  clusterId: 'prod',
  title: 'CRIT replica pg-1 (was WARN)',
  fields: { state: 'CRIT', was: 'WARN', replica: 'pg-1', primary: 'pg-0', lagSeconds: 131.4, lagBytes: 612368384, replayPaused: false },
  text: '2 min 11 s / 584.0 MiB behind pg-0',
  at: '2026-03-01T10:00:40.000Z',
};

describe('toSlackMessage', () => {
  it('renders severity colour and emoji, the title, the text, the figures as fields and a context line with links', () => {
    const message = toSlackMessage(lagAlert, [{ text: 'Dashboard', url: 'https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards/dashboard/x' }]);
    expect(message).toEqual({
      text: ':red_circle: CRITICAL [prod] CRIT replica pg-1 (was WARN)',
      attachments: [
        {
          color: '#E01E5A',
          blocks: [
            { type: 'header', text: { type: 'plain_text', text: ':red_circle: CRIT replica pg-1 (was WARN)', emoji: true } },
            { type: 'section', text: { type: 'mrkdwn', text: '2 min 11 s / 584.0 MiB behind pg-0' } },
            {
              type: 'section',
              fields: [
                { type: 'mrkdwn', text: '*State*\nCRIT' },
                { type: 'mrkdwn', text: '*Was*\nWARN' },
                { type: 'mrkdwn', text: '*Replica*\npg-1' },
                { type: 'mrkdwn', text: '*Primary*\npg-0' },
                { type: 'mrkdwn', text: '*Lag seconds*\n2 min 11 s' },
                { type: 'mrkdwn', text: '*Lag bytes*\n584.0 MiB (612368384 B)' },
                { type: 'mrkdwn', text: '*Replay paused*\nno' },
              ],
            },
            {
              type: 'context',
              elements: [
                { type: 'mrkdwn', text: 'CRITICAL · cluster *prod* · lag-monitor · 2026-03-01T10:00:40.000Z · <https://eu-west-1.console.aws.amazon.com/cloudwatch/home#dashboards/dashboard/x|Dashboard>' },
              ],
            },
          ],
        },
      ],
    });
  });

  it.each([
    ['warning', '#ECB22E', ':large_orange_circle:'],
    ['resolved', '#2EB67D', ':large_green_circle:'],
    ['info', '#36C5F0', ':large_blue_circle:'],
  ] as const)('uses the %s colour and emoji', (severity, color, emoji) => {
    const message = toSlackMessage({ ...lagAlert, severity });
    expect(message.attachments[0].color).toBe(color);
    expect(message.text.startsWith(emoji)).toBe(true);
  });

  it('escapes Slack control characters in text and fields, and splits fields into sections of ten', () => {
    const fields = Object.fromEntries(Array.from({ length: 23 }, (_, i) => [`f${i}`, i === 0 ? 'a<b>&c' : i]));
    const message = toSlackMessage({ ...lagAlert, text: 'x < y & z', fields });
    const blocks = message.attachments[0].blocks;
    expect(blocks[1]).toEqual({ type: 'section', text: { type: 'mrkdwn', text: 'x &lt; y &amp; z' } });
    const sections = blocks.filter((b) => b.type === 'section' && b.fields);
    expect(sections.map((s) => (s.type === 'section' ? s.fields!.length : 0))).toEqual([10, 10, 3]);
    expect(sections[0]!.type === 'section' && sections[0]!.fields![0]!.text).toBe('*F0*\na&lt;b&gt;&amp;c');
  });

  it('says how many fields it could not show rather than dropping them silently', () => {
    const fields = Object.fromEntries(Array.from({ length: 45 }, (_, i) => [`f${i}`, i]));
    const blocks = toSlackMessage({ ...lagAlert, fields }).attachments[0].blocks;
    const all = blocks.flatMap((b) => (b.type === 'section' && b.fields ? b.fields : []));
    expect(all).toHaveLength(40);
    expect(all.at(-1)!.text).toBe('*…*\n6 more fields not shown');
  });

  it('truncates a header longer than Slack allows', () => {
    const header = toSlackMessage({ ...lagAlert, title: 'x'.repeat(400) }).attachments[0].blocks[0]!;
    expect(header.type === 'header' && header.text.text.length).toBe(150);
  });
});

describe('field formatting', () => {
  it('labels camelCase keys as words and keeps keys that already read as text', () => {
    expect(fieldLabel('lagSeconds')).toBe('Lag seconds');
    expect(fieldLabel('replica pg-1')).toBe('replica pg-1');
  });

  it('formats figures by key convention', () => {
    expect(fieldValue('lagBytes', 2048)).toBe('2.0 KiB (2048 B)');
    expect(fieldValue('oldestPendingAgeSeconds', 400)).toBe('6 min 40 s');
    expect(fieldValue('replayPaused', true)).toBe('yes');
    expect(fieldValue('primary', null)).toBe('—');
    expect(fieldValue('thresholds', 'WARN 30 s')).toBe('WARN 30 s');
    expect(fieldValue('lagBytes', 0)).toBe('0 B');
  });

  it('writes durations the way people read them', () => {
    expect([0.04, 9.95, 42, 119.6, 120, 401, 3600, 3659, 5400, 7200].map(formatSeconds)).toEqual([
      '0.0 s',
      '9.9 s',
      '42 s',
      '120 s',
      '2 min',
      '6 min 41 s',
      '1 h',
      '1 h 1 min',
      '1 h 30 min',
      '2 h',
    ]);
    expect([0, 1023, 1024, 1536, 64 * 1024 ** 2, 3 * 1024 ** 4].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '64.0 MiB', '3.0 TiB']);
  });
});

describe('renderSlackText', () => {
  it('shows what Slack displays as plain text', () => {
    expect(renderSlackText(toSlackMessage(lagAlert, [{ text: 'Dashboard', url: 'https://example.test/d' }]))).toBe(
      [
        '┃ (#E01E5A)',
        '┃ :red_circle: CRIT replica pg-1 (was WARN)',
        '┃ 2 min 11 s / 584.0 MiB behind pg-0',
        '┃   State: CRIT',
        '┃   Was: WARN',
        '┃   Replica: pg-1',
        '┃   Primary: pg-0',
        '┃   Lag seconds: 2 min 11 s',
        '┃   Lag bytes: 584.0 MiB (612368384 B)',
        '┃   Replay paused: no',
        '┃ CRITICAL · cluster prod · lag-monitor · 2026-03-01T10:00:40.000Z · Dashboard (https://example.test/d)',
      ].join('\n'),
    );
  });
});
