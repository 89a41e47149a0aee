import { describe, expect, it } from 'vitest';
import { emptyAlertState, heldUntil, planAlerts, recordDelivery, type AlertState, type Observation } from '../../src/core/alert-policy.js';
import { alertNotification } from '../../src/core/alert-notification.js';
import type { HealthLevel } from '../../src/core/health-level.js';

const config = { reminderIntervalMs: 30 * 60_000, minMessageIntervalMs: 1000 };
const T0 = Date.parse('2026-03-01T10:00:00.000Z');

function obs(subject: string, level: HealthLevel, summary = `${subject} is ${level}`): Observation {
  return { subject, label: subject.replace(':', ' '), level, summary, figures: { lagSeconds: level === 'OK' ? 0 : 42 } };
}

/** Plans and immediately delivers whatever is due (success), like the monitor does. */
function step(state: AlertState, observations: Observation[], now: number, ok = true) {
  const plan = planAlerts(state, observations, now, config);
  return { plan, state: plan.due.length > 0 ? recordDelivery(plan.state, plan.due, now, ok) : plan.state };
}

describe('planAlerts', () => {
  it('says nothing while everything is OK', () => {
    const { plan } = step(emptyAlertState(), [obs('replica:pg-1', 'OK'), obs('cluster', 'OK')], T0);
    expect(plan.due).toEqual([]);
    expect(plan.nextSendAt).toBeNull();
  });

  it('alerts on a transition, escalation and resolution, once each', () => {
    let s = emptyAlertState();
    const kinds: string[] = [];
    const seq: [HealthLevel, number][] = [
      ['WARN', 0],
      ['WARN', 10_000],
      ['CRIT', 20_000],
      ['CRIT', 30_000],
      ['OK', 40_000],
      ['OK', 50_000],
    ];
    for (const [level, dt] of seq) {
      const r = step(s, [obs('replica:pg-1', level)], T0 + dt);
      s = r.state;
      kinds.push(r.plan.due.map((e) => `${e.kind}:${e.previous}->${e.level}`).join(',') || '-');
    }
    expect(kinds).toEqual(['raised:OK->WARN', '-', 'escalated:WARN->CRIT', '-', 'resolved:CRIT->OK', '-']);
    expect(s.subjects).toEqual({});
  });

  it('reports a move between two serious states as a change, and UNREACHABLE -> WARN as a change down', () => {
    let s = step(emptyAlertState(), [obs('replica:pg-1', 'CRIT')], T0).state;
    const r1 = step(s, [obs('replica:pg-1', 'UNREACHABLE')], T0 + 5000);
    expect(r1.plan.due.map((e) => e.kind)).toEqual(['changed']);
    s = r1.state;
    const r2 = step(s, [obs('replica:pg-1', 'WARN')], T0 + 10_000);
    expect(r2.plan.due.map((e) => [e.kind, e.previous, e.level])).toEqual([['changed', 'UNREACHABLE', 'WARN']]);
  });

  it('reminds every R minutes while not OK, measured from the last message about that subject', () => {
    let s = step(emptyAlertState(), [obs('replica:pg-1', 'CRIT')], T0).state;
    const at = (minutes: number) => T0 + minutes * 60_000;
    const reminders: number[] = [];
    for (let minute = 1; minute <= 95; minute += 1) {
      const r = step(s, [obs('replica:pg-1', 'CRIT')], at(minute));
      s = r.state;
      if (r.plan.due.length > 0) {
        expect(r.plan.due).toMatchObject([{ kind: 'reminder', level: 'CRIT', previous: 'CRIT', episodeStart: T0 }]);
        reminders.push(minute);
      }
    }
    expect(reminders).toEqual([30, 60, 90]);
  });

  it('sends no reminder for OK subjects and forgets a subject once resolved', () => {
    let s = step(emptyAlertState(), [obs('replica:pg-1', 'WARN')], T0).state;
    s = step(s, [obs('replica:pg-1', 'OK')], T0 + 1000).state;
    const r = step(s, [obs('replica:pg-1', 'OK')], T0 + 3_600_000);
    expect(r.plan.due).toEqual([]);
  });

  it('sends at most one message per second per channel and coalesces a burst into the next message', () => {
    let s = emptyAlertState();
    const first = step(s, [obs('replica:pg-1', 'WARN')], T0);
    expect(first.plan.due).toHaveLength(1);
    s = first.state;

    // 300 ms later two more subjects change: held, not dropped.
    const second = planAlerts(s, [obs('replica:pg-1', 'WARN'), obs('replica:pg-2', 'CRIT'), obs('worker:i-1', 'WARN')], T0 + 300, config);
    expect(second.due).toEqual([]);
    expect(second.nextSendAt).toBe(T0 + 1000);
    s = second.state;
    expect(heldUntil(s, config)).toBe(T0 + 1000);

    // 600 ms later pg-2 gets worse again and pg-1 recovers: still held, merged per subject.
    const third = planAlerts(s, [obs('replica:pg-1', 'OK'), obs('replica:pg-2', 'UNREACHABLE'), obs('worker:i-1', 'WARN')], T0 + 900, config);
    expect(third.due).toEqual([]);
    s = third.state;

    // At T0 + 1 s everything held goes out as one message, one entry per subject.
    const fourth = planAlerts(s, [], T0 + 1000, config);
    expect(fourth.due.map((e) => [e.subject, e.kind, e.previous, e.level, e.peak])).toEqual([
      ['replica:pg-2', 'raised', 'OK', 'UNREACHABLE', 'UNREACHABLE'],
      ['worker:i-1', 'raised', 'OK', 'WARN', 'WARN'],
      ['replica:pg-1', 'resolved', 'WARN', 'OK', 'WARN'],
    ]);
    s = recordDelivery(fourth.state, fourth.due, T0 + 1000, true);
    expect(s.pending).toEqual([]);
    expect(s.lastSentAt).toBe(T0 + 1000);
    expect(planAlerts(s, [], T0 + 1500, config).due).toEqual([]);
  });

  it('keeps the worst state of a subject that went up and down while held', () => {
    let s = step(emptyAlertState(), [obs('cluster', 'WARN')], T0).state;
    s = planAlerts(s, [obs('replica:pg-1', 'CRIT')], T0 + 100, config).state;
    s = planAlerts(s, [obs('replica:pg-1', 'OK')], T0 + 200, config).state;
    const plan = planAlerts(s, [], T0 + 1000, config);
    expect(plan.due).toMatchObject([{ subject: 'replica:pg-1', kind: 'resolved', previous: 'OK', level: 'OK', peak: 'CRIT' }]);
    expect(alertNotification('prod', plan.due, '2026-03-01T10:00:01.000Z').title).toBe('RESOLVED replica pg-1 (peak CRIT)');
  });

  it('keeps undelivered events queued and sends them with the next message', () => {
    let s = emptyAlertState();
    const failed = step(s, [obs('replica:pg-1', 'CRIT')], T0, false);
    expect(failed.plan.due).toHaveLength(1);
    s = failed.state;
    expect(s.pending).toHaveLength(1);
    expect(s.lastSentAt).toBeNull();
    // Next sample: the state did not change, but the event is still due, together with a new one.
    const retry = step(s, [obs('replica:pg-1', 'CRIT'), obs('replica:pg-2', 'WARN')], T0 + 10_000);
    expect(retry.plan.due.map((e) => [e.subject, e.kind])).toEqual([
      ['replica:pg-1', 'raised'],
      ['replica:pg-2', 'raised'],
    ]);
    expect(retry.state.pending).toEqual([]);
  });

  it('resolves retired subjects that were not OK and ignores retired OK ones', () => {
    let s = step(emptyAlertState(), [obs('worker:i-1', 'CRIT')], T0).state;
    const plan = planAlerts(s, [], T0 + 60_000, config, ['worker:i-1', 'worker:i-2']);
    expect(plan.due).toMatchObject([{ subject: 'worker:i-1', label: 'worker i-1', kind: 'resolved', previous: 'CRIT', level: 'OK', summary: 'no longer reported: stopped monitoring it' }]);
    s = recordDelivery(plan.state, plan.due, T0 + 60_000, true);
    expect(s.subjects).toEqual({});
  });
});

