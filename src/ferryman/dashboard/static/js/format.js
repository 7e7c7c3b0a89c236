// Numbers, units and times as people read them. Missing values are an em dash.

export const DASH = '—';

const missing = (v) => v === null || v === undefined || Number.isNaN(v);

export function toDate(value) {
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value * 1000);
  if (typeof value === 'string') {
    // Times without a zone are UTC (the API's convention).
    const zoned = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
    return new Date(zoned);
  }
  return null;
}

export function number(v, digits = 2) {
  if (missing(v)) return DASH;
  const abs = Math.abs(v);
  if (abs >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (abs >= 100 || Number.isInteger(v)) return String(Math.round(v));
  if (abs >= 10) return trim(v.toFixed(1));
  return trim(v.toFixed(digits));
}

/** '1.200' → '1.2', '0.50' → '0.5', '3.0' → '3'. */
function trim(text) {
  return text.includes('.') ? text.replace(/\.?0+$/, '') : text;
}

export const qps = (v) => (missing(v) ? DASH : v >= 100 ? String(Math.round(v)) : v.toFixed(1));
export const ms = (v) => (missing(v) ? DASH : v >= 100 ? String(Math.round(v)) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

/** A ratio (0.0123) as a percentage (1.23%). */
export function pct(ratio, digits) {
  if (missing(ratio)) return DASH;
  const p = ratio * 100;
  const d = digits ?? (Math.abs(p) < 1 ? 2 : 1);
  return `${trim(p.toFixed(d))}%`;
}

export function bytes(n) {
  if (missing(n)) return DASH;
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

export function duration(seconds) {
  if (missing(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function ago(value) {
  const date = toDate(value);
  if (!date) return DASH;
  const s = (Date.now() - date.getTime()) / 1000;
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

const pad = (n) => String(n).padStart(2, '0');

export function clock(value, withSeconds = true) {
  const d = toDate(value);
  if (!d) return DASH;
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return withSeconds ? `${hm}:${pad(d.getSeconds())}` : hm;
}

export function datetime(value) {
  const d = toDate(value);
  if (!d) return DASH;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d, false)}`;
}

/** Full ISO time, for title attributes. */
export const iso = (value) => toDate(value)?.toISOString() ?? '';
