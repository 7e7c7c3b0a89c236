// Every rollout (newest first), and one rollout with its timeline.

import { api, path } from '../api.js';
import { capabilities } from '../data.js';
import { h, replace } from '../dom.js';
import { ago, iso } from '../format.js';
import { poll } from '../live.js';
import { change, rolloutCard, timeline } from '../rollout.js';
import { notAvailable, pageHead, rolloutBadge, section, segmented, table } from '../ui.js';

function listTable(rollouts) {
  return table([
    { label: '#', render: (r) => h('a', { href: `/ui/rollouts/${r.id}` }, `#${r.id}`) },
    { label: 'Endpoint', render: (r) => h('a', { href: `/ui/endpoints/${encodeURIComponent(r.endpoint)}` }, r.endpoint) },
    { label: 'Strategy', render: (r) => r.strategy },
    { label: 'Change', render: (r) => change(r) },
    { label: 'Status', render: (r) => rolloutBadge(r.status) },
    { label: 'Weight', num: true, render: (r) => `${r.weight}%` },
    { label: 'Failed', num: true, render: (r) => String(r.failed_checks) },
    { label: 'Why', render: (r) => h('span', { class: 'muted' }, r.reason) },
    { label: 'Started', render: (r) => h('span', { class: 'nowrap', title: iso(r.created_at) }, ago(r.created_at)) },
  ], rollouts, { empty: 'No rollouts yet.', testid: 'rollouts' });
}

async function renderList(main, ctx) {
  let activeOnly = false;
  const box = h('div', { class: 'card' });
  main.append(
    pageHead({ title: 'Rollouts', subtitle: 'Moves from one version to the next, stepped by their gates.' }),
    section('Rollouts', { right: segmented([[false, 'All'], [true, 'In progress']], activeOnly, (v) => { activeOnly = v; refreshing.now(); }) }, box));
  const refresh = async () => {
    const rollouts = await api.get(path('rollouts', { active_only: activeOnly }));
    replace(box, listTable([...rollouts].reverse()));
  };
  const refreshing = poll(3000, refresh);
  ctx.onLeave(refreshing);
}

async function renderOne(main, id, ctx) {
  const head = h('div');
  const card = h('div');
  const events = h('div', { class: 'card pad' });
  main.append(head, card, section('Timeline', { hint: 'every analysis window and decision, newest first' }, events));
  const refresh = async () => {
    const [rollout, list] = await Promise.all([api.get(path('rollouts', id)), api.get(path('rollouts', id, 'events'))]);
    replace(head, pageHead({
      crumbs: [h('a', { href: '/ui/rollouts' }, 'Rollouts'), h('a', { href: `/ui/endpoints/${encodeURIComponent(rollout.endpoint)}` }, rollout.endpoint)],
      title: `Rollout #${rollout.id}`, badges: [rolloutBadge(rollout.status)],
      subtitle: `${rollout.model}: ${change(rollout)}, ${rollout.strategy.replace('_', '-')}`,
    }));
    replace(card, rolloutCard(rollout, { onChange: () => refreshing.now(), link: false }));
    replace(events, timeline(list));
  };
  const refreshing = poll(2000, refresh);
  ctx.onLeave(refreshing);
}

export async function render(main, params, ctx) {
  const caps = await capabilities();
  if (!caps.rollouts) {
    main.append(pageHead({ title: 'Rollouts' }), notAvailable('Rollouts', 'GET /api/v1/rollouts'));
    return;
  }
  if (params.length) await renderOne(main, params[0], ctx);
  else await renderList(main, ctx);
}
