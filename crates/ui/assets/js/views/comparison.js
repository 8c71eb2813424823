// Comparison view: baseline and comparison side by side. Each side has a
// timeline over the main range on which a drag chooses its range, and a
// flame graph of that range; one search box highlights both graphs.

import { querier } from '../api.js';
import { h, setStatus } from '../dom.js';
import { FlameGraph } from '../flamegraph/flamegraph.js';
import { compileSearch, decodeFlamegraph, matchStats } from '../flamegraph/model.js';
import { formatValue, localDateTime } from '../format.js';
import { pointsOf, Timeline } from '../timeline.js';
import { fetchSeries, mainRange, matchText, queryOf, searchBox, sideRanges, unitOf } from './common.js';

const SIDES = [
  ['left', 'Baseline', 'baseline'],
  ['right', 'Comparison', 'comparison'],
];

export class ComparisonView {
  constructor(root, store) {
    this.store = store;
    this.search = searchBox(store, (text) => this.applySearch(text));
    this.palette = h('select', { 'aria-label': 'Colours', onchange: (e) => store.set({ palette: e.target.value }) },
      h('option', { value: 'package' }, 'Colour by package'), h('option', { value: 'value' }, 'Colour by value'));
    this.sides = {};
    const columns = h('div', { class: 'columns' });
    for (const [side, title, kind] of SIDES) {
      const timelineBox = h('div');
      const fgBox = h('div');
      const range = h('span', { class: 'muted', 'data-testid': `${side}-range` });
      const summary = h('div', { class: 'summary', 'data-testid': `${side}-summary` });
      columns.append(h('section', { class: 'panel', 'data-testid': `${side}-panel` },
        h('h2', {}, h('span', { class: 'swatch', style: { background: `var(--${kind}-line)` } }), title, range),
        timelineBox, summary, fgBox));
      const timeline = new Timeline(timelineBox, {
        testId: `timeline-${side}`, height: 90, caption: `Drag to choose the ${title.toLowerCase()} range`,
        onSelect: (a, b) => store.set({ [`${side}From`]: String(a), [`${side}Until`]: String(b) }, { push: true }),
      });
      const fg = new FlameGraph(fgBox, { testId: `flamegraph-${side}`, maxHeight: 520 });
      this.sides[side] = { timeline, fg, range, summary, kind };
    }
    root.append(
      h('section', { class: 'panel' }, h('div', { class: 'toolbar' }, this.search.el, h('span', { class: 'muted' }, 'search applies to both sides'), h('span', { class: 'spacer' }), this.palette)),
      columns,
    );
    this.themeListener = () => Object.values(this.sides).forEach((s) => s.fg.redraw());
    window.addEventListener('kiln-theme', this.themeListener);
  }

  destroy() {
    window.removeEventListener('kiln-theme', this.themeListener);
    for (const s of Object.values(this.sides)) {
      s.fg.destroy();
      s.timeline.destroy();
    }
  }

  applySearch(text) {
    const matcher = compileSearch(text);
    const parts = [];
    for (const [side, title] of SIDES) {
      const s = this.sides[side];
      s.fg.setDisplay({ search: matcher });
      const st = s.fg.model && s.fg.display.matches ? matchStats(s.fg.model, s.fg.display.matches) : null;
      if (st) parts.push(`${title.toLowerCase()}: ${matchText(st)}`);
    }
    this.search.info.textContent = parts.join(' — ');
  }

  update(state) {
    this.palette.value = state.palette;
    if (document.activeElement !== this.search.input) this.search.input.value = state.search;
    if (!state.service || !state.type) return;
    const now = Date.now();
    const { start, end } = mainRange(state, now);
    const ranges = sideRanges(state, now);
    const { unit, sampleType } = unitOf(state);
    const base = JSON.stringify([state.service, state.type, state.filters, state.from, state.until, this.store.refreshCount]);
    if (base !== this.seriesKey) {
      this.seriesKey = base;
      fetchSeries(state, start, end).then((series) => {
        for (const s of Object.values(this.sides)) s.timeline.setData(series.map((x) => ({ points: pointsOf(x) })), start, end, unit);
      }).catch((e) => setStatus(e.message, 'error'));
    }
    const selections = [
      { from: ranges.left.start, until: ranges.left.end, kind: 'baseline' },
      { from: ranges.right.start, until: ranges.right.end, kind: 'comparison' },
    ];
    for (const [side] of SIDES) {
      const s = this.sides[side];
      s.timeline.setSelections(selections.filter((x) => x.kind === s.kind));
      const r = ranges[side];
      s.range.textContent = `${localDateTime(r.start)} → ${localDateTime(r.end)}`;
      const key = JSON.stringify([base, r.start, r.end, state.maxNodes]);
      if (key !== s.key) {
        s.key = key;
        s.summary.replaceChildren(h('span', { class: 'spinner' }), ' Loading…');
        querier('SelectMergeStacktraces', queryOf(state, r.start, r.end)).then((resp) => {
          if (key !== s.key) return;
          const model = decodeFlamegraph(resp.flamegraph || {});
          s.fg.setData(model, { unit, sampleType });
          s.summary.textContent = model.total ? `Total ${formatValue(model.total, unit)}` : 'No profiles in this range.';
          s.summary.dataset.total = String(model.total);
          this.applySearch(state.search);
          s.fg.setDisplay({ mode: state.palette });
        }).catch((e) => {
          s.summary.textContent = `Query failed: ${e.message}`;
          setStatus(e.message, 'error');
        });
      } else {
        s.fg.setDisplay({ mode: state.palette });
      }
    }
    this.applySearch(state.search);
  }
}
