// One model: its versions, where each came from and where it serves (run → version →
// variants → endpoints), the variants' gates, and its runs with their training curves.

import { api, path } from '../api.js';
import { capacityPanel } from '../capacity.js';
import { Chart } from '../chart.js';
import { variantName } from '../data.js';
import { h, replace } from '../dom.js';
import { ago, bytes, duration, iso, ms, number, pct, toDate } from '../format.js';
import { poll } from '../live.js';
import { ColorsInOrder, badge, notice, pageHead, runBadge, section, table, tile } from '../ui.js';

const LINEAGE_VERSIONS = 8;
const CURVE_RUNS = 4;
const DETAILED_RUNS = 12; // the run list has no curves; these newest runs are read one by one

const shortRun = (id) => (id ? id.slice(0, 8) : '—');

function metricText(metrics, max = 3) {
  const entries = Object.entries(metrics ?? {});
  if (!entries.length) return '—';
  return entries.slice(0, max).map(([k, v]) => `${k} ${v <= 1 && /acc|f1|auc|precision|recall/.test(k) ? pct(v) : number(v, 4)}`).join(' · ');
}

function lastValues(run) {
  const metrics = {};
  for (const [name, points] of Object.entries(run.metrics ?? {})) if (points.length) metrics[name] = points[points.length - 1].value;
  return metrics;
}

function variantChip(variant) {
  const gate = variant.gate ?? {};
  const figures = [gate.accuracy !== undefined ? pct(gate.accuracy) : null, gate.latency_ms_b1 !== undefined ? `${ms(gate.latency_ms_b1)} ms` : null].filter(Boolean).join(' · ');
  return h('span', { class: ['chip', variant.status], title: `${variant.kind}: ${variant.status}${gate.reason ? ` (${gate.reason})` : ''}` },
    h('span', { class: 'st' }), variant.kind, figures ? h('span', { class: 'm' }, figures) : null);
}

function lineage(versions, runs, variants, deployments) {
  const runsById = new Map(runs.map((r) => [r.id, r]));
  const head = h('div', { class: 'cols head' }, h('div', 'Run'), h('div'), h('div', 'Version'), h('div'), h('div', 'Variants (gate, accuracy, latency at batch 1)'), h('div'), h('div', 'Serving on'));
  const rows = versions.map((v) => {
    const run = v.parent_run ? runsById.get(v.parent_run) : null;
    const serving = deployments.flatMap((d) => d.spec.variants.filter((sv) => sv.model === v.model && sv.version === v.version)
      .map((sv) => ({ endpoint: d.endpoint, name: variantName(sv), weight: sv.weight })));
    const runNode = v.parent_run
      ? h('div', { class: 'node' }, h('div', { class: 'k' }, h('code', shortRun(v.parent_run)), ' ', run ? runBadge(run.status) : null),
        h('div', { class: 's' }, run ? `${run.recipe} · ${metricText(lastValues(run), 1)}` : 'run not found'))
      : h('div', { class: 'node empty' }, h('div', { class: 's' }, 'registered from a file'));
    const versionNode = h('div', { class: 'node version' },
      h('div', { class: 'k' }, `v${v.version} `, v.aliases.map((a) => h('span', { class: 'alias' }, a))),
      h('div', { class: 's', title: iso(v.created_at) }, `${ago(v.created_at)} · ${metricText(v.metrics, 1)}`));
    const found = variants.get(v.version) ?? [];
    return h('div', { class: 'cols', dataset: { version: v.version } }, runNode, h('div', { class: ['arrow', v.parent_run ? '' : 'none'] }), versionNode,
      h('div', { class: ['arrow', found.length ? '' : 'none'] }),
      found.length ? h('div', { class: 'chips' }, found.map(variantChip)) : h('div', { class: 'node empty' }, h('div', { class: 's' }, 'served as registered (no exported variants)')),
      h('div', { class: ['arrow', serving.length ? '' : 'none'] }),
      serving.length ? h('div', { class: 'chips' }, serving.map((s) => h('a', { class: 'chip', href: `/ui/endpoints/${encodeURIComponent(s.endpoint)}` }, h('b', s.endpoint), h('span', { class: 'm' }, `${s.name} · ${s.weight}%`))))
        : h('div', { class: 'faint' }, 'not deployed'));
  });
  return h('div', { class: 'card lineage', dataset: { testid: 'lineage' } }, head, rows);
}

