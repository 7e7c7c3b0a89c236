// Small building blocks shared by the pages: badges, tiles, tables, traffic split, dialogs.

import { h, replace } from './dom.js';

export const PALETTE = ['#2563d9', '#e8793a', '#17a398', '#9b59d0', '#d6457a', '#7c9a2d', '#c99a06', '#5b6b7e'];
export const colorAt = (index) => PALETTE[index % PALETTE.length];

/** A variant's colour, the same on every page: "v3" (and "v3-int8") by its version, so
 * consecutive versions never share one; any other name by a hash of it. */
export function colorOf(name) {
  const versioned = /^v(\d+)(.*)$/.exec(name);
  if (versioned) return colorAt(Number(versioned[1]) - 1 + (versioned[2] ? hashOf(versioned[2]) : 0));
  return colorAt(hashOf(name));
}

function hashOf(text) { // FNV-1a: small, stable, spreads short names well
  let hash = 0x811c9dc5;
  for (const char of text) hash = Math.imul(hash ^ char.codePointAt(0), 0x01000193) >>> 0;
  return hash;
}

/** Colours by variant name (see colorOf); kept as an object so pages can pass it around. */
export class Colors {
  of(name) { return colorOf(name); }
  seed() { return this; }
}

/** Colours for things with no stable name to hash well (training runs): first seen, first
 * colour, for the life of a page. */
export class ColorsInOrder {
  constructor() { this.known = new Map(); }
  of(name) {
    if (!this.known.has(name)) this.known.set(name, colorAt(this.known.size));
    return this.known.get(name);
  }
  seed(names) { for (const name of names) this.of(name); return this; }
}

export function badge(text, tone = '', { pulse = false, plain = false, title } = {}) {
  return h('span', { class: ['badge', tone, pulse && 'pulse', plain && 'plain'], title }, text);
}

const ROLLOUT_TONES = {
  progressing: ['info', 'progressing', true],
  paused: ['warn', 'paused', false],
  promoted: ['ok', 'promoted', false],
  rolled_back: ['bad', 'rolled back', false],
  aborted: ['', 'aborted', false],
  completed: ['ok', 'completed', false],
};

export function rolloutBadge(status) {
  const [tone, text, pulse] = ROLLOUT_TONES[status] ?? ['', status, false];
  return badge(text, tone, { pulse });
}

export function rolloutTone(status) {
  return (ROLLOUT_TONES[status] ?? [''])[0];
}

export function levelBadge(level, state = 'firing') {
  if (state === 'resolved') return badge('resolved', 'ok');
  return badge(level, level === 'critical' ? 'bad' : level === 'warning' ? 'warn' : 'info', { pulse: true });
}

export function runBadge(status) {
  const tone = { running: 'info', succeeded: 'ok', failed: 'bad', interrupted: 'warn' }[status] ?? '';
  return badge(status, tone, { pulse: status === 'running' });
}

export function tile(label, value, { unit = '', sub = '', tone = '' } = {}) {
  return h('div', { class: ['card', 'tile', tone] },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value, unit && value !== '—' ? h('span', { class: 'unit' }, unit) : null),
    sub ? h('div', { class: 'sub' }, sub) : null);
}

export function section(title, { hint, right, id } = {}, ...content) {
  return h('section', { class: 'section', id },
    h('div', { class: 'section-head' },
      h('h2', title), hint ? h('span', { class: 'hint' }, hint) : null,
      right ? h('div', { class: 'right' }, right) : null),
    content);
}

export function pageHead({ crumbs = [], title, badges = [], subtitle, actions = [] }) {
  return h('div', { class: 'page-head' },
    h('div', { class: 'titles' },
      crumbs.length ? h('div', { class: 'crumbs' }, crumbs.flatMap((c, i) => [i ? ' / ' : '', c])) : null,
      h('div', { class: 'title-row' }, h('h1', title), badges),
      subtitle ? h('div', { class: 'subtitle' }, subtitle) : null),
    h('div', { class: 'actions' }, actions));
}

export function notice(content, kind = '') {
  return h('div', { class: ['notice', kind] }, content);
}

/** What a page shows where this control plane does not serve a route (yet). */
export function notAvailable(what, route) {
  return notice([h('b', `${what}: not available on this control plane.`), ' It does not serve ',
    h('code', route), ' (an older or partial build).'], 'unavailable');
}

