// Capacity and cost panels: what each serving configuration of a version carried within its
// p99 target (GET …/versions/{v}/capacity, measured by `ferryman capacity`), and what an
// endpoint costs now (GET /api/v1/costs, priced by the fleet's instance shape).

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
export function costPanel(endpoint) {
  const box = h('div', { class: 'card pad', dataset: { testid: 'cost' } }, notice('Loading cost…'));
  api.get(path('costs')).then((report) => {
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