function versionsTable(versions) {
  return table([
    { label: 'Version', render: (v) => h('b', `v${v.version}`) },
    { label: 'Aliases', render: (v) => v.aliases.map((a) => h('span', { class: 'alias' }, a)) },
    { label: 'Metrics', render: (v) => metricText(v.metrics, 4) },
    { label: 'Format', render: (v) => v.format },
    { label: 'Size', num: true, render: (v) => bytes(v.size_bytes) },
    { label: 'Data', render: (v) => (v.data_fingerprint ? h('code', { title: v.data_fingerprint }, v.data_fingerprint.slice(0, 10)) : '—') },
    { label: 'Run', render: (v) => (v.parent_run ? h('code', { title: v.parent_run }, shortRun(v.parent_run)) : '—') },
    { label: 'Created', render: (v) => h('span', { class: 'nowrap', title: iso(v.created_at) }, `${ago(v.created_at)} by ${v.created_by}`) },
    { label: '', render: (v) => (v.archived_at ? badge('archived', '', { plain: true }) : null) },
  ], [...versions].reverse(), { empty: 'No versions yet.', testid: 'versions' });
}

function variantsTable(variants) {
  const rows = [...variants.entries()].sort((a, b) => b[0] - a[0]).flatMap(([, list]) => list);
  return table([
    { label: 'Version', render: (v) => `v${v.version}` },
    { label: 'Variant', render: (v) => h('b', v.kind) },
    { label: 'Gate', render: (v) => badge(v.status, v.status === 'passed' ? 'ok' : v.status === 'rejected' ? 'bad' : '') },
    { label: 'Accuracy', num: true, render: (v) => pct(v.gate?.accuracy) },
    { label: 'vs fp32', num: true, render: (v) => (v.gate?.accuracy !== undefined && v.gate?.baseline_accuracy !== undefined ? `${((v.gate.accuracy - v.gate.baseline_accuracy) * 100).toFixed(2)} pp` : '—') },
    { label: 'Parity', num: true, render: (v) => (v.gate?.max_abs_diff == null ? '—' : v.gate.max_abs_diff.toExponential(1)) },
    { label: 'Size', num: true, render: (v) => bytes(v.size_bytes) },
    { label: 'Latency b1', num: true, render: (v) => (v.gate?.latency_ms_b1 === undefined ? '—' : `${ms(v.gate.latency_ms_b1)} ms`) },
    { label: 'Latency b32', num: true, render: (v) => (v.gate?.latency_ms_b32 === undefined ? '—' : `${ms(v.gate.latency_ms_b32)} ms`) },
    { label: 'Why', render: (v) => h('span', { class: 'muted' }, v.gate?.reason ?? '') },
  ], rows, { empty: 'No exported variants.' });
}

function runsTable(runs, versions, selected, onToggle, colors) {
  const produced = new Map(versions.filter((v) => v.parent_run).map((v) => [v.parent_run, v.version]));
  return table([
    { label: '', render: (r) => (selected.has(r.id) ? h('i', { class: 'swatch', style: { background: colors.of(r.id) } }) : h('i', { class: 'swatch', style: { background: 'var(--grid)' } })) },
    { label: 'Run', render: (r) => h('code', { title: r.id }, shortRun(r.id)) },
    { label: 'Status', render: (r) => runBadge(r.status) },
    { label: 'Recipe', render: (r) => r.recipe },
    { label: 'Params', render: (r) => h('span', { class: 'muted' }, Object.entries(r.params).slice(0, 4).map(([k, v]) => `${k}=${v}`).join(' ')) },
    { label: 'Final metrics', render: (r) => metricText(lastValues(r), 3) },
    { label: 'Version', render: (r) => (produced.has(r.id) ? `v${produced.get(r.id)}` : '—') },
    { label: 'Started', render: (r) => h('span', { class: 'nowrap', title: iso(r.started_at) }, ago(r.started_at)) },
    { label: 'Took', num: true, render: (r) => duration(((toDate(r.finished_at) ?? new Date()) - toDate(r.started_at)) / 1000) },
  ], runs, { empty: 'No runs recorded for this model.', onRow: (r) => onToggle(r.id), rowClass: (r) => (selected.has(r.id) ? 'selected' : ''), testid: 'runs' });
}

/** One chart per metric name, one line per selected run; charts are kept between redraws. */
class Curves {
  constructor() {
    this.charts = new Map();
    this.el = h('div', { class: 'grid charts', dataset: { testid: 'curves' } });
    this.empty = notice('The selected runs logged no metric curves. Click a run above to add it.');
  }

