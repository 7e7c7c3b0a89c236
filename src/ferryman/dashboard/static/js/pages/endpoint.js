// One endpoint: its variants and their figures, the rollout in progress with its timeline and
// buttons, live charts, quality and drift, alerts, the deployment, and the payload log.

import { api, ApiError, path } from '../api.js';
import { costPanel, dailyCostPanel } from '../capacity.js';
import { capabilities, endpointsNow, history, timeDomain, totals, variantName } from '../data.js';
import { h, replace } from '../dom.js';
import { ago, datetime, duration, iso, ms, number, pct, qps, toDate } from '../format.js';
import { poll } from '../live.js';
import { ChartGrid, LIVE_CHARTS, LLM_CHARTS, QUALITY_CHARTS, rolloutGates, rolloutMarkers, withCost } from '../metrics.js';
import { change, rolloutCard, timeline } from '../rollout.js';
import {
  Colors, badge, dialog, levelBadge, notAvailable, notice, pageHead, rolloutBadge, section, segmented, table, tile, toast, weightCell,
} from '../ui.js';

const RANGES = [[300, '5 min'], [900, '15 min'], [3600, '1 h'], [21600, '6 h'], [86400, '24 h']];
/** A version's registered metric most worth comparing with live accuracy. */
function offline(version) {
  const metrics = version?.metrics ?? {};
  const key = ['accuracy', 'val_accuracy', 'f1', 'auc'].find((k) => k in metrics) ?? Object.keys(metrics)[0];
  if (!key) return '—';
  const value = metrics[key];
  return h('span', { title: `${key} when registered` }, value <= 1 ? pct(value) : number(value, 3), key.endsWith('accuracy') ? null : h('span', { class: 'faint' }, ` ${key}`));
}

const variantsColumns = (colors, quality, versions) => [
  { label: 'Variant', render: (v) => h('span', { class: 'nowrap' }, h('i', { class: 'swatch', style: { background: colors.of(v.name) } }), h('b', v.name)) },
  { label: 'Model', render: (v) => h('a', { href: `/ui/models/${encodeURIComponent(v.model)}` }, `${v.model} v${v.version}`) },
  { label: 'Weight', num: true, render: (v) => weightCell(v.weight, colors.of(v.name)) },
  { label: 'Replicas', num: true, render: (v) => (v.replicas_ready === null || v.replicas_ready === undefined ? `${v.replicas_desired} desired` : `${v.replicas_ready} / ${v.replicas_desired}`) },
  { label: 'Requests', num: true, render: (v) => (v.qps === null ? '—' : `${qps(v.qps)}/s`) },
  { label: 'p50', num: true, render: (v) => (v.p50_ms === null || v.p50_ms === undefined ? '—' : `${ms(v.p50_ms)} ms`) },
  { label: 'p99', num: true, render: (v) => (v.p99_ms === null || v.p99_ms === undefined ? '—' : `${ms(v.p99_ms)} ms`) },
  { label: '4xx', num: true, render: (v) => h('span', { class: v.client_error_rate > 0.05 ? 'bad-text' : '', title: 'requests the model refused' }, pct(v.client_error_rate ?? null)) },
  { label: '5xx', num: true, render: (v) => h('span', { class: v.error_rate > 0.01 ? 'bad-text' : '', title: 'server errors' }, pct(v.error_rate)) },
  { label: 'Offline', num: true, render: (v) => offline(versions.get(`${v.model}/${v.version}`)) },
  { label: 'Live accuracy', num: true, render: (v) => (quality?.[v.name]?.labelled ? pct(quality[v.name].accuracy) : '—') },
  { label: 'Labelled', num: true, render: (v) => number(quality?.[v.name]?.labelled ?? null) },
];

