// Single view: the timeline of the selected series (drag to zoom), then a
// flame graph and/or the function table, or the sandwich view of one
// function. The table and the sandwich come from Kiln's UI API, computed
// on the full merged profile, so they stay exact when the flame graph is
// truncated to max nodes.

import { kilnUi } from '../api.js';
import { clear, h, setStatus } from '../dom.js';
import { FlameGraph } from '../flamegraph/flamegraph.js';
import { compileSearch, decodeFlamegraph } from '../flamegraph/model.js';
import { formatCount, formatPercent, formatValue, valueName } from '../format.js';
import { Table } from '../table.js';
import { pointsOf, Timeline } from '../timeline.js';
import { exportMenu, fetchSeries, mainRange, matchText, queryOf, searchBox, unitOf } from './common.js';

const MODES = [['flame', 'Flame graph'], ['table', 'Table'], ['both', 'Both'], ['sandwich', 'Sandwich']];

/** An exact-name search (`/^name$/`) for a function. */
export function exactSearch(name) {
  return `/^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$/`;
}

export class SingleView {
  constructor(root, store) {
    this.store = store;
    this.timelineBox = h('div');
    this.modeButtons = h('div', { class: 'seg', role: 'group', 'aria-label': 'Display' }, MODES.map(([k, label]) =>
      h('button', { type: 'button', 'data-mode': k, 'aria-pressed': 'false', onclick: () => store.set({ view: k }, { push: true }) }, label)));
    this.search = searchBox(store, (text) => this.applySearch(text));
    this.palette = h('select', { 'aria-label': 'Colours', 'data-testid': 'palette-select', onchange: (e) => store.set({ palette: e.target.value }) },
      h('option', { value: 'package' }, 'Colour by package'), h('option', { value: 'value' }, 'Colour by value'));
    this.maxNodes = h('input', {
      type: 'number', min: '1', step: '1', style: { width: '100px' }, 'data-testid': 'max-nodes', 'aria-label': 'Max nodes',
      title: 'Largest number of nodes in the flame graph. Smaller callees are folded into "other" nodes; the table and sandwich stay exact.',
      onchange: (e) => store.set({ maxNodes: e.target.value && Number(e.target.value) > 0 ? String(Math.floor(Number(e.target.value))) : '' }, { push: true }),
    });
    this.summary = h('div', { class: 'summary', 'data-testid': 'summary' });
    this.notice = h('div', { class: 'notice', hidden: true, 'data-testid': 'truncation-notice' });
    this.tableBox = h('div');
    this.fgBox = h('div');
    this.sandwichBox = h('div', { hidden: true, 'data-testid': 'sandwich' });
    this.content = h('div', { class: 'split' }, this.tableBox, this.fgBox, this.sandwichBox);
    root.append(
      h('section', { class: 'panel' }, this.timelineBox),
      h('section', { class: 'panel' },
        h('div', { class: 'toolbar' }, this.modeButtons, this.search.el, h('span', { class: 'spacer' }), this.palette,
          h('label', { class: 'muted' }, 'Max nodes ', this.maxNodes),
          exportMenu(() => ({ state: store.state, flamegraph: this.fg, raw: this.raw, query: this.query }))),
        this.summary, this.notice, this.content),
    );
    this.timeline = new Timeline(this.timelineBox, {
      testId: 'timeline', height: 110, caption: 'Drag on the timeline to zoom into a time range',
      onSelect: (a, b) => store.set({ from: String(a), until: String(b) }, { push: true }),
    });
    this.fg = new FlameGraph(this.fgBox, {
      testId: 'flamegraph',
      onFocus: (path) => store.set({ focus: path.join(';') }),
      onSandwich: (name) => store.set({ view: 'sandwich', sandwich: name }, { push: true }),
      onHighlight: (name) => this.highlight(name),
    });
    this.table = new Table(this.tableBox, {
      testId: 'function-table',
      columns: [
        { key: 'name', title: 'Function', mono: true, numeric: false },
        { key: 'self', title: 'Self', numeric: true, width: '150px', render: (r) => this.cell(r.self), bar: (r) => r.self / (this.total || 1) },
        { key: 'total', title: 'Total', numeric: true, width: '150px', render: (r) => this.cell(r.total), bar: (r) => r.total / (this.total || 1) },
      ],
      sort: { key: 'self', desc: true },
      rowData: (r) => ({ name: r.name, self: r.self, total: r.total }),
      onRowClick: (r) => (store.state.view === 'sandwich' ? store.set({ sandwich: r.name }, { push: true }) : this.highlight(r.name)),
      actions: [{ label: 'sandwich', title: 'Sandwich view: callers and callees', testId: 'row-sandwich', onClick: (r) => store.set({ view: 'sandwich', sandwich: r.name }, { push: true }) }],
    });
    this.themeListener = () => { this.fg.redraw(); this.callers?.redraw(); this.callees?.redraw(); };
    window.addEventListener('kiln-theme', this.themeListener);
  }

