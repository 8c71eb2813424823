// Pieces shared by the views: queries from the URL state, the search box,
// the export menu and the diff legend.

import { mergedPprof, querier } from '../api.js';
import { cssColor, DIFF_PALETTES, diffLegend } from '../colors.js';
import { debounce, download, h, safeFileName, setStatus } from '../dom.js';
import { decodeFlamegraph, toFolded } from '../flamegraph/model.js';
import { formatPercent, parseProfileType, parseTime, stepSeconds } from '../format.js';
import { quoteValue, selectorOf } from '../state.js';

/** The query of the current state over `[start, end]` ms. */
export function queryOf(state, start, end, extraFilters = null) {
  let selector = selectorOf(state.service, state.filters);
  if (extraFilters && extraFilters.length) {
    const inner = selector.slice(1, -1);
    const more = extraFilters.map((m) => `${m.name}${m.op}${quoteValue(m.value)}`).join(',');
    selector = `{${[inner, more].filter(Boolean).join(',')}}`;
  }
  const q = { profileTypeID: state.type, labelSelector: selector, start: Math.floor(start), end: Math.ceil(end) };
  const maxNodes = Number(state.maxNodes);
  if (maxNodes > 0) q.maxNodes = maxNodes;
  return q;
}

/** The main range of a state, in ms. */
export function mainRange(state, now = Date.now()) {
  return { start: parseTime(state.from, now), end: parseTime(state.until, now) };
}

/**
 * The baseline and comparison ranges: from the URL when set, else the first
 * and last quarter of the main range.
 */
export function sideRanges(state, now = Date.now()) {
  const { start, end } = mainRange(state, now);
  const q = (end - start) / 4;
  const pick = (from, until, a, b) => ({
    start: from ? parseTime(from, now) : a,
    end: until ? parseTime(until, now) : b,
  });
  return {
    left: pick(state.leftFrom, state.leftUntil, start, start + q),
    right: pick(state.rightFrom, state.rightUntil, end - q, end),
  };
}

/** The unit and sample type of the state's profile type. */
export function unitOf(state) {
  const t = parseProfileType(state.type);
  return { unit: t.sampleUnit, sampleType: t.sampleType };
}

/** The total series of a query for a timeline (`SelectSeries`). */
export async function fetchSeries(state, start, end, groupBy = []) {
  const q = queryOf(state, start, end);
  const resp = await querier('SelectSeries', {
    profileTypeID: q.profileTypeID, labelSelector: q.labelSelector, start: q.start, end: q.end,
    groupBy, step: stepSeconds(start, end),
  });
  return resp.series || [];
}

/** A search box bound to `state.search`; `onChange(text)` runs on every edit. */
export function searchBox(store, onChange, testId = 'search-input') {
  const input = h('input', {
    type: 'search', placeholder: 'Search functions (text, /regex/, a,b)', 'aria-label': 'Search functions',
    'data-testid': testId, 'data-search': '', value: store.state.search, spellcheck: 'false',
  });
  const info = h('span', { class: 'muted', 'data-testid': 'search-match' });
  const push = debounce((v) => store.set({ search: v }), 200);
  input.addEventListener('input', () => {
    onChange(input.value);
    push(input.value);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') {
      input.value = '';
      onChange('');
      store.set({ search: '' });
    }
  });
  return { el: h('div', { class: 'search' }, input, info), input, info };
}

/** "matched 12.34 % of total in 5 frames", or ''. */
export function matchText(stats) {
  if (!stats) return '';
  return `matched ${formatPercent(stats.ratio)} of total · ${stats.nodes} frame${stats.nodes === 1 ? '' : 's'}`;
}

/** A dropdown menu button. */
export function menuButton(label, items, testId) {
  const menu = h('div', { class: 'menu', hidden: true, role: 'menu' });
  const button = h('button', { type: 'button', 'aria-haspopup': 'menu', 'data-testid': testId }, label);
  for (const [text, fn, id] of items) {
    menu.append(h('button', { type: 'button', role: 'menuitem', 'data-testid': id, onclick: () => { menu.hidden = true; fn(); } }, text));
  }
  button.addEventListener('click', () => { menu.hidden = !menu.hidden; });
  document.addEventListener('mousedown', (e) => { if (!menu.contains(e.target) && e.target !== button) menu.hidden = true; });
  return h('div', { class: 'menu-wrap' }, button, menu);
}