function scaleDialog(endpoint, deployment, onDone) {
  const spec = deployment.spec;
  const auto = spec.autoscaling;
  let mode = auto ? 'auto' : 'fixed';
  const replicas = h('input', { type: 'number', min: 0, max: 64, value: String(spec.variants[0]?.replicas ?? 1), name: 'replicas' });
  const min = h('input', { type: 'number', min: 0, max: 64, value: String(auto?.min_replicas ?? 1), name: 'min' });
  const max = h('input', { type: 'number', min: 1, max: 64, value: String(auto?.max_replicas ?? 4), name: 'max' });
  const fixedRow = h('div', { class: 'row' }, h('label', { class: 'field' }, 'Replicas per variant', replicas));
  const autoRow = h('div', { class: 'row' }, h('label', { class: 'field' }, 'Minimum', min), h('label', { class: 'field' }, 'Maximum', max));
  const show = () => { fixedRow.classList.toggle('hidden', mode !== 'fixed'); autoRow.classList.toggle('hidden', mode !== 'auto'); };
  show();
  return dialog({
    title: `Scale ${endpoint}`,
    message: 'A fixed number of replicas for every variant, or bounds for the autoscaler. The control loop applies it within a second.',
    fields: [segmented([['fixed', 'Fixed'], ['auto', 'Autoscale']], mode, (value) => { mode = value; show(); }), fixedRow, autoRow],
    confirmLabel: 'Scale',
    onConfirm: async () => {
      const body = mode === 'fixed'
        ? { replicas: Number(replicas.value) }
        : { autoscaling: { ...(auto ?? {}), min_replicas: Number(min.value), max_replicas: Number(max.value) } };
      await api.post(path('deployments', endpoint, 'scale'), body);
      toast(`${endpoint} scaled: ${mode === 'fixed' ? `${replicas.value} replicas` : `autoscaling ${min.value}–${max.value}`}.`);
      onDone();
    },
  });
}

function deploymentFacts(deployment) {
  const spec = deployment.spec;
  const auto = spec.autoscaling;
  const rows = [
    ['Generation', String(deployment.generation)],
    ['Updated', `${ago(deployment.updated_at)} by ${deployment.updated_by}`],
    ['Replicas', auto ? `autoscaled ${auto.min_replicas}–${auto.max_replicas} (target ${auto.target_qps ? `${auto.target_qps} req/s` : `${auto.target_in_flight} in flight`} per replica)` : spec.variants.map((v) => `${variantName(v)}: ${v.replicas}`).join(', ')],
    ['Sticky key', spec.sticky_header ?? '—'],
    ['Shadow', spec.shadow ?? '—'],
    ['Header rules', spec.rules.length ? spec.rules.map((r) => `${r.header}=${r.equals} → ${r.variant}`).join('; ') : '—'],
    ['Batching', spec.max_batch_size ? `up to ${spec.max_batch_size} rows, ${spec.max_delay_ms ?? '—'} ms` : 'replica default'],
  ];
  return table([{ label: 'Setting', render: (r) => h('span', { class: 'muted' }, r[0]) }, { label: 'Value', render: (r) => r[1] }], rows);
}

function payloadSearch(endpoint, variants) {
  const variant = h('select', { name: 'variant' }, h('option', { value: '' }, 'any'), variants.map((v) => h('option', { value: v }, v)));
  const status = h('select', { name: 'status' }, [['', 'any'], ['200', '200 OK'], ['400', '400'], ['404', '404'], ['413', '413'], ['429', '429'], ['500', '500'], ['503', '503'], ['504', '504']].map(([v, t]) => h('option', { value: v }, t)));
  const version = h('input', { type: 'number', min: 1, placeholder: 'any', name: 'version', style: { width: '90px' } });
  const since = h('select', { name: 'since' }, [['300', 'last 5 min'], ['3600', 'last hour'], ['86400', 'last day'], ['', 'all kept']].map(([v, t]) => h('option', { value: v }, t)));
  since.value = '3600';
  const limit = h('select', { name: 'limit' }, ['20', '50', '100', '500'].map((v) => h('option', { value: v }, v)));
  limit.value = '20';
  const results = h('div', { class: 'payload-results' });
  const search = async () => {
    const query = { variant: variant.value, status: status.value, version: version.value, limit: limit.value };
    if (since.value) query.since = new Date(Date.now() - Number(since.value) * 1000).toISOString();
    try {
      const answer = await api.get(path('endpoints', endpoint, 'payloads', query));
      replace(results, payloadTable(answer.records));
    } catch (error) {
      replace(results, notice(error.message, 'error'));
    }
  };
  const form = h('form', { class: 'filters', onsubmit: (event) => { event.preventDefault(); search(); } },
    h('label', { class: 'field' }, 'Variant', variant), h('label', { class: 'field' }, 'Status', status),
    h('label', { class: 'field' }, 'Version', version), h('label', { class: 'field' }, 'Time', since),
    h('label', { class: 'field' }, 'Show', limit), h('button', { class: 'primary', type: 'submit' }, 'Search'));
  search();
  return h('div', { class: 'card', dataset: { testid: 'payloads' } }, form, results);
}

function labelCell(record) {
  if (!record.labels) return h('span', { class: 'faint' }, '—');
  const right = record.predictions && record.labels.every((label, i) => label === record.predictions[i]);
  return h('span', {}, record.labels.join(', '), ' ', badge(right ? 'right' : 'wrong', right ? 'ok' : 'bad', { plain: true }));
}

