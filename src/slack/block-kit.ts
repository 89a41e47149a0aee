/**
 * Slack Block Kit rendering of a Notification: a coloured attachment (severity), a header with an emoji,
 * the text, the figures as fields, and a context line with cluster, source, time and links.
 */
import { formatBytes, formatSeconds } from '../core/format-units.js';
import type { Notification, Severity } from '../ports/notifier.js';

export interface TextObject {
  readonly type: 'plain_text' | 'mrkdwn';
  readonly text: string;
  readonly emoji?: boolean;
}

export type Block =
  | { readonly type: 'header'; readonly text: TextObject }
  | { readonly type: 'section'; readonly text?: TextObject; readonly fields?: readonly TextObject[] }
  | { readonly type: 'context'; readonly elements: readonly TextObject[] };

export interface SlackMessage {
  /** Notification text (push, screen readers) and fallback. */
  readonly text: string;
  readonly attachments: readonly [{ readonly color: string; readonly blocks: readonly Block[] }];
}

export interface Link {
  readonly text: string;
  readonly url: string;
}

export interface SeverityStyle {
  readonly emoji: string;
  readonly color: string;
  readonly word: string;
}

export const SEVERITY_STYLE: Readonly<Record<Severity, SeverityStyle>> = {
  critical: { emoji: ':red_circle:', color: '#E01E5A', word: 'CRITICAL' },
  warning: { emoji: ':large_orange_circle:', color: '#ECB22E', word: 'WARNING' },
  resolved: { emoji: ':large_green_circle:', color: '#2EB67D', word: 'RESOLVED' },
  info: { emoji: ':large_blue_circle:', color: '#36C5F0', word: 'INFO' },
};

// Slack's limits: header text 150 chars, section text 3000, field 2000, 10 fields per section, 50 blocks.
const HEADER_MAX = 150;
const TEXT_MAX = 3000;
const FIELD_MAX = 2000;
const FIELDS_PER_SECTION = 10;
const MAX_FIELDS = 40;

export function toSlackMessage(n: Notification, links: readonly Link[] = []): SlackMessage {
  const style = SEVERITY_STYLE[n.severity];
  const blocks: Block[] = [{ type: 'header', text: { type: 'plain_text', text: truncate(`${style.emoji} ${n.title}`, HEADER_MAX), emoji: true } }];
  if (n.text) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: truncate(escape(n.text), TEXT_MAX) } });

  const entries = Object.entries(n.fields);
  const shown = entries.length > MAX_FIELDS ? entries.slice(0, MAX_FIELDS - 1) : entries;
  const fields: TextObject[] = shown.map(([key, value]) => ({ type: 'mrkdwn', text: truncate(`*${escape(fieldLabel(key))}*\n${escape(fieldValue(key, value))}`, FIELD_MAX) }));
  if (shown.length < entries.length) fields.push({ type: 'mrkdwn', text: `*…*\n${entries.length - shown.length} more fields not shown` });
  for (let i = 0; i < fields.length; i += FIELDS_PER_SECTION) blocks.push({ type: 'section', fields: fields.slice(i, i + FIELDS_PER_SECTION) });

  const context = [`${style.word}`, `cluster *${escape(n.clusterId)}*`, escape(n.source), escape(n.at), ...links.map((l) => `<${l.url}|${escape(l.text)}>`)];
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: context.join(' · ') }] });
  return {
    text: truncate(`${style.emoji} ${style.word} [${n.clusterId}] ${n.title}`, TEXT_MAX),
    attachments: [{ color: style.color, blocks }],
  };
}

/** 'lagSeconds' -> 'Lag seconds'; keys that already read as text are kept. */
export function fieldLabel(key: string): string {
  if (/\s/.test(key)) return key;
  const words = key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Figures by naming convention: *Bytes as binary units, *Seconds as durations, booleans as yes/no. */
export function fieldValue(key: string, value: string | number | boolean | null): string {
  if (value === null) return '—';
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'number' && /Bytes$/.test(key)) return Math.abs(value) < 1024 ? formatBytes(value) : `${formatBytes(value)} (${value} B)`;
  if (typeof value === 'number' && /Seconds$/.test(key)) return formatSeconds(value);
  return String(value);
}

/** A plain-text rendering of what Slack shows (docs, logs, tests). */
export function renderSlackText(message: SlackMessage): string {
  const attachment = message.attachments[0];
  const lines = [`┃ (${attachment.color})`];
  for (const block of attachment.blocks) {
    if (block.type === 'header') lines.push(`┃ ${block.text.text}`);
    else if (block.type === 'section') {
      if (block.text) lines.push(...block.text.text.split('\n').map((l) => `┃ ${unmrkdwn(l)}`));
      if (block.fields) lines.push(...block.fields.map((f) => `┃   ${unmrkdwn(f.text).replace('\n', ': ')}`));
    } else lines.push(`┃ ${block.elements.map((e) => unmrkdwn(e.text)).join(' ')}`);
  }
  return lines.join('\n');
}

function unmrkdwn(text: string): string {
  return text
    .replace(/<([^|>]+)\|([^>]+)>/g, '$2 ($1)')
    .replace(/\*([^*\n]+)\*/g, '$1')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/** Slack mrkdwn control characters. */
export function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
