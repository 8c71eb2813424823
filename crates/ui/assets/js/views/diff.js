// Diff view: choose baseline and comparison ranges on two timelines; one
// diff flame graph with Pyroscope's colour semantics (width = both
// profiles, colour = relative change of each frame's share, clamped,
// green → grey → red) and its legend; a table with baseline, comparison
// and diff columns computed on the full profiles.

import { kilnUi } from '../api.js';
import { diffPercent } from '../colors.js';
import { clear, h, setStatus } from '../dom.js';
import { FlameGraph } from '../flamegraph/flamegraph.js';
import { compileSearch, decodeFlamegraph } from '../flamegraph/model.js';
import { formatChange, formatPercent, formatValue, localDateTime } from '../format.js';
import { Table } from '../table.js';
import { pointsOf, Timeline } from '../timeline.js';
import { diffLegendEl, fetchSeries, mainRange, matchText, queryOf, searchBox, sideRanges, unitOf } from './common.js';
import { exactSearch } from './single.js';

/** The diff-column value of a row: change of share in %, ±Infinity for new/removed. */
export function rowChange(r, leftTotal, rightTotal) {
  if (r.leftTotal === 0 && r.rightTotal > 0) return Infinity;
  if (r.rightTotal === 0 && r.leftTotal > 0) return -Infinity;
  return diffPercent(r.leftTotal, leftTotal, r.rightTotal, rightTotal);
}

export class DiffView {
  constructor(root, store) {
    this.store = store;
    this.search = searchBox(store, (text) => this.applySearch(text));
    this.legendBox = h('div');
    this.summary = h('div', { class: 'summary', 'data-testid': 'diff-summary' });
    this.fgBox = h('div');
    this.tableBox = h('div');
    this.timelines = {};
    this.ranges = {};
    const tl = h('div', { class: 'columns' });
    for (const [side, title, kind] of [['left', 'Baseline', 'baseline'], ['right', 'Comparison', 'comparison']]) {
      const box = h('div');
      const range = h('span', { class: 'muted', 'data-testid': `${side}-range` });
      tl.append(h('section', { class: 'panel' }, h('h2', {}, h('span', { class: 'swatch', style: { background: `var(--${kind}-line)` } }), title, range), box));
      this.ranges[side] = range;
      this.timelines[side] = new Timeline(box, {
        testId: `timeline-${side}`, height: 80, caption: `Drag to choose the ${title.toLowerCase()} range`,
        onSelect: (a, b) => store.set({ [`${side}From`]: String(a), [`${side}Until`]: String(b) }, { push: true }),
      });
      this.timelines[side].kind = kind;
    }
    root.append(tl, h('section', { class: 'panel' },
      h('div', { class: 'toolbar' }, this.search.el, h('span', { class: 'spacer' })),
      this.legendBox, this.summary,
      h('div', { class: 'split' }, this.tableBox, this.fgBox)));
    this.fg = new FlameGraph(this.fgBox, { testId: 'diff-flamegraph', onHighlight: (n) => this.highlight(n) });
    const pct = (v, t) => formatPercent(v / (t || 1));
    this.table = new Table(this.tableBox, {
      testId: 'diff-table',
      columns: [
        { key: 'name', title: 'Function', mono: true, numeric: false },
        { key: 'left', title: 'Baseline', numeric: true, value: (r) => r.leftTotal / (this.leftTotal || 1), render: (r) => pct(r.leftTotal, this.leftTotal) },
        { key: 'right', title: 'Comparison', numeric: true, value: (r) => r.rightTotal / (this.rightTotal || 1), render: (r) => pct(r.rightTotal, this.rightTotal) },
        {
          key: 'diff', title: 'Diff', numeric: true, value: (r) => rowChange(r, this.leftTotal, this.rightTotal),
          render: (r) => {
            const c = rowChange(r, this.leftTotal, this.rightTotal);
            return c === Infinity ? 'new' : c === -Infinity ? 'removed' : formatChange(c);
          },
        },
      ],
      sort: { key: 'diff', desc: true },
      rowData: (r) => ({ name: r.name, 'left-total': r.leftTotal, 'right-total': r.rightTotal }),
      onRowClick: (r) => this.highlight(r.name),
    });
    this.themeListener = () => this.fg.redraw();
    window.addEventListener('kiln-theme', this.themeListener);
  }

  destroy() {
    window.removeEventListener('kiln-theme', this.themeListener);
    this.fg.destroy();
    Object.values(this.timelines).forEach((t) => t.destroy());
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
    this.table.setFilter(matcher ? (r) => matcher(r.name) : null);
    this.search.info.textContent = matchText(this.fg.searchStats());
  }

  update(state) {
    if (document.activeElement !== this.search.input) this.search.input.value = state.search;
    clear(this.legendBox).append(diffLegendEl(this.store));
    this.fg.setDisplay({ clamp: Number(state.clamp) || 100, diffPalette: state.diffPalette });
    if (!state.service || !state.type) return;
    const now = Date.now();
    const { start, end } = mainRange(state, now);
    const ranges = sideRanges(state, now);
    const { unit, sampleType } = unitOf(state);
    this.unit = unit;
    const base = JSON.stringify([state.service, state.type, state.filters, state.from, state.until, this.store.refreshCount]);
    if (base !== this.seriesKey) {
      this.seriesKey = base;
      fetchSeries(state, start, end).then((series) => {
        for (const t of Object.values(this.timelines)) t.setData(series.map((x) => ({ points: pointsOf(x) })), start, end, unit);
      }).catch((e) => setStatus(e.message, 'error'));
    }
    for (const side of ['left', 'right']) {
      const r = ranges[side];
      this.timelines[side].setSelections([{ from: r.start, until: r.end, kind: this.timelines[side].kind }]);
      this.ranges[side].textContent = `${localDateTime(r.start)} → ${localDateTime(r.end)}`;
    }
    const key = JSON.stringify([base, ranges, state.maxNodes]);
    if (key === this.key) {
      this.applySearch(state.search);
      return;
    }
    this.key = key;
    this.summary.replaceChildren(h('span', { class: 'spinner' }), ' Loading…');
    const left = queryOf(state, ranges.left.start, ranges.left.end);
    const right = queryOf(state, ranges.right.start, ranges.right.end);
    kilnUi('DiffTable', { left, right, flamegraph: true }).then((resp) => {
      if (key !== this.key) return;
      this.leftTotal = resp.leftTotal;
      this.rightTotal = resp.rightTotal;
      this.fg.setData(decodeFlamegraph(resp.flamegraph), { unit, sampleType });
      this.table.setRows(resp.rows || []);
      this.summary.textContent = `Baseline ${formatValue(resp.leftTotal, unit)} · comparison ${formatValue(resp.rightTotal, unit)} · ${resp.rows.length} functions`;
      this.summary.dataset.left = String(resp.leftTotal);
      this.summary.dataset.right = String(resp.rightTotal);
      this.applySearch(state.search);
    }).catch((e) => {
      this.summary.textContent = `Query failed: ${e.message}`;
      setStatus(e.message, 'error');
    });
  }
}
