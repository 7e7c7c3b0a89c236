// The control API (/api/v1) as the dashboard calls it: same-origin, the session cookie, and
// the CSRF token on every change. Routes this control plane does not serve are known from
// its OpenAPI document, so a page can show "not available" instead of failing. Every call
// tells the live indicator whether the control plane answered.

import { heartbeat } from './live.js';

const csrfToken = document.querySelector('meta[name="ferryman-csrf"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function toLogin() {
  const here = window.location.pathname + window.location.search;
  window.location.assign(`/ui/login?next=${encodeURIComponent(here)}`);
}

async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    const failure = new ApiError(0, `the control plane does not answer (${error.message})`);
    heartbeat(false, failure);
    throw failure;
  }
  heartbeat(response.status < 500);
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, 'the session has ended; log in again');
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.error ?? `${response.status} ${response.statusText}`);
  return data;
}

/** '/api/v1/endpoints/' + encoded segments + query: path('endpoints', name, 'payloads', {limit: 5}). */
export function path(...parts) {
  const query = typeof parts[parts.length - 1] === 'object' ? parts.pop() : null;
  let url = `/api/v1/${parts.map((p) => encodeURIComponent(String(p))).join('/')}`;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  return url;
}

export const api = {
  get: (url) => request('GET', url),
  post: (url, body = {}) => request('POST', url, body),
  put: (url, body) => request('PUT', url, body),
};

let routes;

/** True when this control plane serves METHOD at the templated path ('/api/v1/rollouts/{id}'). */
export async function serves(method, template) {
  if (!routes) {
    routes = fetch('/openapi.json', { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .then((doc) => {
        const found = new Set();
        for (const [p, operations] of Object.entries(doc.paths ?? {})) {
          for (const m of Object.keys(operations)) found.add(`${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, '{}')}`);
        }
        return found;
      })
      .catch(() => new Set());
  }
  return (await routes).has(`${method} ${template.replace(/\{[^}]+\}/g, '{}')}`);
}
