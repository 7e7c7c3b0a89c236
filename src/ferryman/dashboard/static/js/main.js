// The dashboard's shell: routing between pages without reloads, the live indicator, logout.

import { ApiError } from './api.js';
import { h, replace } from './dom.js';
import { onHeartbeat } from './live.js';
import { notice, toast } from './ui.js';
import * as endpointPage from './pages/endpoint.js';
import * as eventsPage from './pages/events.js';
import * as modelPage from './pages/model.js';
import * as modelsPage from './pages/models.js';
import * as overviewPage from './pages/overview.js';
import * as rolloutsPage from './pages/rollouts.js';

const ROUTES = [
  [/^\/ui\/?$/, overviewPage, 'overview'],
  [/^\/ui\/endpoints\/([^/]+)\/?$/, endpointPage, 'overview'],
  [/^\/ui\/models\/?$/, modelsPage, 'models'],
  [/^\/ui\/models\/([^/]+)\/?$/, modelPage, 'models'],
  [/^\/ui\/rollouts\/?$/, rolloutsPage, 'rollouts'],
  [/^\/ui\/rollouts\/(\d+)\/?$/, rolloutsPage, 'rollouts'],
  [/^\/ui\/events\/?$/, eventsPage, 'events'],
];

const main = document.getElementById('main');
let cleanups = [];

/** What a page gets: where to draw, and a place to register what to stop when it is left. */
function context() {
  return {
    onLeave: (fn) => cleanups.push(fn),
    go: (url) => navigate(url),
  };
}

async function route() {
  for (const fn of cleanups.splice(0)) {
    try { fn(); } catch { /* a page's cleanup must not stop the next page */ }
  }
  const here = window.location.pathname;
  const found = ROUTES.find(([pattern]) => pattern.test(here));
  for (const link of document.querySelectorAll('.topbar nav a')) {
    link.classList.toggle('active', Boolean(found) && link.dataset.nav === found[2]);
  }
  replace(main);
  if (!found) {
    main.append(notice(['No page at ', h('code', here), '. ', h('a', { href: '/ui/' }, 'Go to the overview'), '.']));
    return;
  }
  const [pattern, page] = found;
  const params = (here.match(pattern) ?? []).slice(1).map(decodeURIComponent);
  try {
    await page.render(main, params, context());
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    main.append(notice(error.message, 'error'));
  }
}

function navigate(url) {
  if (url !== window.location.pathname + window.location.search) window.history.pushState({}, '', url);
  window.scrollTo(0, 0);
  route();
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="/ui/"]');
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || link.target) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', route);

const live = document.getElementById('live');
let lastOk = 0;
onHeartbeat((ok, error) => {
  if (ok) lastOk = Date.now();
  live.classList.toggle('ok', ok);
  live.classList.toggle('down', !ok);
  replace(live.querySelector('.text'), ok ? 'Live' : `Unreachable: ${error?.message ?? 'no answer'}`);
});
setInterval(() => {
  if (lastOk && Date.now() - lastOk > 10000) {
    live.classList.remove('ok');
    replace(live.querySelector('.text'), `Last update ${Math.round((Date.now() - lastOk) / 1000)} s ago`);
  }
}, 2000);

// A viewer's session may only read: the buttons that change things are hidden (the server
// refuses them with 403 regardless).
const role = document.querySelector('meta[name="ferryman-role"]')?.content ?? 'admin';
document.body.classList.toggle('read-only', role === 'viewer');
document.body.dataset.role = role;

document.getElementById('logout').addEventListener('click', async () => {
  const csrf = document.querySelector('meta[name="ferryman-csrf"]')?.content ?? '';
  try {
    const answer = await fetch('/ui/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' });
    if (!answer.ok && answer.status !== 401) throw new Error(`logout answered ${answer.status}`);
    window.location.assign('/ui/login');
  } catch (error) {
    toast(`Could not log out: ${error.message}`, 'error');
  }
});

route();
