// Every rollout (newest first), and one rollout with its timeline.

import { api, path } from '../api.js';
import { capabilities, history, variantName } from '../data.js';
import { h, replace } from '../dom.js';
import { ago, iso, toDate } from '../format.js';
import { poll } from '../live.js';
import { ChartGrid, LIVE_CHARTS, rolloutGates, rolloutMarkers } from '../metrics.js';
import { change, rolloutCard, timeline } from '../rollout.js';
import { Colors, notAvailable, notice, pageHead, rolloutBadge, section, segmented, table } from '../ui.js';

const ROLLOUT_CHARTS = ['qps', 'p99_ms', 'error_rate', 'weight'];
const MARGIN_S = 30;
const MOST_HISTORY_S = 24 * 3600; // the monitor's default retention

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

/** The endpoint's series over the rollout's life (from a little before it, to its end). */
async function drawCharts(grid, box, rollout, events, colors) {
  const now = Date.now() / 1000;
  const start = toDate(rollout.created_at).getTime() / 1000 - MARGIN_S;
  const end = rollout.finished_at ? Math.min(now, toDate(rollout.finished_at).getTime() / 1000 + MARGIN_S) : now;
  if (now - start > MOST_HISTORY_S) {
    replace(box, notice('This rollout is older than the metric history the monitor keeps.'));
    return;
  }
  const byName = await history(rollout.endpoint, Math.ceil(now - start), [...ROLLOUT_CHARTS, 'p50_ms']);
  colors.seed([rollout.baseline, rollout.candidate].map((v) => v.name ?? variantName(v)));
  grid.draw(byName, [start, end], colors, { markers: rolloutMarkers(events), gates: rolloutGates(rollout) });
}

async function renderOne(main, id, ctx, caps) {
  const head = h('div');
  const card = h('div');
  const events = h('div', { class: 'card pad' });
  const grid = new ChartGrid(LIVE_CHARTS.filter((spec) => ROLLOUT_CHARTS.includes(spec.key)));
  const chartsBox = h('div', {}, caps.history ? grid.el : notAvailable('Charts', 'GET /api/v1/endpoints/{e}/history'));
  const colors = new Colors();
  ctx.onLeave(() => grid.destroy());
  grid.el.classList.add('pairs');
  main.append(head, card,
    section('The endpoint during the rollout', { hint: 'baseline and candidate; a marker at each step' }, chartsBox),
    section('Timeline', { hint: 'every analysis window and decision, newest first' }, events));
  const refresh = async () => {
    const [rollout, list] = await Promise.all([api.get(path('rollouts', id)), api.get(path('rollouts', id, 'events'))]);
    replace(head, pageHead({
      crumbs: [h('a', { href: '/ui/rollouts' }, 'Rollouts'), h('a', { href: `/ui/endpoints/${encodeURIComponent(rollout.endpoint)}` }, rollout.endpoint)],
      title: `Rollout #${rollout.id}`, badges: [rolloutBadge(rollout.status)],
      subtitle: `${rollout.model}: ${change(rollout)}, ${rollout.strategy.replace('_', '-')}`,
    }));
    replace(card, rolloutCard(rollout, { onChange: () => refreshing.now(), link: false }));
    replace(events, timeline(list));
    if (caps.history) await drawCharts(grid, chartsBox, rollout, list, colors);
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
  if (params.length) await renderOne(main, params[0], ctx, caps);
  else await renderList(main, ctx);
}