function payloadTable(records) {
  const body = table([
    { label: 'Time', render: (r) => h('span', { class: 'nowrap', title: iso(r.time) }, datetime(r.time)) },
    { label: 'Request', render: (r) => h('code', r.request_id) },
    { label: 'Variant', render: (r) => r.variant },
    { label: 'Status', render: (r) => badge(String(r.status), r.status < 400 ? 'ok' : r.status < 500 ? 'warn' : 'bad', { plain: true }) },
    { label: 'Latency', num: true, render: (r) => `${ms(r.latency_ms)} ms` },
    { label: 'Prediction', render: (r) => (r.predictions ? r.predictions.slice(0, 4).join(', ') + (r.predictions.length > 4 ? ` … (${r.predictions.length})` : '') : '—') },
    { label: 'Label', render: labelCell },
  ], records, {
    empty: 'No requests match. Replicas’ payload logs are collected every second.',
    onRow: (record, tr) => {
      const next = tr.nextElementSibling;
      if (next?.classList.contains('detail-row')) { next.remove(); return; }
      tr.after(h('tr', { class: 'detail-row' }, h('td', { class: 'detail', colspan: 7 },
        h('pre', JSON.stringify({ predictions: record.predictions, labels: record.labels, inputs: record.inputs ?? '(not sampled)' }, null, 2)))));
    },
  });
  return h('div', {}, body, h('div', { class: 'faint', style: { padding: '8px 12px' } }, `${records.length} request${records.length === 1 ? '' : 's'} · click a row for its inputs`));
}

/** What a variant's payload logs kept of the requests it answered: sampled out at a declared
 * rate and dropped unread are shown, never silently missing. */
function payloadLog(log) {
  if (!log) return '—';
  const kept = log.logged - log.dropped;
  const lost = log.sampled_out + log.dropped;
  const title = `sample rate ${log.sample_rate}; ${number(log.sampled_out)} sampled out, ${number(log.dropped)} dropped unread, of ${number(log.answered)} answered`;
  return h('span', { class: log.dropped > 0 ? 'bad-text' : '', title }, `${number(kept)} / ${number(log.answered)}`, lost ? h('span', { class: 'faint' }, ` (rate ${log.sample_rate}, ${number(log.dropped)} dropped)`) : null);
}

// A language model's votes: rated up / down, and the share up ('—' without votes).
const VOTE_COLUMNS = [
  { label: 'Up / down', num: true, render: (q) => `${number(q.thumbs_up ?? 0)} / ${number(q.thumbs_down ?? 0)}` },
  { label: 'Thumbs up', num: true, render: (q) => (q.thumbs_up_rate === null || q.thumbs_up_rate === undefined ? '—' : pct(q.thumbs_up_rate)) },
];

function qualityTable(quality, colors) {
  const rows = Object.entries(quality?.variants ?? {}).map(([name, q]) => ({ name, ...q }));
  const score = (q, key) => (q.labelled ? pct(q[key]) : '—');
  const isRated = rows.some((q) => q.thumbs_up || q.thumbs_down);
  return table([
    { label: 'Variant', render: (q) => h('span', {}, h('i', { class: 'swatch', style: { background: colors.of(q.name) } }), q.name) },
    { label: 'Model', render: (q) => `${q.model} v${q.version}` },
    { label: 'Labelled', num: true, render: (q) => number(q.labelled ?? null) },
    { label: 'Accuracy', num: true, render: (q) => score(q, 'accuracy') },
    { label: 'Precision', num: true, render: (q) => score(q, 'precision') },
    { label: 'Recall', num: true, render: (q) => score(q, 'recall') },
    { label: 'F1', num: true, render: (q) => score(q, 'f1') },
    ...(isRated ? VOTE_COLUMNS : []),
    { label: 'Payload log', num: true, render: (q) => payloadLog(q.payload_log) },
  ], rows, { empty: 'No feedback labels yet: POST /api/v1/feedback, or ferryman feedback.', testid: 'quality' });
}

function alertsTable(alerts) {
  return table([
    { label: 'State', render: (a) => levelBadge(a.level, a.state) },
    { label: 'Rule', render: (a) => h('b', a.rule) },
    { label: 'Variant', render: (a) => a.variant ?? '—' },
    { label: 'Value', num: true, render: (a) => `${number(a.value, 3)} / ${number(a.threshold, 3)}` },
    { label: 'Message', render: (a) => a.message },
    { label: 'Started', render: (a) => h('span', { class: 'nowrap', title: iso(a.started_at) }, ago(a.started_at)) },
    { label: 'Lasted', render: (a) => duration(((toDate(a.resolved_at) ?? new Date()) - toDate(a.started_at)) / 1000) },
  ], alerts, { empty: 'No alerts.', testid: 'alerts' });
}

