// Line charts drawn as SVG: axes with units, gridlines, a legend with the latest values, a
// hover cursor, gaps where data is missing, gate thresholds and event markers.
// Drawn by hand rather than with a library: the series here are small (at most a few hundred
// points), SVG is plain DOM that CSS themes and tests can read, and there is no third-party
// code to vendor, audit and keep current.

import { h, s, replace } from './dom.js';
import { clock, number } from './format.js';

const TIME_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
const MARGIN = { left: 50, right: 12, top: 10, bottom: 22 };

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * magnitude;
}

/** Nice ticks covering [lo, hi]: the first at or below lo, the last at or above hi. */
function linearTicks(lo, hi, count, minStep = 0) {
  const step = Math.max(niceStep(hi - lo, count), minStep);
  const ticks = [];
  const first = Math.floor(lo / step + 1e-9) * step;
  for (let v = first; ticks.length < 50; v += step) {
    ticks.push(Number(v.toPrecision(12)));
    if (v >= hi - step * 1e-9) break;
  }
  return ticks;
}

function timeTicks(lo, hi, count) {
  const span = hi - lo;
  const step = TIME_STEPS_S.find((candidate) => span / candidate <= count) ?? TIME_STEPS_S[TIME_STEPS_S.length - 1];
  const offset = step >= 3600 ? new Date().getTimezoneOffset() * 60 : 0; // hours on local boundaries
  const ticks = [];
  for (let t = Math.ceil((lo - offset) / step) * step + offset; t <= hi; t += step) ticks.push(t);
  return { ticks, step };
}

function timeLabel(t, step) {
  if (step >= 86400) {
    const d = new Date(t * 1000);
    return `${d.getMonth() + 1}/${d.getDate()}`;
  }
  return clock(t, step < 60);
}

/** Nearest index in sorted points to x. */
function nearest(points, x) {
  let lo = 0;
  let hi = points.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < x) lo = mid; else hi = mid;
  }
  return Math.abs(points[lo][0] - x) <= Math.abs(points[hi][0] - x) ? lo : hi;
}

function medianGap(points) {
  const gaps = [];
  for (let i = 1; i < points.length; i += 1) gaps.push(points[i][0] - points[i - 1][0]);
  gaps.sort((a, b) => a - b);
  return gaps.length ? gaps[gaps.length >> 1] : 0;
}

/** '40.0' → '40', '12.50 ms' → '12.5 ms': tick labels without trailing zeros. */
function tidy(text) {
  return text.replace(/(\.\d*?)0+(?=\D*$)/, '$1').replace(/\.(?=\D*$)/, '');
}

export class Chart {
  /**
   * title: shown above; unit: shown beside it ('ms', 'req/s'); format(v): values in the legend,
   * ticks and tooltip; x: 'time' (unix seconds) or 'linear' (e.g. training steps, xLabel).
   */
  constructor({ title, unit = '', format = number, x = 'time', xLabel = '', height = 170, min0 = true, minTop = null, tickUnit = 1, integer = false, testid, bare = false }) {
    this.opts = { title, unit, format, x, xLabel, height, min0, minTop, tickUnit, integer };
    this.data = { series: [], thresholds: [], markers: [] };
    this.svgBox = h('div', { class: 'plot' });
    this.legend = h('div', { class: 'legend' });
    this.tooltip = h('div', { class: 'tooltip hidden' });
    this.note = h('span', { class: 'chart-note' });
    this.el = h('div', { class: ['chart', bare ? 'bare' : 'card'], dataset: { testid: testid ?? '', chart: title } },
      h('div', { class: 'chart-head' }, h('span', { class: 'chart-title' }, title),
        unit ? h('span', { class: 'chart-unit' }, unit) : null, this.note),
      this.svgBox, this.legend, this.tooltip);
    this.width = 0;
    this.clipId = `plot-${Math.random().toString(36).slice(2)}`; // unique within the page
    this.observer = new ResizeObserver(() => {
      const width = this.svgBox.clientWidth;
      if (width && Math.abs(width - this.width) > 1) this.render();
    });
    this.observer.observe(this.svgBox);
  }