  draw(runs, selected, colors) {
    const chosen = runs.filter((r) => selected.has(r.id));
    const names = [...new Set(chosen.flatMap((r) => Object.keys(r.metrics ?? {})))].sort();
    for (const [name, chart] of this.charts) if (!names.includes(name)) { chart.destroy(); chart.el.remove(); this.charts.delete(name); }
    for (const name of names) {
      if (!this.charts.has(name)) {
        const isRatio = /acc|f1|auc|precision|recall/.test(name);
        this.charts.set(name, new Chart({ title: name, unit: 'by step', x: 'linear', xLabel: 'step', format: isRatio ? (v) => pct(v) : (v) => number(v, 3), min0: false, testid: `curve-${name}` }));
      }
      const chart = this.charts.get(name);
      this.el.append(chart.el);
      chart.set({
        series: chosen.filter((r) => r.metrics?.[name]?.length)
          .map((r) => ({ label: shortRun(r.id), color: colors.of(r.id), points: r.metrics[name].map((p) => [p.step, p.value]) })),
      });
    }
    return names.length ? this.el : this.empty;
  }

  destroy() {
    this.charts.forEach((chart) => chart.destroy());
  }
}

export async function render(main, [name], ctx) {
  const [model, versions, runs, deployments] = await Promise.all([
    api.get(path('models', name)),
    api.get(path('models', name, 'versions', { include_archived: true })),
    api.get(path('runs', { model: name, limit: 50 })),
    api.get(path('deployments')),
  ]);
  const recent = [...versions].reverse().slice(0, LINEAGE_VERSIONS);
  const variantLists = await Promise.all(recent.map((v) => api.get(path('models', name, 'versions', v.version, 'variants'))));
  const variants = new Map(recent.map((v, i) => [v.version, variantLists[i]]));
  let newestFirst = [...runs].sort((a, b) => toDate(b.started_at) - toDate(a.started_at));
  const detail = async (run) => api.get(path('runs', run.id));
  newestFirst = [...await Promise.all(newestFirst.slice(0, DETAILED_RUNS).map(detail)), ...newestFirst.slice(DETAILED_RUNS)];
  const selected = new Set(newestFirst.filter((r) => Object.keys(r.metrics ?? {}).length).slice(0, CURVE_RUNS).map((r) => r.id));
  const colors = new ColorsInOrder().seed([...selected]);
  const runsBox = h('div', { class: 'card' });
  const curvesBox = h('div');
  const curves = new Curves();
  ctx.onLeave(() => curves.destroy());
  const drawRuns = () => {
    replace(runsBox, runsTable(newestFirst, versions, selected, async (id) => {
      if (selected.has(id)) selected.delete(id); else selected.add(id);
      const index = newestFirst.findIndex((r) => r.id === id);
      if (selected.has(id) && !Object.keys(newestFirst[index].metrics ?? {}).length) newestFirst[index] = await detail(newestFirst[index]);
      drawRuns();
    }, colors));
    replace(curvesBox, curves.draw(newestFirst, selected, colors));
  };
  const production = model.aliases.production;
  main.append(
    pageHead({ crumbs: [h('a', { href: '/ui/models' }, 'Models')], title: model.name,
      badges: Object.entries(model.aliases).map(([alias, v]) => h('span', { class: 'alias' }, `${alias} → v${v}`)),
      subtitle: model.description || `created ${ago(model.created_at)} by ${model.created_by}` }),
    h('div', { class: 'grid tiles' },
      tile('Versions', String(versions.length), { sub: model.latest_version ? `latest v${model.latest_version}` : '' }),
      tile('Production', production ? `v${production}` : '—', { sub: production ? metricText(versions.find((v) => v.version === production)?.metrics, 1) : 'no production alias' }),
      tile('Runs', String(runs.length), { sub: `${runs.filter((r) => r.status === 'running').length} running` }),
      tile('Serving on', String(new Set(deployments.filter((d) => d.spec.variants.some((v) => v.model === name)).map((d) => d.endpoint)).size), { sub: 'endpoints' })),
    section('Lineage', { hint: `run → version → variants → endpoints; newest ${Math.min(LINEAGE_VERSIONS, versions.length)} versions` },
      versions.length ? lineage(recent, runs, variants, deployments) : notice('No versions yet.')),
    section('Versions', {}, h('div', { class: 'card' }, versionsTable(versions))),
    section('Variants', { hint: 'each export is gated on accuracy against fp32 and on output parity' }, h('div', { class: 'card' }, variantsTable(variants))),
    section('Capacity', { hint: `highest rate each serving configuration of v${production ?? model.latest_version ?? '?'} carried within its p99 target` },
      capacityPanel(name, production ?? model.latest_version)),
    section('Runs', { hint: 'click a run to add or remove its curves' }, runsBox),
    section('Training curves', {}, curvesBox));
  drawRuns();
  // Curves of runs still training grow while you watch.
  ctx.onLeave(poll(5000, async () => {
    const running = newestFirst.filter((r) => r.status === 'running' && selected.has(r.id));
    if (!running.length) return;
    const fresh = new Map((await Promise.all(running.map(detail))).map((r) => [r.id, r]));
    newestFirst = newestFirst.map((r) => fresh.get(r.id) ?? r);
    drawRuns();
  }));
}
