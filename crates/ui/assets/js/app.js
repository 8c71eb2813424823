// Entry point: the store (URL state), navigation between the four views,
// the query bar, theme, settings and upload.

import { h, setStatus } from './dom.js';
import { QueryBar } from './header.js';
import { openSettingsDialog } from './settings.js';
import { buildUrl, pageOfPath, parseQuery } from './state.js';
import { openUploadDialog } from './upload.js';
import { ComparisonView } from './views/comparison.js';
import { DiffView } from './views/diff.js';
import { ExploreView } from './views/explore.js';
import { SingleView } from './views/single.js';

const VIEWS = { single: SingleView, comparison: ComparisonView, diff: DiffView, explore: ExploreView };
const TITLES = { single: 'Single view', comparison: 'Comparison', diff: 'Diff', explore: 'Tag Explorer' };

/** The page path relative to the base (`''`, `'diff'`, ...). */
function relativePath() {
  const base = new URL(document.baseURI).pathname;
  const p = location.pathname;
  return p.startsWith(base) ? p.slice(base.length) : p.replace(/^\/+/, '');
}

/** Holds the page and its URL state; every change is written to the URL. */
class Store {
  constructor() {
    this.page = pageOfPath(relativePath());
    this.state = parseQuery(location.search);
    this.refreshCount = 0;
    this.listeners = [];
  }

  subscribe(fn) {
    this.listeners.push(fn);
  }

  emit(changed) {
    for (const fn of this.listeners) fn(changed);
  }

  writeUrl(push) {
    const url = new URL(buildUrl(this.page, this.state), document.baseURI);
    if (url.href === location.href) return;
    history[push ? 'pushState' : 'replaceState'](null, '', url);
  }

  /** Merges `patch` into the state; `push` adds a history entry. */
  set(patch, { push = false } = {}) {
    const changed = Object.keys(patch).filter((k) => this.state[k] !== patch[k]);
    if (!changed.length) return;
    Object.assign(this.state, patch);
    this.writeUrl(push);
    this.emit(changed);
  }

  /** Goes to another page, optionally changing state. */
  go(page, patch = {}) {
    this.page = page;
    Object.assign(this.state, patch);
    this.writeUrl(true);
    this.emit(['page', ...Object.keys(patch)]);
  }

  /** Reloads data (and re-resolves `now`). */
  refresh() {
    this.refreshCount++;
    this.emit(['refresh']);
  }

  fromLocation() {
    this.page = pageOfPath(relativePath());
    this.state = parseQuery(location.search);
    this.emit(['page', 'popstate']);
  }
}

const store = new Store();
const main = document.getElementById('view');
const bar = new QueryBar(document.getElementById('query-bar'), store);
let view = null;
let viewPage = null;
let syncing = 0;

async function render() {
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.closest('.views')) a.toggleAttribute('aria-current', pageOfPath(a.dataset.nav) === store.page);
    if (a.hasAttribute('aria-current')) a.setAttribute('aria-current', 'page');
  }
  document.title = `${TITLES[store.page]} · ${store.state.service || 'Kiln'} · Kiln`;
  if (viewPage !== store.page) {
    view?.destroy();
    main.replaceChildren();
    view = new VIEWS[store.page](main, store);
    viewPage = store.page;
  }
  const run = ++syncing;
  const patch = await bar.sync(store.state);
  if (run !== syncing) return;
  if (patch) {
    store.set(patch);
    return;
  }
  view.update(store.state);
}

store.subscribe(() => render().catch((e) => setStatus(e.message, 'error')));
window.addEventListener('popstate', () => store.fromLocation());

// Navigation links keep the query state (service, type, filters, range).
for (const a of document.querySelectorAll('[data-nav]')) {
  a.addEventListener('click', (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    store.go(pageOfPath(a.dataset.nav), { focus: '', sandwich: store.state.sandwich });
  });
}

function setTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try {
    localStorage.setItem('kiln.theme', theme);
  } catch {
    // storage unavailable: the theme lasts for this page
  }
  window.dispatchEvent(new Event('kiln-theme'));
}

document.getElementById('theme-button').addEventListener('click', () => {
  setTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark');
});
document.getElementById('settings-button').addEventListener('click', () => openSettingsDialog(() => {
  bar.cache.clear();
  store.refresh();
}));
document.getElementById('upload-button').addEventListener('click', () => openUploadDialog(store, bar));

// `/` focuses the search box of the view; `t` switches the theme.
document.addEventListener('keydown', (e) => {
  const tag = (e.target.tagName || '').toLowerCase();
  if (['input', 'select', 'textarea'].includes(tag) || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === '/') {
    const search = main.querySelector('[data-search]');
    if (search) {
      e.preventDefault();
      search.focus();
    }
  }
});

window.kiln = { store, h };
render().catch((e) => setStatus(e.message, 'error'));
