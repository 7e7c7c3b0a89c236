// A rollout as people follow it: its steps, where it stands and why, the buttons that steer
// it, and its timeline of analysis windows and decisions.

import { api, path } from './api.js';
import { h, replace } from './dom.js';
import { ago, clock, datetime, duration, iso, ms, number, pct, toDate } from './format.js';
import { badge, dialog, rolloutBadge, toast } from './ui.js';

const ACTIONS = {
  pause: { label: 'Pause', when: ['progressing'], tone: '', verb: 'paused',
    message: 'Hold the rollout at its current weight. Traffic stays split as it is until you resume it.' },
  resume: { label: 'Resume', when: ['paused'], tone: 'primary', verb: 'resumed',
    message: 'Let the rollout go on; its next analysis window starts now.' },
  promote: { label: 'Promote', when: ['progressing', 'paused'], tone: 'good', verb: 'promoted',
    message: 'Skip the remaining steps: send all traffic to the candidate now and make it production.' },
  abort: { label: 'Abort', when: ['progressing', 'paused'], tone: 'danger', verb: 'aborted',
    message: 'Stop the rollout: traffic returns to the baseline and the rollout ends as aborted.' },
  rollback: { label: 'Roll back', when: ['progressing', 'paused'], tone: 'danger solid', verb: 'rolled back',
    message: 'Send all traffic back to the baseline now and end the rollout as rolled back.' },
};

/** The buttons that steer a rollout in its current status. onDone() refreshes the page. */
export function rolloutActions(rollout, onDone) {
  return Object.entries(ACTIONS).filter(([, a]) => a.when.includes(rollout.status)).map(([name, a]) =>
    h('button', {
      type: 'button', class: ['small', a.tone], dataset: { action: name },
      onclick: async () => {
        const done = await dialog({
          title: `${a.label} rollout #${rollout.id}?`,
          message: `${rollout.endpoint}: ${rollout.baseline.name} → ${rollout.candidate.name}. ${a.message}`,
          confirmLabel: a.label,
          tone: a.tone.includes('danger') ? 'danger solid' : a.tone.includes('good') ? 'primary' : 'primary',
          onConfirm: () => api.post(path('rollouts', rollout.id, name)),
        });
        if (done) {
          toast(`Rollout #${rollout.id} ${a.verb}.`);
          onDone?.();
        }
      },
    }, a.label));
}

function stepsBar(rollout) {
  const steps = Array.isArray(rollout.plan?.steps) ? rollout.plan.steps : null;
  if (!steps) return null;
  const finished = rollout.status === 'promoted';
  const current = Math.min(rollout.step_index ?? 0, steps.length - 1);
  const items = [];
  steps.forEach((weight, index) => {
    const done = finished || index < current;
    const isCurrent = !finished && index === current;
    if (index) items.push(h('div', { class: ['link', done || isCurrent ? 'done' : ''] }));
    const tone = rollout.status === 'rolled_back' || rollout.status === 'aborted' ? 'bad' : rollout.status === 'paused' ? 'paused' : '';
    items.push(h('div', { class: ['step', done && 'done', isCurrent && 'current', isCurrent && tone], dataset: { step: index } },
      h('div', { class: 'circle' }, done ? '✓' : String(index + 1)),
      h('div', { class: 'caption' }, `${weight}%`)));
  });
  return h('div', { class: 'steps', 'aria-label': `step ${current + 1} of ${steps.length}` }, items);
}

