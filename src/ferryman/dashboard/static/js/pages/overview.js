// Overview: every endpoint with its traffic split, load, latency, errors, replicas and live
// charts; alerts firing and rollouts in progress above them; models and recent activity below.

import { api, path } from '../api.js';
import { Chart } from '../chart.js';
import { capabilities, endpointsNow, history, timeDomain, totals } from '../data.js';
import { h, replace } from '../dom.js';
import { ago, iso, ms, pct, qps } from '../format.js';
import { poll } from '../live.js';
import { change } from '../rollout.js';
import { Colors, badge, levelBadge, notice, pageHead, rolloutBadge, section, splitBar, table, tile } from '../ui.js';

const WINDOW_S = 900;

function stat(label, value, unit, tone) {
  return h('div', { class: ['stat', tone] }, h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value, unit && value !== '—' ? h('span', { class: 'unit' }, unit) : null));
}

class EndpointCard {
  constructor(name, caps) {
    this.name = name;
    this.caps = caps;
    this.colors = new Colors();
    this.badges = h('div', { class: 'right' });
    this.split = h('div');
    this.stats = h('div', { class: 'stats' });
    this.qpsChart = new Chart({ title: 'Requests', unit: 'req/s', format: qps, height: 130, bare: true, testid: 'qps-chart' });
    this.p99Chart = new Chart({ title: 'p99 latency', unit: 'ms', format: ms, height: 130, bare: true, testid: 'p99-chart' });
    this.charts = caps.history
      ? h('div', { class: 'charts' }, this.qpsChart.el, this.p99Chart.el)
      : h('div', { class: 'faint' }, 'Live charts need the monitor’s history (GET /api/v1/endpoints/{e}/history), not served here.');
    this.el = h('div', { class: 'card endpoint-card', dataset: { endpoint: name, testid: 'endpoint-card' } },
      h('div', { class: 'head' }, h('a', { class: 'name', href: `/ui/endpoints/${encodeURIComponent(name)}` }, name), this.badges),
      this.split, this.stats, this.charts);
  }

  update(endpoint, rollout) {
    this.colors.seed(endpoint.variants.map((v) => v.name));
    const t = totals(endpoint.variants);
    replace(this.badges,
      rollout ? h('a', { href: `/ui/rollouts/${rollout.id}` }, rolloutBadge(rollout.status)) : null,
      endpoint.alerts_firing ? badge(`${endpoint.alerts_firing} alert${endpoint.alerts_firing > 1 ? 's' : ''}`, 'bad', { pulse: true }) : null,
      endpoint.variants.length > 1 ? null : badge(endpoint.variants[0]?.name ?? '', '', { plain: true }));
    replace(this.split, splitBar(endpoint.variants, this.colors));
    replace(this.stats,
      stat('Requests', qps(t.qps), '/s'),
      stat('p99', ms(t.p99), 'ms'),
      stat('Errors', pct(t.errors), '', t.errors > 0.01 ? 'bad' : ''),
      stat('Replicas', t.ready === null ? `${t.desired}` : `${t.ready} / ${t.desired}`, t.ready === null ? 'desired' : 'ready'));
  }

  async updateCharts() {
    if (!this.caps.history) return;
    const series = await history(this.name, WINDOW_S, ['qps', 'p99_ms']);
    const domain = timeDomain(series, WINDOW_S);
    const lines = (name) => (series[name] ?? []).map((one) => ({ label: one.variant, color: this.colors.of(one.variant), points: one.points }));
    this.qpsChart.set({ series: lines('qps'), domain });
    this.p99Chart.set({ series: lines('p99_ms'), domain });
  }

  destroy() {
    this.qpsChart.destroy();
    this.p99Chart.destroy();
  }
}

function alertsBanner(alerts) {
  if (!alerts.length) return null;
  return h('div', { class: 'notice alert-firing section', dataset: { testid: 'alerts-firing' } },
    h('b', `${alerts.length} alert${alerts.length > 1 ? 's' : ''} firing`),
    table([
      { label: 'Level', render: (a) => levelBadge(a.level) },
      { label: 'Endpoint', render: (a) => h('a', { href: `/ui/endpoints/${encodeURIComponent(a.endpoint)}` }, a.endpoint) },
      { label: 'Variant', render: (a) => a.variant ?? '—' },
      { label: 'Rule', render: (a) => a.rule },
      { label: 'Message', render: (a) => a.message },
      { label: 'Since', render: (a) => h('span', { title: iso(a.started_at) }, ago(a.started_at)) },
    ], alerts));
}

