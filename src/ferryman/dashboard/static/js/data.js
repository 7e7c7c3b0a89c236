// What several pages read the same way: the endpoints now (live figures when the control plane
// has its monitor, else the deployments' desired state), their history, alerts and rollouts.

import { api, path, serves } from './api.js';

export const ROUTES = {
  endpoints: '/api/v1/endpoints',
  history: '/api/v1/endpoints/{e}/history',
  alerts: '/api/v1/alerts',
  rollouts: '/api/v1/rollouts',
  rolloutEvents: '/api/v1/rollouts/{id}/events',
  quality: '/api/v1/endpoints/{e}/quality',
  payloads: '/api/v1/endpoints/{e}/payloads',
};

/** Which of the optional routes this control plane serves. */
export async function capabilities() {
  const names = Object.keys(ROUTES);
  const found = await Promise.all(names.map((name) => serves('GET', ROUTES[name])));
  return Object.fromEntries(names.map((name, i) => [name, found[i]]));
}

export const variantName = (v) => (v.kind ? `v${v.version}-${v.kind}` : `v${v.version}`);

function fromDeployment(record) {
  return {
    endpoint: record.endpoint,
    variants: record.spec.variants.map((v) => ({
      name: variantName(v), model: v.model, version: v.version, weight: v.weight,
      replicas_desired: v.replicas, replicas_ready: null, qps: null, error_rate: null, client_error_rate: null, p50_ms: null, p99_ms: null,
    })),
    rollout_id: null,
    alerts_firing: null,
    deployment: record,
  };
}

/** Every endpoint with its variants and live figures (null figures: no monitor). */
export async function endpointsNow(caps) {
  if (caps.endpoints) return api.get(path('endpoints'));
  return (await api.get(path('deployments'))).map(fromDeployment);
}

/** Points a chart can show: windows longer than this many 10 s points are read in steps. */
const CHART_POINTS = 360;

/**
 * The history of an endpoint as {seriesName: [{variant, points}]}; names null: every series.
 * Long windows come in steps (the server keeps latency and error peaks), not 8,640 points a day.
 */
export async function history(endpoint, sinceS, names = null) {
  const stepS = sinceS > CHART_POINTS * 10 ? Math.ceil(sinceS / CHART_POINTS) : null;
  const query = { since_s: sinceS, series: names?.join(','), step_s: stepS };
  const answer = await api.get(path('endpoints', endpoint, 'history', query));
  const byName = {};
  for (const one of answer?.series ?? []) (byName[one.name] ??= []).push(one);
  return byName;
}

export function totals(variants) {
  const qps = variants.reduce((sum, v) => sum + (v.qps ?? 0), 0);
  const hasFigures = variants.some((v) => v.qps !== null && v.qps !== undefined);
  const errors = qps > 0 ? variants.reduce((sum, v) => sum + (v.qps ?? 0) * (v.error_rate ?? 0), 0) / qps : hasFigures ? 0 : null;
  const p99s = variants.filter((v) => (v.qps ?? 0) > 0 && v.p99_ms !== null && v.p99_ms !== undefined).map((v) => v.p99_ms);
  const ready = variants.every((v) => v.replicas_ready === null || v.replicas_ready === undefined)
    ? null : variants.reduce((sum, v) => sum + (v.replicas_ready ?? 0), 0);
  return {
    qps: hasFigures ? qps : null,
    errors,
    p99: p99s.length ? Math.max(...p99s) : null,
    ready,
    desired: variants.reduce((sum, v) => sum + (v.replicas_desired ?? 0), 0),
  };
}

const MIN_SPAN_S = 60;

/**
 * The time axis of a chart of the last rangeS seconds: the whole range once data covers
 * it; before that, from the first point (at least a minute), so a young endpoint's
 * charts are not squeezed against their right edge.
 */
export function timeDomain(byName, rangeS) {
  const now = Date.now() / 1000;
  let earliest = now;
  for (const list of Object.values(byName)) {
    for (const one of list) if (one.points.length) earliest = Math.min(earliest, one.points[0][0]);
  }
  return [Math.max(now - rangeS, Math.min(earliest, now - MIN_SPAN_S)), now];
}
