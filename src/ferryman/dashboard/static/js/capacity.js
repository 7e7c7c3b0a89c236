// Capacity and cost panels: what each serving configuration of a version carried within its
// p99 target (GET …/versions/{v}/capacity, measured by `ferryman capacity`), what an
// endpoint costs now (GET /api/v1/costs, priced by the fleet's instance shape), and what
// its variants cost per day and saved (GET /api/v1/costs/daily, from the metric history).

import { api, path } from './api.js';
import { h, replace } from './dom.js';
import { bytes, ms, number, qps } from './format.js';
import { notice, table } from './ui.js';

const describe = (c) => `${c.variant} · batch ≤ ${c.max_batch_size} · delay ${c.max_delay_ms} ms · threads ${c.intra_op_threads || 'auto'}`;

function capacityBar(value, top) {
  const width = top > 0 ? Math.max(0, Math.min(100, (100 * value) / top)) : 0;
  return h('span', { class: 'nowrap' },
    h('i', { style: { display: 'inline-block', width: `${(width * 1.6).toFixed(0)}px`, height: '10px', background: 'var(--accent)', borderRadius: '2px', marginRight: '6px', verticalAlign: 'middle' } }),
    qps(value));
}

/** The capacity table of one version, with a bar per configuration; filled when it loads. */
export function capacityPanel(model, version) {
  const box = h('div', { class: 'card', dataset: { testid: 'capacity' } }, notice('Loading capacity…'));
  if (!version) {
    replace(box, notice('No version to show.'));
    return box;
  }
  api.get(path('models', model, 'versions', version, 'capacity')).then((results) => {
    if (!results.length) {
      replace(box, notice(['Not measured yet: run ', h('code', `ferryman capacity ${model}@${version}`), '.']));
      return;
    }
    const top = Math.max(...results.map((r) => r.max_qps));
    replace(box, table([
      { label: 'Configuration', render: (r) => describe(r.config) },
      { label: 'p99 target', num: true, render: (r) => `${ms(r.p99_target_ms)} ms` },
      { label: 'Max qps', render: (r) => capacityBar(r.max_qps, top) },
      { label: 'p99 there', num: true, render: (r) => (r.p99_ms == null ? '—' : `${ms(r.p99_ms)} ms`) },
      { label: 'CPU', num: true, render: (r) => (r.cpu_pct == null ? '—' : `${number(r.cpu_pct, 0)}%`) },
      { label: 'Memory', num: true, render: (r) => bytes(r.rss_bytes) },
      { label: 'Stopped because', render: (r) => h('span', { class: 'muted' }, r.stop_reason) },
    ], results, { testid: 'capacity-table' }));
  }).catch((error) => replace(box, notice(error.message, 'error')));
  return box;
}

/** What one endpoint costs now: per hour and per 1,000 requests, or how to turn costs on. */
export function costPanel(endpoint, costs = api.get(path('costs'))) {
  const box = h('div', { class: 'card pad', dataset: { testid: 'cost' } }, notice('Loading cost…'));
  costs.then((report) => {
    const mine = report.endpoints.find((c) => c.endpoint === endpoint);
    if (!report.instance || !mine) {
      replace(box, notice(report.note));
      return;
    }
    const perK = mine.cost_per_1k_requests == null ? '— (no requests recently)' : number(mine.cost_per_1k_requests, 4);
    replace(box, h('div', {},
      h('div', {}, h('b', number(mine.cost_per_hour, 4)), ' per hour · ', h('b', perK), ' per 1,000 requests'),
      h('div', { class: 'muted' }, `${number(mine.replicas, 2)} replicas × ${number(report.price_per_hour, 4)}/h (${report.note}); rate ${qps(mine.qps)} qps`)));
  }).catch((error) => replace(box, notice(error.message, 'error')));
  return box;
}

/** One endpoint's cost per variant and UTC day over the last week, and what was saved. */
export function dailyCostPanel(endpoint, days = 7) {
  const box = h('div', { class: 'card', dataset: { testid: 'daily-cost' } }, notice('Loading daily cost…'));
  api.get(path('costs', 'daily', { endpoint, days })).then((report) => {
    if (!report.instance) {
      replace(box, notice(report.note));
      return;
    }
    const saved = new Map(report.savings.map((s) => [s.variant, s]));
    replace(box, table([
      { label: 'Day (UTC)', render: (d) => d.day },
      { label: 'Variant', render: (d) => d.variant },
      { label: 'Replica-hours', num: true, render: (d) => number(d.replica_seconds / 3600, 3) },
      { label: 'Hours at zero', num: true, render: (d) => number(d.zero_s / 3600, 3) },
      { label: 'Cost', num: true, render: (d) => number(d.cost, 4) },
    ], [...report.days].reverse(), { testid: 'daily-cost-table', empty: 'No samples in the last week: does the control plane run?' }),
    h('div', { class: 'muted', style: { padding: '8px 12px' }, dataset: { testid: 'savings' } },
      [...saved.values()].map((s) => h('div', {}, h('b', s.variant), `: scale-to-zero saved ${number(s.scale_to_zero_saved, 4)}`,
        ` (${number(s.scaled_to_zero_s / 3600, 3)} h at zero); INT8 saved ${s.int8_saved == null ? '—' : number(s.int8_saved, 4)} (${s.int8_note})`)),
      h('div', {}, `${report.note}.`)));
  }).catch((error) => replace(box, notice(error.message, 'error')));
  return box;
}
