// A rollout as people follow it: its steps, where it stands and why, the buttons that steer
// it, and its timeline of analysis windows and decisions.

import { api, path } from './api.js';
import { h, replace } from './dom.js';
import { ago, clock, datetime, duration, iso, ms, number, pct, toDate } from './format.js';
import { variantName } from './data.js';
import { badge, dialog, rolloutBadge, toast } from './ui.js';

/** 'v1 → v2' (a record's variants carry model, version and kind; their name is derived). */
export function change(rollout) {
  return `${rollout.baseline.name ?? variantName(rollout.baseline)} → ${rollout.candidate.name ?? variantName(rollout.candidate)}`;
}

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
  undo: { action: 'rollback', label: 'Roll back', when: ['promoted'], tone: 'danger', verb: 'rolled back',
    message: 'Undo this promotion: the baseline serves 100% again and the production alias moves back. Only the endpoint’s newest promotion can be undone.' },
};

/** The buttons that steer a rollout in its current status. onDone() refreshes the page. */
export function rolloutActions(rollout, onDone) {
  return Object.entries(ACTIONS).filter(([, a]) => a.when.includes(rollout.status)).map(([name, a]) =>
    h('button', {
      type: 'button', class: ['small', a.tone], dataset: { action: a.action ?? name },
      onclick: async () => {
        const done = await dialog({
          title: `${a.label} rollout #${rollout.id}?`,
          message: `${rollout.endpoint}: ${change(rollout)}. ${a.message}`,
          confirmLabel: a.label,
          tone: a.tone.includes('danger') ? 'danger solid' : a.tone.includes('good') ? 'primary' : 'primary',
          onConfirm: () => api.post(path('rollouts', rollout.id, a.action ?? name)),
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
  const actions = rolloutActions(rollout, onChange);
  const plan = rollout.plan ?? {};
  const ended = toDate(rollout.finished_at);
  const started = toDate(rollout.created_at);
  return h('div', { class: 'card rollout', dataset: { testid: 'rollout', rollout: rollout.id, status: rollout.status } },
    h('div', { class: 'head' },
      h('span', { class: 'title' }, link ? h('a', { href: `/ui/rollouts/${rollout.id}` }, `Rollout #${rollout.id}`) : `Rollout #${rollout.id}`),
      rolloutBadge(rollout.status),
      h('span', { class: 'muted' }, `${(rollout.strategy ?? 'canary').replace('_', '-')}${rollout.state?.phase && rollout.state.phase !== rollout.strategy ? ` (${rollout.state.phase})` : ''} · `, h('b', change(rollout))),
      actions.length ? h('div', { class: 'actions' }, actions) : null),
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
const FIGURE_LABELS = {
  requests: ['requests', (v) => number(v)],
  success_rate: ['success', (v) => pct(v)],
  p99_ms: ['p99', (v) => `${ms(v)} ms`],
  accuracy: ['accuracy', (v) => pct(v)],
  labelled: ['labelled', (v) => number(v)],
  prediction_drift: ['prediction drift', (v) => number(v, 3)],
  input_drift_psi: ['input PSI', (v) => number(v, 3)],
  p_value: ['p', (v) => number(v, 4)],
  agreement: ['agreement', (v) => pct(v)],
  production_before: ['production was', (v) => `v${v}`],
};
const HIDDEN = new Set(['reason', 'status', 'weight', 'step_index', 'endpoint', 'model', 'rollout', 'rollout_id', 'id', 'actor', 'verdict', 'plan']);
const UNNAMED = new Set(['figures', 'state']); // their figures read well without the group's name
const VERDICT_TONES = { pass: 'ok', fail: 'bad', inconclusive: 'warn' };

function figureText(key, value) {
  const known = FIGURE_LABELS[key];
  const asNumber = typeof value === 'number' ? value : Number(value);
  if (known && value !== '' && Number.isFinite(asNumber)) return [known[0], known[1](asNumber)];
  if (typeof value === 'number') return [key.replaceAll('_', ' '), number(value, 3)];
  if (value && typeof value === 'object') return [key.replaceAll('_', ' '), JSON.stringify(value)];
  return [key.replaceAll('_', ' '), String(value)];
}

/**
 * The figures an event was decided on: the window's (flat), a bake, a pool, a test, a
 * report, each leaf a chip; the plan is left out (the card shows it).
 */
function figures(details) {
  const chips = [];
  const verdict = details?.figures?.verdict ?? details?.verdict;
  if (verdict) chips.push(badge(verdict, VERDICT_TONES[verdict] ?? '', { plain: true }));
  const add = (object, prefix, depth) => {
    for (const [key, value] of Object.entries(object ?? {})) {
      if (HIDDEN.has(key) || value === null || value === undefined || value === '') continue;
      if (typeof value === 'object' && !Array.isArray(value)) {
        if (depth < 3) add(value, UNNAMED.has(key) ? prefix : `${prefix}${key.replaceAll('_', ' ')} `, depth + 1);
        continue;
      }
      const [label, text] = figureText(key, Array.isArray(value) ? value.join(', ') : value);
      chips.push(h('span', { class: 'figure' }, `${prefix}${label} `, h('b', text)));
    }
  };
  add(details, '', 0);
  return chips.slice(0, 20);
}

/** The rollout's events, newest first. */
export function timeline(events) {
  if (!events.length) return h('div', { class: 'muted' }, 'No events yet.');
  const sorted = [...events].sort((a, b) => (b.id ?? 0) - (a.id ?? 0) || toDate(b.at ?? b.time) - toDate(a.at ?? a.time));
  return h('ol', { class: 'timeline', dataset: { testid: 'timeline' } }, sorted.map((event) => {
    const kind = String(event.action ?? '').replace(/^rollout\./, '');
    const [label, tone] = TIMELINE[kind] ?? [kind.replaceAll('_', ' '), ''];
    const details = event.details ?? {};
    const weight = details.weight !== undefined && details.weight !== '' ? ` to ${details.weight}%` : '';
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