/**
 * A table. columns: [{label, num, render(row) -> node|text, class}]. rows: array.
 * onRow(row, tr) makes rows clickable; detail(row) adds an expandable row below.
 */
export function table(columns, rows, { empty = 'Nothing yet.', onRow, rowClass, testid } = {}) {
  const head = h('tr', columns.map((c) => h('th', { class: c.num ? 'num' : c.class }, c.label)));
  const body = h('tbody');
  if (!rows.length) {
    body.append(h('tr', h('td', { class: 'empty-row', colspan: columns.length }, empty)));
  }
  for (const row of rows) {
    const tr = h('tr', { class: [onRow && 'clickable', rowClass?.(row)] },
      columns.map((c) => h('td', { class: [c.num && 'num', c.class] }, c.render(row))));
    if (onRow) tr.addEventListener('click', (event) => {
      if (event.target.closest('a, button')) return;
      onRow(row, tr);
    });
    body.append(tr);
  }
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data', dataset: testid ? { testid } : {} }, h('thead', head), body));
}

/** The traffic split of an endpoint: one coloured segment per variant, with a legend. */
export function splitBar(variants, colors) {
  const total = variants.reduce((sum, v) => sum + (v.weight ?? 0), 0) || 1;
  const bar = h('div', { class: 'split', role: 'img', 'aria-label': variants.map((v) => `${v.name} ${v.weight}%`).join(', ') },
    variants.filter((v) => v.weight > 0).map((v) => h('span', {
      title: `${v.name}: ${v.weight}%`,
      style: { width: `${(100 * v.weight) / total}%`, background: colors.of(v.name) },
    })));
  const legend = h('div', { class: 'split-legend' }, variants.map((v) => h('span', { dataset: { variant: v.name } },
    h('i', { class: 'swatch', style: { background: colors.of(v.name) } }), `${v.name} `, h('b', `${v.weight}%`))));
  return h('div', { class: 'split-wrap' }, bar, legend);
}

export function weightCell(weight, color) {
  return h('div', { class: 'weight-cell' },
    h('div', { class: 'bar' }, h('span', { style: { width: `${weight}%`, background: color } })),
    h('span', { class: 'num' }, `${weight}%`));
}

export function toast(message, kind = '') {
  const box = document.getElementById('toasts');
  const item = h('div', { class: ['toast', kind], role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * A modal dialog. fields: nodes inside the body. onConfirm() may throw an Error whose message
 * is shown in the dialog; resolves true once confirmed and done, false when cancelled.
 */
export function dialog({ title, message, fields = [], confirmLabel = 'Confirm', tone = 'primary', onConfirm }) {
  return new Promise((resolve) => {
    const error = h('div', { class: 'error hidden', role: 'alert' });
    const confirm = h('button', { class: tone, type: 'submit', dataset: { testid: 'confirm' } }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', { class: 'modal', role: 'dialog', 'aria-modal': 'true', 'aria-label': title },
      h('div', { class: 'body' }, h('h2', title), message ? h('p', message) : null, fields, error),
      h('div', { class: 'foot' }, cancel, confirm));
    const backdrop = h('div', { class: 'backdrop' }, form);
    const close = (result) => { backdrop.remove(); document.removeEventListener('keydown', onKey); resolve(result); };
    const onKey = (event) => { if (event.key === 'Escape') close(false); };
    cancel.addEventListener('click', () => close(false));
    backdrop.addEventListener('click', (event) => { if (event.target === backdrop) close(false); });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        if (onConfirm) await onConfirm();
        close(true);
      } catch (failure) {
        replace(error, failure.message);
        error.classList.remove('hidden');
        confirm.disabled = false;
      }
    });
    document.addEventListener('keydown', onKey);
    document.body.append(backdrop);
    (form.querySelector('input') ?? confirm).focus();
  });
}

/** Segmented buttons; onPick(value). */
export function segmented(options, current, onPick) {
  const box = h('div', { class: 'segmented', role: 'group' });
  const draw = (value) => replace(box, options.map(([v, label]) => h('button', {
    type: 'button', class: v === value ? 'on' : '', 'aria-pressed': String(v === value),
    onclick: () => { draw(v); onPick(v); },
  }, label)));
  draw(current);
  return box;
}