async function gzip(bytes) {
  if (typeof CompressionStream === 'undefined') return { data: bytes, gz: false };
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream('gzip'));
  return { data: new Uint8Array(await new Response(stream).arrayBuffer()), gz: true };
}

/**
 * The export menu of a single profile: PNG of the flame graph, JSON
 * (flamebearer, as Pyroscope exports it), pprof (`SelectMergeProfile`,
 * function and line level) and folded stacks (exact: fetched without
 * truncation up to the server's node limit).
 */
export function exportMenu(getContext) {
  const name = () => {
    const c = getContext();
    return safeFileName(`${c.state.service}-${parseProfileType(c.state.type).sampleType || 'profile'}`);
  };
  return menuButton('⤓ Export', [
    ['PNG image', async () => {
      const blob = await getContext().flamegraph.toPng();
      if (blob) download(`${name()}.png`, blob);
    }, 'export-png'],
    ['JSON (flamebearer)', () => {
      const c = getContext();
      const fg = c.raw;
      if (!fg) return;
      const doc = {
        version: 1,
        flamebearer: { names: fg.names, levels: fg.levels.map((l) => (Array.isArray(l) ? l : l.values.map(Number))), numTicks: Number(fg.total), maxSelf: Number(fg.maxSelf) },
        metadata: { format: 'single', units: unitOf(c.state).unit, name: c.state.type, service: c.state.service },
      };
      download(`${name()}.json`, JSON.stringify(doc), 'application/json');
    }, 'export-json'],
    ['pprof', async () => {
      const c = getContext();
      try {
        const bytes = new Uint8Array(await mergedPprof(c.query));
        const { data, gz } = await gzip(bytes);
        download(`${name()}.pb${gz ? '.gz' : ''}`, data);
      } catch (e) {
        setStatus(`pprof export failed: ${e.message}`, 'error');
      }
    }, 'export-pprof'],
    ['Folded stacks', async () => {
      const c = getContext();
      try {
        const resp = await querier('SelectMergeStacktraces', { ...c.query, maxNodes: 1048576 });
        download(`${name()}.folded.txt`, toFolded(decodeFlamegraph(resp.flamegraph || {})), 'text/plain');
      } catch (e) {
        setStatus(`folded export failed: ${e.message}`, 'error');
      }
    }, 'export-folded'],
  ], 'export-button');
}

/** The diff legend: what the colours mean, with palette and clamp choices. */
export function diffLegendEl(store) {
  const state = store.state;
  const clamp = Number(state.clamp) || 100;
  const palette = DIFF_PALETTES[state.diffPalette] ? state.diffPalette : 'default';
  const scale = h('div', { class: 'scale', 'aria-hidden': 'true' }, diffLegend(clamp, palette, 9).map((s) =>
    h('span', { style: { background: cssColor(s.color) } }, `${s.percent > 0 ? '+' : ''}${Math.round(s.percent)}%`)));
  const paletteSelect = h('select', { 'aria-label': 'Diff palette', 'data-testid': 'diff-palette', onchange: (e) => store.set({ diffPalette: e.target.value }) },
    Object.entries(DIFF_PALETTES).map(([k, p]) => h('option', { value: k }, p.name)));
  paletteSelect.value = palette;
  const clampSelect = h('select', { 'aria-label': 'Colour scale limit', 'data-testid': 'diff-clamp', onchange: (e) => store.set({ clamp: e.target.value }) },
    ['20', '50', '100', '200', '500'].map((v) => h('option', { value: v }, `±${v} %`)));
  clampSelect.value = String(clamp);
  return h('div', { class: 'legend', 'data-testid': 'diff-legend' },
    h('strong', {}, 'Legend'),
    h('span', { class: 'good' }, 'smaller share than baseline (better)'),
    scale,
    h('span', { class: 'bad' }, 'larger share (worse)'),
    h('span', { class: 'muted', title: 'Bar width: baseline + comparison. Colour: relative change of the frame\'s share of its profile\'s total, (comparison% − baseline%) / baseline%, clamped. New frames count as +100 %.' }, 'width = both profiles, colour = change of share'),
    paletteSelect, clampSelect);
}