  /** series: [{label, color, points: [[x, y], ...], dashed}]; domain: [x0, x1] or null. */
  set({ series = [], domain = null, thresholds = [], markers = [] }) {
    this.data = {
      series: series.map((one) => ({ ...one, points: one.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1])).sort((a, b) => a[0] - b[0]) })),
      domain, thresholds, markers,
    };
    this.render();
    return this;
  }

  destroy() {
    this.observer.disconnect();
  }

  render() {
    const { height, format, min0, x: xType } = this.opts;
    const { series, thresholds, markers } = this.data;
    this.width = this.svgBox.clientWidth || 400;
    const width = this.width;
    const plotW = Math.max(10, width - MARGIN.left - MARGIN.right);
    const plotH = height - MARGIN.top - MARGIN.bottom;
    const all = series.flatMap((one) => one.points);
    const svg = s('svg', { width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': this.opts.title, 'data-points': all.length });
    this.drawLegend(series);
    if (!all.length) {
      svg.append(s('line', { class: 'axis-line', x1: MARGIN.left, x2: MARGIN.left + plotW, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH }),
        s('text', { class: 'empty', x: MARGIN.left + plotW / 2, y: MARGIN.top + plotH / 2, 'text-anchor': 'middle' }, 'No data yet'));
      replace(this.svgBox, svg);
      return;
    }
    let [x0, x1] = this.data.domain ?? [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
    if (x1 <= x0) { x0 -= 1; x1 += 1; }
    const dataMax = Math.max(...all.map((p) => p[1]));
    // A threshold far above the data would flatten it: it is named in the header instead.
    const onScale = thresholds.filter((t) => t.value <= Math.max(dataMax * 3, this.opts.minTop ?? 1e-9));
    replace(this.note, thresholds.filter((t) => !onScale.includes(t)).map((t) => `${t.label} (off scale)`).join(' · '));
    const ys = [...all.map((p) => p[1]), ...onScale.map((t) => t.value)];
    let y0 = Math.min(...ys);
    let y1 = Math.max(...ys);
    if (min0) y0 = Math.min(0, y0);
    if (this.opts.minTop !== null) y1 = Math.max(y1, this.opts.minTop);
    if (y1 <= y0) y1 = y0 + (Math.abs(y0) || 1);
    const unitY = this.opts.tickUnit;
    const yTicks = linearTicks(y0 / unitY, y1 / unitY, Math.max(2, Math.floor(plotH / 34)), this.opts.integer ? 1 : 0).map((t) => t * unitY);
    y0 = Math.min(y0, yTicks[0]);
    y1 = Math.max(y1, yTicks[yTicks.length - 1]);
    const sx = (v) => MARGIN.left + ((v - x0) / (x1 - x0)) * plotW;
    const sy = (v) => MARGIN.top + plotH - ((v - y0) / (y1 - y0)) * plotH;

    const grid = s('g', { class: 'grid' });
    const labels = s('g');
    for (const t of yTicks) {
      grid.append(s('line', { x1: MARGIN.left, x2: MARGIN.left + plotW, y1: sy(t), y2: sy(t) }));
      labels.append(s('text', { x: MARGIN.left - 7, y: sy(t) + 3.5, 'text-anchor': 'end' }, tidy(format(t))));
    }
    const xCount = Math.max(3, Math.floor(plotW / 80));
    if (xType === 'time') {
      const { ticks, step } = timeTicks(x0, x1, xCount);
      for (const t of ticks) labels.append(s('text', { x: sx(t), y: height - 5, 'text-anchor': 'middle' }, timeLabel(t, step)));
    } else {
      for (const t of linearTicks(x0, x1, xCount).filter((v) => v >= x0 && v <= x1)) labels.append(s('text', { x: sx(t), y: height - 5, 'text-anchor': 'middle' }, number(t)));
    }
    svg.append(grid, s('line', { class: 'axis-line', x1: MARGIN.left, x2: MARGIN.left + plotW, y1: MARGIN.top + plotH, y2: MARGIN.top + plotH }), labels);

    let labelledAt = -Infinity; // a marker's label only where it does not run into the last one
    for (const marker of [...markers].sort((a, b) => a.x - b.x)) {
      if (marker.x < x0 || marker.x > x1) continue;
      const at = sx(marker.x);
      const label = at - labelledAt >= 30 ? marker.short ?? '' : '';
      if (label) labelledAt = at;
      svg.append(s('g', { class: 'marker' },
        s('line', { x1: at, x2: at, y1: MARGIN.top + 10, y2: MARGIN.top + plotH }),
        s('text', { x: at, y: MARGIN.top + 6, 'text-anchor': 'middle' }, label),
        s('title', {}, marker.label)));
    }
    for (const t of onScale) {
      svg.append(s('line', { class: 'threshold', x1: MARGIN.left, x2: MARGIN.left + plotW, y1: sy(t.value), y2: sy(t.value) }),
        s('text', { class: 'threshold-label', x: MARGIN.left + plotW - 2, y: sy(t.value) - 4, 'text-anchor': 'end' }, t.label));
    }
    // Lines, areas and last points stay inside the plot: a domain narrower than the data
    // (a rollout's window) must not let them run over the axes and the legend.
    const pad = 4;
    const plotted = s('g', { class: 'plotted', 'clip-path': `url(#${this.clipId})` });
    svg.append(s('defs', {}, s('clipPath', { id: this.clipId },
      s('rect', { x: MARGIN.left - pad, y: MARGIN.top - pad, width: plotW + 2 * pad, height: plotH + 2 * pad }))), plotted);
    series.forEach((one, index) => {
      if (!one.points.length) return;
      const gap = Math.max(medianGap(one.points) * 3, 1e-9);
      let d = '';
      one.points.forEach(([x, y], i) => {
        const jump = i === 0 || x - one.points[i - 1][0] > gap;
        d += `${jump ? 'M' : 'L'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      });
      if (series.length === 1 && !one.dashed) {
        const first = one.points[0][0];
        const last = one.points[one.points.length - 1][0];
        const base = sy(Math.max(y0, 0));
        plotted.append(s('path', { class: 'area', fill: one.color, d: `${d}L${sx(last).toFixed(1)},${base}L${sx(first).toFixed(1)},${base}Z` }));
      }
      plotted.append(s('path', { class: ['series', one.dashed ? 'dashed' : ''].join(' '), stroke: one.color, d, 'data-series': one.label, 'data-index': index }));
      const [lx, ly] = one.points[one.points.length - 1];
      plotted.append(s('circle', { cx: sx(lx), cy: sy(ly), r: 2.8, fill: one.color }));
    });

    const cursor = s('g', { class: 'hidden-cursor' });
    const overlay = s('rect', { x: MARGIN.left, y: MARGIN.top, width: plotW, height: plotH, fill: 'transparent' });
    svg.append(cursor, overlay);
    overlay.addEventListener('mousemove', (event) => this.hover(event, svg, cursor, { sx, sy, x0, x1, plotW, plotH }));
    overlay.addEventListener('mouseleave', () => { cursor.replaceChildren(); this.tooltip.classList.add('hidden'); });
    replace(this.svgBox, svg);
  }

  drawLegend(series) {
    const { format } = this.opts;
    const retired = this.retired(series);
    replace(this.legend, series.map((one) => {
      const last = one.points[one.points.length - 1];
      if (retired.has(one)) { // its line is history: no "latest" value to show
        return h('span', { class: 'item retired', dataset: { series: one.label } },
          h('i', { style: { background: one.color } }), one.label, ' ', h('span', { class: 'faint' }, 'retired'));
      }
      return h('span', { class: 'item', dataset: { series: one.label } },
        h('i', { style: { background: one.color } }), one.label, ' ', h('b', last ? format(last[1]) : '—'));
    }));
  }

  /** On a time chart, the series that stopped well before the others (a retired variant). */
  retired(series) {
    if (this.opts.x !== 'time') return new Set();
    const ends = series.filter((one) => one.points.length).map((one) => one.points[one.points.length - 1][0]);
    if (!ends.length) return new Set();
    const latest = Math.max(...ends);
    return new Set(series.filter((one) => {
      if (!one.points.length) return false;
      const gap = Math.max(medianGap(one.points), 1);
      return one.points[one.points.length - 1][0] < latest - 3 * gap;
    }));
  }

  hover(event, svg, cursor, geometry) {
    const { sx, sy, x0, x1, plotW, plotH } = geometry;
    const box = svg.getBoundingClientRect();
    const x = x0 + ((event.clientX - box.left - MARGIN.left) / plotW) * (x1 - x0);
    const found = this.data.series.filter((one) => one.points.length).map((one) => ({ one, point: one.points[nearest(one.points, x)] }));
    if (!found.length) return;
    const at = found.reduce((best, f) => (Math.abs(f.point[0] - x) < Math.abs(best - x) ? f.point[0] : best), found[0].point[0]);
    cursor.replaceChildren(s('line', { class: 'cursor', x1: sx(at), x2: sx(at), y1: MARGIN.top, y2: MARGIN.top + plotH }),
      ...found.map((f) => s('circle', { cx: sx(f.point[0]), cy: sy(f.point[1]), r: 3.5, fill: f.one.color, stroke: 'var(--surface)', 'stroke-width': 1.5 })));
    const title = this.opts.x === 'time' ? clock(at) : `${this.opts.xLabel || 'step'} ${number(at)}`;
    replace(this.tooltip, h('div', { class: 't' }, title),
      found.map((f) => h('div', { class: 'row' }, h('i', { style: { background: f.one.color } }), f.one.label, h('b', this.opts.format(f.point[1])))));
    this.tooltip.classList.remove('hidden');
    const origin = this.svgBox.offsetLeft;
    const flip = sx(at) + 14 + this.tooltip.offsetWidth > box.width;
    const left = flip ? origin + sx(at) - 14 - this.tooltip.offsetWidth : origin + sx(at) + 14;
    Object.assign(this.tooltip.style, { left: `${left}px`, top: `${this.svgBox.offsetTop + MARGIN.top + 8}px` });
  }
}