function rolloutHistory(rollouts) {
  return table([
    { label: '#', render: (r) => h('a', { href: `/ui/rollouts/${r.id}` }, `#${r.id}`) },
    { label: 'Change', render: (r) => change(r) },
    { label: 'Status', render: (r) => rolloutBadge(r.status) },
    { label: 'Weight', num: true, render: (r) => `${r.weight}%` },
    { label: 'Why', render: (r) => h('span', { class: 'muted' }, r.reason) },
    { label: 'Started', render: (r) => h('span', { class: 'nowrap', title: iso(r.created_at) }, ago(r.created_at)) },
  ], [...rollouts].reverse(), { empty: 'No rollouts on this endpoint yet.' });
}

export async function render(main, [name], ctx) {
  const caps = await capabilities();
  const colors = new Colors();
  let rangeS = 900;
  let deployment = null;
  let quality = null;
  let shownRollout = null;
  const versions = new Map(); // 'model/version' → its record (immutable, read once)

  const badges = h('span');
  const scale = h('button', { type: 'button', dataset: { action: 'scale' }, onclick: () => deployment && scaleDialog(name, deployment, () => refreshing.now()) }, 'Scale…');
  const tiles = h('div', { class: 'grid tiles' });
  const rolloutBox = h('div');
  const timelineBox = h('div', { class: 'card pad timeline-box' });
  const variantsBox = h('div', { class: 'card' });
  const live = new ChartGrid(LIVE_CHARTS);
  const qual = new ChartGrid(QUALITY_CHARTS);
  const llm = new ChartGrid(LLM_CHARTS);
  const llmSection = section('Language model', { hint: 'streams: first token and per-token latency at the gateway, tokens and open streams on the replicas; thumbs up from feedback' }, llm.el);
  llmSection.hidden = true; // until the endpoint has a stream's figures
  llmSection.dataset.testid = 'llm-charts';
  const qualityBox = h('div', { class: 'card' });
  const alertsBox = h('div', { class: 'card' });
  const deploymentBox = h('div', { class: 'card' });
  const historyBox = h('div', { class: 'card' });
  ctx.onLeave(() => { live.destroy(); qual.destroy(); llm.destroy(); });
  // The fleet's price per hour of one replica, read once: it feeds the cost chart.
  const costs = api.get(path('costs'));
  let pricePerHour = null;
  costs.then((report) => { pricePerHour = report.price_per_hour; }).catch(() => {});

  main.append(
    pageHead({ crumbs: [h('a', { href: '/ui/' }, 'Overview'), 'Endpoints'], title: name, badges: [badges], actions: [scale],
      subtitle: h('span', {}, 'Clients call ', h('code', `/v2/models/${name}/infer`), ' on the gateway.') }),
    tiles,
    section('Rollout', { id: 'rollout' }, caps.rollouts ? h('div', { class: 'grid two' }, rolloutBox, timelineBox) : notAvailable('Rollouts', 'GET /api/v1/rollouts')),
    section('Variants', {}, variantsBox),
    section('Cost', { hint: 'replicas × the instance price set for the fleet; per day from the metric history' },
      h('div', { class: 'grid two' }, costPanel(name, costs), dailyCostPanel(name))),
    section('Live metrics', { right: segmented(RANGES, rangeS, (value) => { rangeS = value; historyAt = 0; refreshing.now(); }) },
      caps.history ? live.el : notAvailable('Live charts', 'GET /api/v1/endpoints/{e}/history')),
    llmSection,
    section('Quality and drift', { hint: 'accuracy from delayed feedback labels; drift against the training data' },
      caps.history ? qual.el : null, h('div', { class: 'section' }, qualityBox)),
    section('Alerts', {}, caps.alerts ? alertsBox : notAvailable('Alerts', 'GET /api/v1/alerts')),
    h('div', { class: 'grid two' }, section('Deployment', {}, deploymentBox), section('Rollout history', {}, caps.rollouts ? historyBox : notAvailable('Rollouts', 'GET /api/v1/rollouts'))),
    section('Payload log', { hint: 'answered requests, their predictions and labels' }, h('div', { dataset: { slot: 'payloads' } })));

  try {
    deployment = await api.get(path('deployments', name));
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      replace(main, pageHead({ crumbs: [h('a', { href: '/ui/' }, 'Overview')], title: name }), notice(error.message, 'error'));
      return;
    }
    throw error;
  }
  colors.seed(deployment.spec.variants.map(variantName));
  main.querySelector('[data-slot="payloads"]').replaceWith(payloadSearch(name, deployment.spec.variants.map(variantName)));

  let markers = [];
  let gates = {};
  const refreshRollout = async () => {
    if (!caps.rollouts) return;
    const rollouts = await api.get(path('rollouts', { endpoint: name, active_only: false }));
    replace(historyBox, rolloutHistory(rollouts));
    const active = rollouts.filter((r) => r.status === 'progressing' || r.status === 'paused');
    shownRollout = active[active.length - 1] ?? rollouts[rollouts.length - 1] ?? null;
    replace(badges, shownRollout && active.length ? rolloutBadge(shownRollout.status) : null);
    if (!shownRollout) {
      replace(rolloutBox, notice('No rollout yet. Register a new version (with a policy set) or start one: ferryman rollout start.'));
      replace(timelineBox, h('div', { class: 'muted' }, 'The timeline of a rollout shows here.'));
      markers = [];
      gates = {};
      return;
    }
    replace(rolloutBox, h('div', {}, active.length ? null : h('h3', { class: 'section-head' }, 'Latest rollout'), rolloutCard(shownRollout, { onChange: () => refreshing.now() })));
    const events = await api.get(path('rollouts', shownRollout.id, 'events'));
    replace(timelineBox, h('h3', {}, 'Timeline'), timeline(events));
    markers = rolloutMarkers(events);
    gates = rolloutGates(shownRollout);
  };

  // Every series the monitor keeps (asking by name would fail on a series it does not
  // know); long ranges are read less often, as their points change every 10 s anyway.
  let historyAt = 0;
  const refreshHistory = async (force = false) => {
    if (!caps.history) return;
    const everyMs = rangeS <= 900 ? 0 : rangeS <= 3600 ? 5000 : 20000;
    if (!force && Date.now() - historyAt < everyMs) return;
    historyAt = Date.now();
    await costs.catch(() => null);
    const byName = withCost(await history(name, rangeS), pricePerHour);
    const domain = timeDomain(byName, rangeS);
    live.draw(byName, domain, colors, { markers, gates });
    llmSection.hidden = !LLM_CHARTS.some((spec) => byName[spec.key]?.length);
    if (!llmSection.hidden) llm.draw(byName, domain, colors, { markers, gates });
    qual.draw(byName, domain, colors, { markers });
  };

  const refresh = async () => {
    const [endpoints, alerts] = await Promise.all([
      endpointsNow(caps),
      caps.alerts ? api.get(path('alerts', { endpoint: name, state: 'all' })) : Promise.resolve(null),
      refreshRollout(),
    ]);
    const endpoint = endpoints.find((e) => e.endpoint === name);
    deployment = endpoint?.deployment ?? (await api.get(path('deployments', name)));
    const variants = endpoint?.variants ?? [];
    colors.seed(variants.map((v) => v.name));
    const t = totals(variants);
    replace(tiles,
      tile('Requests', qps(t.qps), { unit: '/s' }),
      tile('p99 latency', ms(t.p99), { unit: 'ms', sub: 'slowest variant with traffic' }),
      tile('Errors', pct(t.errors), { tone: t.errors > 0.01 ? 'bad' : '' }),
      tile('Replicas', t.ready === null ? String(t.desired) : `${t.ready} / ${t.desired}`, { sub: t.ready === null ? 'desired' : 'ready / desired' }),
      tile('Alerts', alerts ? String(alerts.filter((a) => a.state === 'firing').length) : '—', { sub: 'firing', tone: alerts?.some((a) => a.state === 'firing') ? 'bad' : '' }));
    await Promise.all(variants.filter((v) => !versions.has(`${v.model}/${v.version}`)).map(async (v) => {
      versions.set(`${v.model}/${v.version}`, await api.get(path('models', v.model, 'versions', v.version)));
    }));
    replace(variantsBox, table(variantsColumns(colors, quality?.variants, versions), variants, { testid: 'variants' }));
    if (alerts) replace(alertsBox, alertsTable(alerts)); // newest first, as the API lists them
    replace(deploymentBox, deploymentFacts(deployment));
    await refreshHistory();
  };
  const refreshing = poll(2000, refresh);
  ctx.onLeave(refreshing);
  ctx.onLeave(poll(10000, async () => {
    quality = await api.get(path('endpoints', name, 'quality'));
    replace(qualityBox, qualityTable(quality, colors));
  }));
}
