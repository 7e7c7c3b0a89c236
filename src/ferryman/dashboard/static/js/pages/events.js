// The audit log: every change, who made it and when, tailed live.

import { api, path } from '../api.js';
import { h, replace } from '../dom.js';
import { datetime, iso } from '../format.js';
import { poll } from '../live.js';
import { pageHead, section, table } from '../ui.js';

const KEEP = 500;

/** key=value pairs, as the CLI prints them: nested keys dotted, lists joined by "/". */
export function detailsText(details, prefix = '') {
  return Object.entries(details ?? {}).map(([k, v]) => {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) return detailsText(v, `${prefix}${k}.`);
    const shown = Array.isArray(v) ? v.join('/') : (v === null || typeof v === 'object' ? '-' : String(v));
    return `${prefix}${k}=${shown}`;
  }).join(', ');
}

export async function render(main, params, ctx) {
  const models = await api.get(path('models'));
  const model = h('select', { name: 'model' }, h('option', { value: '' }, 'all models'), models.map((m) => h('option', { value: m.name }, m.name)));
  const box = h('div', { class: 'card' });
  let events = [];
  let lastId = null;
  const draw = () => replace(box, table([
    { label: '#', num: true, render: (e) => String(e.id) },
    { label: 'When', render: (e) => h('span', { class: 'nowrap', title: iso(e.at) }, datetime(e.at)) },
    { label: 'Action', render: (e) => h('code', e.action) },
    { label: 'On', render: (e) => `${e.object_type} ${e.object_key}` },
    { label: 'By', render: (e) => e.actor },
    { label: 'Details', class: 'details', render: (e) => h('span', { class: 'muted mono' }, detailsText(e.details)) },
  ], [...events].reverse(), { empty: 'Nothing has happened yet.', testid: 'events' }));
  const refresh = async () => {
    const query = { model: model.value, limit: lastId === null ? 200 : 1000, after_id: lastId ?? undefined };
    const found = await api.get(path('events', query));
    if (lastId !== null && !found.length) return;
    events = [...events, ...found].slice(-KEEP);
    lastId = events.length ? events[events.length - 1].id : 0;
    draw();
  };
  model.addEventListener('change', () => { events = []; lastId = null; refreshing.now(); });
  main.append(
    pageHead({ title: 'Events', subtitle: 'The append-only audit log: every change, by whom, and when.' }),
    section('Audit log', { right: model }, box));
  const refreshing = poll(3000, refresh);
  ctx.onLeave(refreshing);
}