  destroy() {
    window.removeEventListener('kiln-theme', this.themeListener);
    this.fg.destroy();
    this.timeline.destroy();
    this.callers?.destroy();
    this.callees?.destroy();
  }

  cell(v) {
    return `${formatValue(v, this.unit)} · ${formatPercent(v / (this.total || 1))}`;
  }

  highlight(name) {
    const search = exactSearch(name);
    const next = this.store.state.search === search ? '' : search;
    this.search.input.value = next;
    this.applySearch(next);
    this.store.set({ search: next });
  }

  applySearch(text) {
    const matcher = compileSearch(text);
    this.fg.setDisplay({ search: matcher });
    this.callers?.setDisplay({ search: matcher });
    this.callees?.setDisplay({ search: matcher });
    this.table.setFilter(matcher ? (r) => matcher(r.name) : null);
    this.search.info.textContent = matchText(this.fg.searchStats());
  }

  update(state) {
    for (const b of this.modeButtons.querySelectorAll('button')) b.setAttribute('aria-pressed', String(b.dataset.mode === state.view));
    this.palette.value = state.palette;
    this.maxNodes.value = state.maxNodes;
    if (document.activeElement !== this.search.input) this.search.input.value = state.search;
    const mode = state.view;
    this.tableBox.hidden = !(mode === 'table' || mode === 'both' || mode === 'sandwich');
    this.fgBox.hidden = !(mode === 'flame' || mode === 'both');
    this.sandwichBox.hidden = mode !== 'sandwich';
    this.content.className = mode === 'both' || mode === 'sandwich' ? 'split' : '';
    if (!state.service || !state.type) {
      this.summary.textContent = 'No data: pick a service, or widen the time range.';
      return;
    }
    const { start, end } = mainRange(state);
    const key = JSON.stringify([state.service, state.type, state.filters, state.from, state.until, state.maxNodes, this.store.refreshCount]);
    if (key !== this.key) {
      this.key = key;
      this.load(state, start, end, key).catch((e) => this.fail(e));
    } else {
      this.applyDisplay(state);
    }
  }

  fail(e) {
    this.summary.textContent = '';
    this.summary.append(h('span', { class: 'error' }, `Query failed: ${e.message}`));
    setStatus(e.message, 'error');
  }