function fact(label, value, title) {
  return h('div', { title }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
}

function gatesText(plan) {
  const gates = plan?.gates ?? {};
  const parts = [];
  if (gates.min_success_rate !== undefined) parts.push(`success ≥ ${pct(gates.min_success_rate)}`);
  if (gates.max_p99_ms !== undefined) parts.push(`p99 ≤ ${ms(gates.max_p99_ms)} ms`);
  if (gates.min_accuracy != null) parts.push(`accuracy ≥ ${pct(gates.min_accuracy)}`);
  if (gates.max_accuracy_drop != null) parts.push(`accuracy drop ≤ ${pct(gates.max_accuracy_drop)}`);
  if (gates.max_prediction_drift != null) parts.push(`prediction drift ≤ ${gates.max_prediction_drift}`);
  if (gates.max_input_drift_psi != null) parts.push(`input PSI ≤ ${gates.max_input_drift_psi}`);
  return parts.join(' · ') || '—';
}

/** The rollout's card: badge, steps, facts, reason, and (when live) its action buttons. */
export function rolloutCard(rollout, { onChange, link = true } = {}) {
  const active = rollout.status === 'progressing' || rollout.status === 'paused';
  const plan = rollout.plan ?? {};
  const ended = toDate(rollout.finished_at);
  const started = toDate(rollout.created_at);
  return h('div', { class: 'card rollout', dataset: { testid: 'rollout', rollout: rollout.id, status: rollout.status } },
    h('div', { class: 'head' },
      h('span', { class: 'title' }, link ? h('a', { href: `/ui/rollouts/${rollout.id}` }, `Rollout #${rollout.id}`) : `Rollout #${rollout.id}`),
      rolloutBadge(rollout.status),
      h('span', { class: 'muted' }, `${rollout.strategy ?? 'canary'} · ${rollout.baseline.name} → `, h('b', rollout.candidate.name)),
      active ? h('div', { class: 'actions' }, rolloutActions(rollout, onChange)) : null),
    stepsBar(rollout),
    h('div', { class: 'facts' },
      fact('Candidate weight', h('span', { dataset: { testid: 'rollout-weight' } }, `${rollout.weight}%`)),
      fact('Failed checks', `${rollout.failed_checks} of ${plan.threshold ?? '—'}`),
      fact('Window', plan.interval_s ? `${number(plan.interval_s)} s` : '—'),
      fact('Started', ago(rollout.created_at), iso(rollout.created_at)),
      fact(ended ? 'Took' : 'Running for', duration(((ended ?? new Date()) - started) / 1000)),
      fact('Gates', gatesText(plan))),
    rollout.reason ? h('div', { class: 'reason', dataset: { testid: 'rollout-reason' } }, rollout.reason) : null);
}

const TIMELINE = {
  created: ['Created', 'info'],
  step: ['Stepped', 'info'],
  held: ['Held', 'warn'],
  hold: ['Held', 'warn'],
  checked: ['Analysed', ''],
  analysis: ['Analysed', ''],
  failed_check: ['Check failed', 'bad'],
  paused: ['Paused', 'warn'],
  resumed: ['Resumed', 'info'],
  promoted: ['Promoted', 'ok'],
  rolled_back: ['Rolled back', 'bad'],
  aborted: ['Aborted', 'bad'],
};
const SKIPPED = new Set(['reason', 'status', 'endpoint', 'model', 'rollout', 'rollout_id', 'id', 'actor']);

function figureText(key, value) {
  if (typeof value === 'number') {
    if (/rate|accuracy|share|ratio/.test(key) && value <= 1) return pct(value);
    if (/_ms$/.test(key)) return `${ms(value)} ms`;
    return number(value, 3);
  }
  const asNumber = Number(value);
  if (value !== '' && Number.isFinite(asNumber)) return figureText(key, asNumber);
  return String(value);
}

function figures(details) {
  const flat = [];
  const walk = (object, prefix, depth) => {
    for (const [key, value] of Object.entries(object ?? {})) {
      if (SKIPPED.has(key) && !prefix) continue;
      if (value && typeof value === 'object' && !Array.isArray(value) && depth < 2) walk(value, `${prefix}${key}.`, depth + 1);
      else if (value !== null && value !== undefined && value !== '') flat.push([`${prefix}${key}`, Array.isArray(value) ? value.join(', ') : value]);
    }
  };
  walk(details, '', 0);
  const failed = new Set(Array.isArray(details?.failed) ? details.failed : []);
  return flat.slice(0, 16).map(([key, value]) => h('span', {
    class: ['figure', failed.has(key.split('.').pop()) || (/failed/.test(key) && Number(value) > 0) ? 'bad' : ''],
  }, `${key.replaceAll('_', ' ')} `, h('b', figureText(key.split('.').pop(), value))));
}

/** The rollout's events, newest first. */
export function timeline(events) {
  if (!events.length) return h('div', { class: 'muted' }, 'No events yet.');
  const sorted = [...events].sort((a, b) => (b.id ?? 0) - (a.id ?? 0) || toDate(b.at ?? b.time) - toDate(a.at ?? a.time));
  return h('ol', { class: 'timeline', dataset: { testid: 'timeline' } }, sorted.map((event) => {
    const kind = String(event.action ?? '').replace(/^rollout\./, '');
    const [label, tone] = TIMELINE[kind] ?? [kind.replaceAll('_', ' '), ''];
    const details = event.details ?? {};
    const weight = details.weight !== undefined ? ` to ${details.weight}%` : '';
    const when = event.at ?? event.time;
    return h('li', { dataset: { action: kind } },
      h('div', { class: 'when', title: iso(when) }, clock(when), h('div', { class: 'faint' }, datetime(when).slice(5, 10))),
      h('div', { class: 'rail' }, h('i', { class: tone })),
      h('div', { class: 'what' },
        h('span', { class: 'action' }, kind === 'step' ? `${label}${weight}` : label),
        event.actor ? h('span', { class: 'actor' }, `by ${event.actor}`) : null,
        details.reason ? h('div', { class: 'why' }, details.reason) : null,
        h('div', { class: 'figures' }, figures(details))));
  }));
}

/** Load a rollout's events into box (replacing what is there). */
export async function loadTimeline(box, rolloutId) {
  const events = await api.get(path('rollouts', rolloutId, 'events'));
  replace(box, timeline(events ?? []));
  return events ?? [];
}

export { badge };