describe('alertNotification', () => {
  const at = '2026-03-01T10:00:00.000Z';

  it('renders one event with the figures as fields and the state change in the title', () => {
    let s = step(emptyAlertState(), [obs('replica:pg-1', 'WARN')], T0).state;
    const plan = planAlerts(s, [{ ...obs('replica:pg-1', 'CRIT', '130 s / 1.0 GiB behind pg-0'), figures: { replica: 'pg-1', lagSeconds: 130, lagBytes: 1073741824 } }], T0 + 5000, config);
    s = plan.state;
    expect(alertNotification('prod', plan.due, at)).toEqual({
      source: 'lag-monitor',
      severity: 'critical',
      clusterId: 'prod',
      title: 'CRIT replica pg-1 (was WARN)',
      fields: { state: 'CRIT', was: 'WARN', replica: 'pg-1', lagSeconds: 130, lagBytes: 1073741824 },
      text: '130 s / 1.0 GiB behind pg-0',
      at,
    });
  });

  it('titles a reminder with how long the state has lasted', () => {
    let s = step(emptyAlertState(), [obs('replica:pg-1', 'CRIT')], T0).state;
    const plan = planAlerts(s, [obs('replica:pg-1', 'CRIT')], T0 + 31 * 60_000, config);
    expect(alertNotification('prod', plan.due, new Date(T0 + 31 * 60_000).toISOString())).toMatchObject({
      severity: 'critical',
      title: 'Still CRIT: replica pg-1 for 31 min',
    });
  });

  it('renders a coalesced message with one field per subject and the worst severity', () => {
    const s = step(emptyAlertState(), [obs('replica:pg-1', 'CRIT')], T0).state;
    const plan = planAlerts(s, [obs('replica:pg-1', 'OK', 'caught up'), obs('worker:i-1', 'WARN', '12000 rows waiting')], T0 + 2000, config);
    expect(alertNotification('prod', plan.due, at)).toEqual({
      source: 'lag-monitor',
      severity: 'warning',
      clusterId: 'prod',
      title: '2 changes on cluster prod: RESOLVED replica pg-1, WARN worker i-1',
      fields: { 'replica pg-1': 'RESOLVED (was CRIT): caught up', 'worker i-1': 'WARN (was OK): 12000 rows waiting' },
      at,
    });
  });

  it('is resolved severity when everything in it resolved', () => {
    const s = step(emptyAlertState(), [obs('replica:pg-1', 'WARN')], T0).state;
    const plan = planAlerts(s, [obs('replica:pg-1', 'OK')], T0 + 2000, config);
    expect(alertNotification('prod', plan.due, at).severity).toBe('resolved');
    expect(() => alertNotification('prod', [], at)).toThrow('no events');
  });
});