  async load(state, start, end, key) {
    const { unit, sampleType } = unitOf(state);
    this.unit = unit;
    this.query = queryOf(state, start, end);
    this.summary.replaceChildren(h('span', { class: 'spinner' }), ' Loading…');
    const [series, resp] = await Promise.all([
      fetchSeries(state, start, end),
      kilnUi('Table', { ...this.query, flamegraph: true }),
    ]);
    if (key !== this.key) return;
    this.timeline.setData(series.map((s) => ({ points: pointsOf(s) })), start, end, unit);
    this.raw = resp.flamegraph;
    this.total = resp.total;
    this.truncation = resp.truncation;
    const model = decodeFlamegraph(resp.flamegraph || {});
    this.fg.setData(model, { unit, sampleType, truncation: resp.truncation });
    this.table.setRows(resp.rows || []);
    this.summary.textContent = resp.total
      ? `${valueName(unit, sampleType)}: ${formatValue(resp.total, unit)} in all · ${formatCount(resp.rows.length)} functions · ${formatCount(resp.truncation?.nodes || 0)} nodes`
      : 'No profiles match in this time range.';
    this.summary.dataset.total = String(resp.total);
    const t = resp.truncation;
    if (t && t.folded > 0) {
      this.notice.hidden = false;
      this.notice.textContent = `Showing ${formatCount(t.kept + t.otherNodes)} of ${formatCount(t.nodes)} nodes (max nodes ${t.maxNodes}): `
        + `${formatCount(t.folded)} nodes below ${formatValue(t.threshold, unit)} are folded into ${t.otherNodes} "other" node${t.otherNodes === 1 ? '' : 's'} `
        + `(${formatPercent(t.otherTotal / (resp.total || 1))} of the total). The table and sandwich view use the full profile.`;
    } else {
      this.notice.hidden = true;
    }
    this.sandwichKey = null;
    this.applyDisplay(state, true);
  }

  applyDisplay(state, fresh = false) {
    const matcher = compileSearch(state.search);
    this.fg.setDisplay({ search: matcher, mode: state.palette });
    if (fresh || (state.focus || '') !== (this.appliedFocus || '')) {
      this.fg.setFocusPath(state.focus ? state.focus.split(';') : []);
      this.appliedFocus = state.focus;
    }
    this.table.setFilter(matcher ? (r) => matcher(r.name) : null);
    this.table.select(state.view === 'sandwich' ? state.sandwich : null);
    this.search.info.textContent = matchText(this.fg.searchStats());
    if (state.view === 'sandwich') this.loadSandwich(state).catch((e) => this.fail(e));
  }

  async loadSandwich(state) {
    const fn = state.sandwich;
    const key = `${this.key}|${fn}`;
    if (key === this.sandwichKey) return;
    this.sandwichKey = key;
    const box = clear(this.sandwichBox);
    if (!fn) {
      box.append(h('div', { class: 'empty' }, 'Pick a function in the table (or right-click a frame) to see its callers and callees.'));
      return;
    }
    box.append(h('div', { class: 'muted' }, h('span', { class: 'spinner' }), ` Loading the sandwich of ${fn}…`));
    const resp = await kilnUi('Sandwich', { ...this.query, function: fn });
    if (key !== this.sandwichKey) return;
    clear(box);
    const { unit, sampleType } = unitOf(state);
    const callersBox = h('div');
    const calleesBox = h('div');
    box.append(
      h('h2', { 'data-testid': 'sandwich-title' }, `${fn}`, h('span', { class: 'muted' }, ` total ${formatValue(resp.total, unit)} (${formatPercent(resp.total / (this.total || 1))}), self ${formatValue(resp.self, unit)}`),
        h('button', { type: 'button', style: { marginLeft: 'auto' }, 'data-testid': 'sandwich-close', onclick: () => this.store.set({ view: 'both', sandwich: '' }, { push: true }) }, '× Close')),
      h('div', { class: 'muted' }, 'Callers (read upwards)'), callersBox,
      h('div', { class: 'muted', style: { marginTop: '8px' } }, 'Callees'), calleesBox,
    );
    this.callers?.destroy();
    this.callees?.destroy();
    const onSandwich = (name) => this.store.set({ sandwich: name }, { push: true });
    this.callers = new FlameGraph(callersBox, { testId: 'sandwich-callers', inverted: true, maxHeight: 300, onSandwich });
    this.callees = new FlameGraph(calleesBox, { testId: 'sandwich-callees', maxHeight: 300, onSandwich });
    const matcher = compileSearch(state.search);
    this.callers.setData(decodeFlamegraph(resp.callers), { unit, sampleType });
    this.callees.setData(decodeFlamegraph(resp.callees), { unit, sampleType });
    this.callers.setDisplay({ search: matcher, mode: state.palette });
    this.callees.setDisplay({ search: matcher, mode: state.palette });
  }
}
