// Every model: its newest version, its aliases, and when it was made.

import { api, path } from '../api.js';
import { h } from '../dom.js';
import { ago, iso } from '../format.js';
import { badge, pageHead, section, table } from '../ui.js';

export async function render(main) {
  const models = await api.get(path('models', { include_archived: true }));
  main.append(
    pageHead({ title: 'Models', subtitle: 'Named things that get better over time; each version is immutable.' }),
    section('All models', {}, h('div', { class: 'card' }, table([
      { label: 'Model', render: (m) => h('a', { href: `/ui/models/${encodeURIComponent(m.name)}` }, h('b', m.name)) },
      { label: 'Latest', num: true, render: (m) => (m.latest_version ? `v${m.latest_version}` : '—') },
      { label: 'Aliases', render: (m) => Object.entries(m.aliases).map(([a, v]) => h('span', { class: 'alias' }, `${a} → v${v}`)) },
      { label: 'Description', render: (m) => h('span', { class: 'muted' }, m.description) },
      { label: 'Created', render: (m) => h('span', { class: 'nowrap', title: iso(m.created_at) }, `${ago(m.created_at)} by ${m.created_by}`) },
      { label: '', render: (m) => (m.archived_at ? badge('archived', '', { plain: true }) : null) },
    ], models, { empty: 'No models yet: ferryman train digits, or ferryman register model.onnx --model NAME.', testid: 'models' }))));
}
