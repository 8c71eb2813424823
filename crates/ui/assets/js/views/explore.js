// Tag Explorer: break the selected series down by one label. A chart with
// one line per value (the 9 largest; the rest summed as "other"), a table
// of each value's average, standard deviation, total and share, and the
// flame graph of the value clicked in the table.

import { querier } from '../api.js';
import { cssColor, PACKAGE_PALETTE } from '../colors.js';
import { h, setStatus } from '../dom.js';
import { FlameGraph } from '../flamegraph/flamegraph.js';
import { decodeFlamegraph } from '../flamegraph/model.js';
import { formatPercent, formatValue } from '../format.js';
import { selectorOf, withMatcher } from '../state.js';
import { Table } from '../table.js';
import { pointsOf, Timeline } from '../timeline.js';
import { fetchSeries, mainRange, queryOf, unitOf } from './common.js';

const TOP = 9;
const COLORS = [0, 6, 2, 9, 4, 7, 1, 10, 5].map((i) => cssColor(PACKAGE_PALETTE[i]));
const OTHER_COLOR = 'rgb(150, 150, 160)';

/** Average, population standard deviation and sum of values. */
export function stats(values) {
  const n = values.length;
  const total = values.reduce((a, b) => a + b, 0);
  const avg = n ? total / n : 0;
  const variance = n ? values.reduce((a, v) => a + (v - avg) ** 2, 0) / n : 0;
  return { avg, stddev: Math.sqrt(variance), total };
}

export class ExploreView {
  constructor(root, store) {
    this.store = store;
    this.groupBy = h('select', { 'aria-label': 'Group by label', 'data-testid': 'groupby-select', onchange: (e) => store.set({ groupBy: e.target.value, groupValue: '' }, { push: true }) });
    this.chartBox = h('div');
    this.tableBox = h('div');
    this.detail = h('section', { class: 'panel', hidden: true, 'data-testid': 'explore-detail' });
    this.summary = h('div', { class: 'summary' });
    root.append(
      h('section', { class: 'panel' },
        h('div', { class: 'toolbar' }, h('label', { class: 'muted' }, 'Group by ', this.groupBy), this.summary),
        this.chartBox),
      h('section', { class: 'panel' }, this.tableBox),
      this.detail,
    );
    this.timeline = new Timeline(this.chartBox, { testId: 'explore-timeline', height: 160, caption: 'Each value of the label over time (drag to zoom)', onSelect: (a, b) => store.set({ from: String(a), until: String(b) }, { push: true }) });
    this.table = new Table(this.tableBox, {
      testId: 'explore-table',
      height: 300,
      columns: [
        { key: 'value', title: 'Value', mono: true, numeric: false, render: (r) => `● ${r.value}` },
        { key: 'avg', title: 'Average', numeric: true, render: (r) => formatValue(r.avg, this.unit) },
        { key: 'stddev', title: 'Std. deviation', numeric: true, render: (r) => formatValue(r.stddev, this.unit) },
        { key: 'total', title: 'Total', numeric: true, render: (r) => formatValue(r.total, this.unit), bar: (r) => r.share },
        { key: 'share', title: 'Share', numeric: true, render: (r) => formatPercent(r.share) },
      ],
      sort: { key: 'total', desc: true },
      rowData: (r) => ({ value: r.value, total: r.total }),
      onRowClick: (r) => store.set({ groupValue: r.value === this.store.state.groupValue ? '' : r.value }, { push: true }),
    });
    this.themeListener = () => this.fg?.redraw();
    window.addEventListener('kiln-theme', this.themeListener);
  }

  destroy() {
    window.removeEventListener('kiln-theme', this.themeListener);
    this.timeline.destroy();
    this.fg?.destroy();
  }

  async labelNames(state, start, end) {
    const selector = selectorOf(state.service, [{ name: '__profile_type__', op: '=', value: state.type }]);
    const resp = await querier('LabelNames', { matchers: [selector], start, end });
    return (resp.names || []).filter((n) => !n.startsWith('__') && n !== 'service_name');
  }

