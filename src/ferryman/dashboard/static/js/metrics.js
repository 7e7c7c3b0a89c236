// The charts of an endpoint's recorded series, one line per variant, with a rollout's steps
// as markers and its gates as thresholds: on the endpoint page and on a rollout's page.

import { Chart } from './chart.js';
import { h } from './dom.js';
import { bytes, ms, number, pct, qps, toDate } from './format.js';

export const LIVE_CHARTS = [
  { key: 'qps', title: 'Requests', unit: 'req/s', format: qps },
  // Not a recorded series: the replicas series × the fleet's instance price (see withCost).
  { key: 'cost', title: 'Cost', unit: 'per hour: replicas × instance price', format: (v) => number(v, 4) },
  { key: 'p99_ms', title: 'Latency p99 (dashed: p50)', unit: 'ms', format: ms, also: 'p50_ms', gate: 'p99' },
  { key: 'error_rate', title: 'Errors (5xx)', unit: '% of requests', format: (v) => pct(v), gate: 'errors', minTop: 0.01 },
  { key: 'client_error_rate', title: 'Refused (4xx)', unit: '% of requests', format: (v) => pct(v), minTop: 0.01 },
  { key: 'weight', title: 'Traffic weight', unit: '%', format: (v) => `${number(v)}%` },
  { key: 'replicas', title: 'Replicas', unit: 'ready (dashed: desired)', format: number, also: 'replicas_desired', integer: true },
  { key: 'batch_size', title: 'Batch size', unit: 'rows per batch', format: number },
  { key: 'cpu_pct', title: 'CPU', unit: '% of one core', format: (v) => `${number(v)}%` },
  { key: 'rss_bytes', title: 'Memory', unit: 'resident', format: bytes, tickUnit: 1024 * 1024 },
];

export const QUALITY_CHARTS = [
  { key: 'accuracy', title: 'Accuracy', unit: 'from feedback labels', format: (v) => pct(v), min0: false },
  { key: 'f1', title: 'F1 (macro)', unit: 'from feedback labels', format: (v) => pct(v), min0: false },
  { key: 'input_drift_psi', title: 'Input drift', unit: 'PSI vs training data', format: (v) => number(v, 3), minTop: 0.1 },
  { key: 'prediction_drift', title: 'Prediction drift', unit: 'JS divergence vs baseline', format: (v) => number(v, 3), minTop: 0.1 },
];

// A language model's streams: the gateway's time to first token and between tokens, the
// replicas' tokens and open streams, and its users' votes on completions (the share rated
// up). Shown only for endpoints that have them.
export const LLM_CHARTS = [
  { key: 'ttft_p99_ms', title: 'Time to first token p99 (dashed: p50)', unit: 'ms', format: ms, also: 'ttft_p50_ms', gate: 'ttft' },
  { key: 'tpot_p99_ms', title: 'Time per output token p99 (dashed: p50)', unit: 'ms', format: ms, also: 'tpot_p50_ms', gate: 'tpot' },
  { key: 'tokens_per_s', title: 'Output tokens', unit: 'tokens/s', format: qps },
  { key: 'prompt_tokens_per_s', title: 'Prompt tokens', unit: 'tokens/s', format: qps },
  { key: 'in_flight', title: 'Concurrent streams', unit: 'open on the replicas', format: number },
  { key: 'thumbs_up_rate', title: 'Thumbs up', unit: 'share of rated completions, from feedback', format: (v) => pct(v), min0: false, gate: 'thumbs' },
];

const ALSO_LABELS = { p50_ms: 'p50', replicas_desired: 'desired', ttft_p50_ms: 'p50', tpot_p50_ms: 'p50' };

/**
 * byName with a 'cost' series per variant: its replicas (ready) × the price per hour of the
 * fleet's instance shape, the rate at which it cost at each point; none when unpriced.
 */
export function withCost(byName, pricePerHour) {
  if (pricePerHour === null || pricePerHour === undefined) return byName;
  const cost = (byName.replicas ?? []).map((one) => ({ ...one, name: 'cost', points: one.points.map(([t, r]) => [t, r * pricePerHour]) }));
  return { ...byName, cost };
}

/** The steps, promotion and rollback of a rollout's timeline, as chart markers. */
export function rolloutMarkers(events) {
  return events.filter((e) => /step|promoted|rolled_back|aborted/.test(e.action)).map((e) => {
    const kind = e.action.replace(/^rollout\./, '');
    const short = kind === 'step' ? `${e.details?.weight ?? ''}%` : kind === 'promoted' ? '✓' : '↩';
    return { x: toDate(e.at ?? e.time).getTime() / 1000, short, label: `${kind.replaceAll('_', ' ')} ${e.details?.reason ?? ''}` };
  });
}

/** A live rollout's gates as chart thresholds by gate name; none once it has ended. */
export function rolloutGates(rollout) {
  if (!rollout || !['progressing', 'paused'].includes(rollout.status)) return {};
  const gates = rollout.plan?.gates ?? {};
  return {
    p99: gates.max_p99_ms ?? undefined,
    errors: gates.min_success_rate === undefined ? undefined : 1 - gates.min_success_rate,
    ttft: gates.max_ttft_p99_ms ?? undefined,
    tpot: gates.max_inter_token_p99_ms ?? undefined,
    thumbs: gates.min_thumbs_up_rate ?? undefined,
  };
}

/** A grid of charts, one per spec; draw() redraws them all from a history answer. */
export class ChartGrid {
  constructor(specs) {
    this.charts = specs.map((spec) => ({ spec, chart: new Chart({ ...spec, testid: `chart-${spec.key}` }) }));
    this.el = h('div', { class: 'grid charts' }, this.charts.map((c) => c.chart.el));
  }

  draw(byName, domain, colors, { markers = [], gates = {} } = {}) {
    for (const { spec, chart } of this.charts) {
      const series = (byName[spec.key] ?? []).map((one) => ({ label: one.variant, color: colors.of(one.variant), points: one.points }));
      for (const one of spec.also ? byName[spec.also] ?? [] : []) {
        series.push({ label: `${one.variant} ${ALSO_LABELS[spec.also]}`, color: colors.of(one.variant), points: one.points, dashed: true });
      }
      const gate = spec.gate ? gates[spec.gate] : undefined;
      const thresholds = gate === undefined ? [] : [{ value: gate, label: `gate ${spec.format(gate)}` }];
      chart.set({ series, domain, markers, thresholds });
    }
  }

  destroy() {
    this.charts.forEach((c) => c.chart.destroy());
  }
}