function rolloutsStrip(rollouts) {
  if (!rollouts.length) return null;
  return section('Rollouts in progress', {}, h('div', { class: 'card' }, table([
    { label: '#', render: (r) => h('a', { href: `/ui/rollouts/${r.id}` }, `#${r.id}`) },
    { label: 'Endpoint', render: (r) => h('a', { href: `/ui/endpoints/${encodeURIComponent(r.endpoint)}` }, r.endpoint) },
    { label: 'Change', render: (r) => change(r) },
    { label: 'Status', render: (r) => rolloutBadge(r.status) },
    { label: 'Weight', num: true, render: (r) => `${r.weight}%` },
    { label: 'Why', render: (r) => h('span', { class: 'muted' }, r.reason) },
    { label: 'Updated', render: (r) => h('span', { title: iso(r.updated_at) }, ago(r.updated_at)) },
  ], rollouts, { testid: 'active-rollouts' })));
}

export async function render(main, params, ctx) {
  const caps = await capabilities();
  const tiles = h('div', { class: 'grid tiles' });
  const alertsBox = h('div');
  const rolloutsBox = h('div');
  const cards = h('div', { class: 'grid endpoints' });
  const empty = h('div');
  const models = h('div', { class: 'card' });
  const activity = h('div', { class: 'card' });
  main.append(
    pageHead({ title: 'Overview', subtitle: 'Every endpoint: traffic split, load, latency, errors and replicas, updated every 2 s.' }),
    tiles, alertsBox, rolloutsBox,
    section('Endpoints', { hint: caps.endpoints ? 'last 15 min' : 'desired state (no live figures on this control plane)' }, empty, cards),
    h('div', { class: 'grid two' }, section('Models', {}, models), section('Recent activity', { right: h('a', { href: '/ui/events' }, 'All events') }, activity)));

  const shown = new Map();
  ctx.onLeave(() => shown.forEach((card) => card.destroy()));
  const refresh = async () => {
    const [endpoints, alerts, rollouts] = await Promise.all([
      endpointsNow(caps),
      caps.alerts ? api.get(path('alerts', { state: 'firing' })) : Promise.resolve(null),
      caps.rollouts ? api.get(path('rollouts', { active_only: true })) : Promise.resolve(null),
    ]);
    const active = (rollouts ?? []).filter((r) => r.status === 'progressing' || r.status === 'paused');
    const all = endpoints.flatMap((e) => e.variants);
    const t = totals(all);
    replace(tiles,
      tile('Endpoints', String(endpoints.length), { sub: `${all.length} variant${all.length === 1 ? '' : 's'}` }),
      tile('Requests', qps(t.qps), { unit: '/s', sub: 'all endpoints' }),
      tile('Errors', pct(t.errors), { tone: t.errors > 0.01 ? 'bad' : '', sub: 'share of requests' }),
      tile('Rollouts', rollouts ? String(active.length) : '—', { sub: rollouts ? 'in progress' : 'not available here', tone: active.length ? 'warn' : '' }),
      tile('Alerts', alerts ? String(alerts.length) : '—', { sub: alerts ? 'firing' : 'not available here', tone: alerts?.length ? 'bad' : '' }));
    replace(alertsBox, alertsBanner(alerts ?? []));
    replace(rolloutsBox, rolloutsStrip(active));
    replace(empty, endpoints.length ? null : notice(['No endpoints yet. Deploy one: ', h('code', 'ferryman deploy MODEL@production'), '.']));
    const names = new Set(endpoints.map((e) => e.endpoint));
    for (const [name, card] of shown) if (!names.has(name)) { card.destroy(); card.el.remove(); shown.delete(name); }
    for (const endpoint of endpoints) {
      if (!shown.has(endpoint.endpoint)) shown.set(endpoint.endpoint, new EndpointCard(endpoint.endpoint, caps));
      const card = shown.get(endpoint.endpoint);
      card.update(endpoint, active.find((r) => r.endpoint === endpoint.endpoint));
      cards.append(card.el);
    }
    await Promise.all([...shown.values()].slice(0, 24).map((card) => card.updateCharts()));
  };
  ctx.onLeave(poll(2000, refresh));
  ctx.onLeave(poll(10000, async () => {
    const [list, events] = await Promise.all([api.get(path('models')), api.get(path('events', { limit: 8 }))]);
    replace(models, table([
      { label: 'Model', render: (m) => h('a', { href: `/ui/models/${encodeURIComponent(m.name)}` }, m.name) },
      { label: 'Latest', num: true, render: (m) => (m.latest_version ? `v${m.latest_version}` : '—') },
      { label: 'Aliases', render: (m) => Object.entries(m.aliases).map(([a, v]) => h('span', { class: 'alias' }, `${a} → v${v}`)) },
      { label: 'Created', render: (m) => h('span', { title: iso(m.created_at) }, ago(m.created_at)) },
    ], list, { empty: 'No models yet: ferryman train, or ferryman register.' }));
    replace(activity, table([
      { label: 'When', render: (e) => h('span', { class: 'nowrap', title: iso(e.at) }, ago(e.at)) },
      { label: 'What', render: (e) => h('code', e.action) },
      { label: 'On', render: (e) => e.object_key },
      { label: 'By', render: (e) => h('span', { class: 'muted' }, e.actor) },
    ], [...events].reverse(), { empty: 'Nothing has happened yet.' }));
  }));
}