  update(state) {
    if (!state.service || !state.type) return;
    const { start, end } = mainRange(state);
    this.unit = unitOf(state).unit;
    const key = JSON.stringify([state.service, state.type, state.filters, state.from, state.until, state.groupBy, this.store.refreshCount]);
    if (key !== this.key) {
      this.key = key;
      this.load(state, start, end, key).catch((e) => setStatus(e.message, 'error'));
    } else {
      this.showDetail(state, start, end);
    }
  }

  async load(state, start, end, key) {
    const names = await this.labelNames(state, start, end);
    if (key !== this.key) return;
    this.groupBy.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (!names.length) {
      this.summary.textContent = 'These series have no labels to group by.';
      return;
    }
    if (!state.groupBy || !names.includes(state.groupBy)) {
      this.store.set({ groupBy: names.includes('env') ? 'env' : names[0] });
      return;
    }
    this.groupBy.value = state.groupBy;
    const series = await fetchSeries(state, start, end, [state.groupBy]);
    if (key !== this.key) return;
    const rows = series.map((s) => {
      const label = (s.labels || []).find((l) => l.name === state.groupBy);
      const points = pointsOf(s);
      return { value: label ? label.value : '(none)', points, ...stats(points.map((p) => p[1])) };
    });
    const sum = rows.reduce((a, r) => a + r.total, 0);
    rows.sort((a, b) => b.total - a.total);
    rows.forEach((r, k) => {
      r.share = sum ? r.total / sum : 0;
      r.color = k < TOP ? COLORS[k] : OTHER_COLOR;
    });
    const lines = rows.slice(0, TOP).map((r) => ({ points: r.points, color: r.color, label: r.value }));
    if (rows.length > TOP) {
      const other = new Map();
      for (const r of rows.slice(TOP)) for (const [t, v] of r.points) other.set(t, (other.get(t) || 0) + v);
      lines.push({ points: [...other.entries()].sort((a, b) => a[0] - b[0]), color: OTHER_COLOR, label: 'other' });
    }
    this.timeline.setData(lines, start, end, this.unit);
    this.rows = rows;
    this.table.setRows(rows);
    this.summary.textContent = `${rows.length} value${rows.length === 1 ? '' : 's'} of ${state.groupBy}`;
    this.colorRows();
    this.showDetail(state, start, end);
  }

  colorRows() {
    // The dot before each value takes the colour of its line.
    const byValue = new Map((this.rows || []).map((r) => [r.value, r.color]));
    const paint = () => {
      for (const row of this.table.root.querySelectorAll('.row')) {
        const cell = row.querySelector('.cell');
        if (cell) cell.style.color = byValue.get(row.dataset.value) || '';
      }
    };
    paint();
    if (!this.painting) {
      this.painting = new MutationObserver(paint);
      this.painting.observe(this.table.inner, { childList: true });
    }
  }

  showDetail(state, start, end) {
    this.table.select(state.groupValue || null);
    if (!state.groupValue) {
      this.detail.hidden = true;
      return;
    }
    const key = JSON.stringify([this.key, state.groupValue, state.maxNodes]);
    if (key === this.detailKey) return;
    this.detailKey = key;
    this.detail.hidden = false;
    const matcher = { name: state.groupBy, op: '=', value: state.groupValue };
    const fgBox = h('div');
    const single = h('button', {
      type: 'button', 'data-testid': 'explore-open-single',
      onclick: () => this.store.go('single', { filters: withMatcher(state.filters, matcher), groupValue: '', focus: '' }),
    }, 'Open in Single view');
    const title = h('h2', { 'data-testid': 'explore-detail-title' }, `${state.groupBy} = ${state.groupValue}`, single);
    this.detail.replaceChildren(title, fgBox);
    this.fg?.destroy();
    this.fg = new FlameGraph(fgBox, { testId: 'explore-flamegraph', maxHeight: 480 });
    const { unit, sampleType } = unitOf(state);
    querier('SelectMergeStacktraces', queryOf(state, start, end, [matcher])).then((resp) => {
      if (key !== this.detailKey) return;
      this.fg.setData(decodeFlamegraph(resp.flamegraph || {}), { unit, sampleType });
      this.fg.setDisplay({ mode: state.palette });
    }).catch((e) => setStatus(e.message, 'error'));
  }
}
