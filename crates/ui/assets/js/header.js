// The query bar: service and profile-type selectors, the label-filter
// editor with autocompletion of names and values, the time-range picker
// and the refresh button. It reads and writes the store's URL state.

import { querier } from './api.js';
import { clear, h, setStatus } from './dom.js';
import { describeRange, localDateTime, parseTime, profileTypeLabel } from './format.js';
import { formatMatchers, parseMatchers, quoteValue, selectorOf } from './state.js';

const PRESETS = [
  ['now-5m', 'Last 5 minutes'], ['now-15m', 'Last 15 minutes'], ['now-30m', 'Last 30 minutes'], ['now-1h', 'Last 1 hour'],
  ['now-3h', 'Last 3 hours'], ['now-6h', 'Last 6 hours'], ['now-12h', 'Last 12 hours'], ['now-24h', 'Last 24 hours'],
  ['now-2d', 'Last 2 days'], ['now-7d', 'Last 7 days'], ['now-30d', 'Last 30 days'],
];
const OPS = ['=', '!=', '=~', '!~'];

/** `<input type=datetime-local>` value of ms. */
function localInput(ms) {
  return localDateTime(ms).replace(' ', 'T');
}

/** The current range of a state in ms. */
export function rangeOf(state, now = Date.now()) {
  return { start: parseTime(state.from, now), end: parseTime(state.until, now) };
}

export class QueryBar {
  constructor(el, store) {
    this.el = el;
    this.store = store;
    this.cache = new Map();
    this.services = [];
    this.types = [];
    this.service = h('select', { 'aria-label': 'Service', 'data-testid': 'service-select', onchange: () => store.set({ service: this.service.value, type: '', filters: '', focus: '', sandwich: '', groupValue: '' }, { push: true }) });
    this.type = h('select', { 'aria-label': 'Profile type', 'data-testid': 'type-select', onchange: () => store.set({ type: this.type.value, focus: '', sandwich: '' }, { push: true }) });
    this.chips = h('span', { style: { display: 'contents' } });
    this.input = h('input', {
      type: 'text', placeholder: 'Filter by label: name="value"', 'aria-label': 'Label filter', 'data-testid': 'filter-input',
      autocomplete: 'off', spellcheck: 'false', role: 'combobox', 'aria-autocomplete': 'list', 'aria-expanded': 'false',
    });
    this.suggest = h('ul', { class: 'suggest', role: 'listbox', hidden: true, 'data-testid': 'filter-suggestions' });
    this.filters = h('div', { class: 'filters' }, this.chips, this.input, this.suggest);
    this.timeButton = h('button', { type: 'button', 'data-testid': 'time-button', 'aria-haspopup': 'dialog', onclick: () => this.toggleTime() });
    this.timePicker = h('div', { class: 'time-picker' }, this.timeButton);
    const refresh = h('button', { type: 'button', title: 'Refresh', 'data-testid': 'refresh', onclick: () => store.refresh() }, '⟳ Refresh');
    clear(el).append(
      h('label', {}, 'Service', this.service),
      h('label', {}, 'Profile', this.type),
      this.filters,
      this.timePicker,
      refresh,
    );
    this.bindFilter();
  }

  /** Label-selector part for completions: service and profile type. */
  baseSelector(state) {
    const extra = state.type ? [{ name: '__profile_type__', op: '=', value: state.type }] : [];
    return selectorOf(state.service, extra);
  }

  async cached(key, fn) {
    if (!this.cache.has(key)) this.cache.set(key, fn().catch((e) => { this.cache.delete(key); throw e; }));
    return this.cache.get(key);
  }

  /**
   * Fills the selectors for `state`; when the service or type is missing
   * or unknown, picks one and returns the patch to apply (else null).
   */
  async sync(state) {
    this.timeButton.textContent = `${describeRange(state.from, state.until, Date.now())}`;
    this.renderChips(state);
    const { start, end } = rangeOf(state);
    const rangeKey = `${state.from}|${state.until}|${this.store.refreshCount}`;
    let services = [];
    try {
      services = await this.cached(`svc|${rangeKey}`, () => querier('LabelValues', { name: 'service_name', matchers: [], start, end }).then((r) => r.names || []));
    } catch (e) {
      setStatus(`Cannot list services: ${e.message}`, 'error');
    }
    if (state.service && !services.includes(state.service)) services = [state.service, ...services];
    fillSelect(this.service, services.map((s) => [s, s]), state.service, 'No services');
    if (!state.service) return services.length ? { service: services[0] } : null;
    let types = [];
    try {
      types = await this.cached(`types|${state.service}|${rangeKey}`, () => querier('Series', {
        matchers: [selectorOf(state.service, '')], labelNames: ['__profile_type__'], start, end,
      }).then((r) => [...new Set((r.labelsSet || []).flatMap((l) => (l.labels || []).filter((p) => p.name === '__profile_type__').map((p) => p.value)))].sort()));
    } catch (e) {
      setStatus(`Cannot list profile types: ${e.message}`, 'error');
    }
    if (state.type && !types.includes(state.type)) types = [state.type, ...types];
    fillSelect(this.type, types.map((t) => [t, profileTypeLabel(t)]), state.type, 'No profile types');
    if (!state.type && types.length) {
      const cpu = types.find((t) => t.startsWith('process_cpu:cpu:')) || types.find((t) => t.includes(':cpu:')) || types[0];
      return { type: cpu };
    }
    return null;
  }

  renderChips(state) {
    clear(this.chips);
    let list = [];
    try {
      list = parseMatchers(state.filters);
    } catch (e) {
      this.chips.append(h('span', { class: 'error' }, `bad filter: ${e.message}`));
    }
    list.forEach((m, k) => {
      const text = `${m.name}${m.op}${quoteValue(m.value)}`;
      this.chips.append(h('span', { class: 'chip mono', 'data-testid': 'filter-chip' }, text,
        h('button', { type: 'button', title: `Remove ${text}`, 'aria-label': `Remove ${text}`, onclick: () => {
          const rest = list.filter((_, j) => j !== k);
          this.store.set({ filters: formatMatchers(rest), focus: '' }, { push: true });
        } }, '×')));
    });
  }

  addMatcher(m) {
    let list = [];
    try {
      list = parseMatchers(this.store.state.filters);
    } catch {
      list = [];
    }
    list = list.filter((x) => !(x.name === m.name && x.op === m.op));
    list.push(m);
    this.input.value = '';
    this.closeSuggest();
    this.store.set({ filters: formatMatchers(list), focus: '' }, { push: true });
  }

  bindFilter() {
    const update = () => this.updateSuggestions().catch((e) => setStatus(e.message, 'error'));
    this.input.addEventListener('input', update);
    this.input.addEventListener('focus', update);
    this.input.addEventListener('blur', () => setTimeout(() => this.closeSuggest(), 150));
    this.input.addEventListener('keydown', (e) => {
      const items = [...this.suggest.querySelectorAll('li[data-value]')];
      const at = items.findIndex((li) => li.getAttribute('aria-selected') === 'true');
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        if (!items.length) return;
        const next = e.key === 'ArrowDown' ? (at + 1) % items.length : (at - 1 + items.length) % items.length;
        items.forEach((li, k) => li.setAttribute('aria-selected', String(k === next)));
        items[next].scrollIntoView({ block: 'nearest' });
      } else if (e.key === 'Enter') {
        e.preventDefault();
        if (at >= 0) {
          items[at].dispatchEvent(new MouseEvent('mousedown'));
          return;
        }
        const text = this.input.value.trim();
        if (!text) return;
        try {
          for (const m of parseMatchers(text)) this.addMatcher(m);
        } catch (err) {
          setStatus(`Filter: ${err.message}`, 'error');
        }
      } else if (e.key === 'Escape') {
        this.closeSuggest();
      } else if (e.key === 'Backspace' && this.input.value === '') {
        const list = parseMatchers(this.store.state.filters);
        if (list.length) this.store.set({ filters: formatMatchers(list.slice(0, -1)) }, { push: true });
      }
    });
  }

  closeSuggest() {
    this.suggest.hidden = true;
    this.input.setAttribute('aria-expanded', 'false');
  }

  showSuggest(title, items, pick) {
    clear(this.suggest);
    this.suggest.append(h('li', { class: 'hint' }, title));
    if (!items.length) this.suggest.append(h('li', { class: 'hint' }, 'no match'));
    for (const [value, label] of items.slice(0, 200)) {
      this.suggest.append(h('li', {
        role: 'option', 'data-value': value, 'aria-selected': 'false',
        onmousedown: (e) => { e.preventDefault(); pick(value); },
      }, label));
    }
    this.suggest.hidden = false;
    this.input.setAttribute('aria-expanded', 'true');
  }

  async updateSuggestions() {
    const state = this.store.state;
    const text = this.input.value;
    const parts = /^\s*([A-Za-z_][\w.]*)?\s*(=~|!~|!=|=)?\s*"?([^"]*)"?\s*$/.exec(text);
    if (!parts || !state.service) return this.closeSuggest();
    const [, name = '', op, partial = ''] = parts;
    const { start, end } = rangeOf(state);
    const rangeKey = `${state.from}|${state.until}|${this.store.refreshCount}`;
    const selector = this.baseSelector(state);
    if (!op) {
      const names = await this.cached(`names|${selector}|${rangeKey}`, () => querier('LabelNames', { matchers: [selector], start, end }).then((r) => r.names || []));
      const wanted = names.filter((n) => !n.startsWith('__') && n !== 'service_name' && n.toLowerCase().includes(name.toLowerCase()));
      this.showSuggest('Label names', wanted.map((n) => [n, n]), (n) => {
        this.input.value = `${n}=`;
        this.input.focus();
        this.updateSuggestions();
      });
      return;
    }
    if (!OPS.includes(op)) return this.closeSuggest();
    const values = await this.cached(`values|${name}|${selector}|${rangeKey}`, () => querier('LabelValues', { name, matchers: [selector], start, end }).then((r) => r.names || []));
    const wanted = values.filter((v) => v.toLowerCase().includes(partial.toLowerCase()));
    this.showSuggest(`Values of ${name}`, wanted.map((v) => [v, v]), (v) => this.addMatcher({ name, op, value: v }));
  }

  toggleTime() {
    if (this.timePopover) {
      this.timePopover.remove();
      this.timePopover = null;
      return;
    }
    const state = this.store.state;
    const now = Date.now();
    const apply = (from, until) => {
      this.toggleTime();
      this.store.set({ from, until, leftFrom: '', leftUntil: '', rightFrom: '', rightUntil: '' }, { push: true });
    };
    const fromInput = h('input', { type: 'datetime-local', step: '1', value: localInput(parseTime(state.from, now)), 'data-testid': 'time-from' });
    const untilInput = h('input', { type: 'datetime-local', step: '1', value: localInput(parseTime(state.until, now)), 'data-testid': 'time-until' });
    this.timePopover = h('div', { class: 'popover', role: 'dialog', 'aria-label': 'Time range', 'data-testid': 'time-popover' },
      h('div', { class: 'presets' }, PRESETS.map(([from, label]) => h('button', { type: 'button', 'data-preset': from, onclick: () => apply(from, 'now') }, label))),
      h('div', { class: 'absolute' },
        h('strong', {}, 'Absolute range'),
        h('label', {}, 'From', fromInput),
        h('label', {}, 'Until', untilInput),
        h('button', {
          type: 'button', class: 'primary', 'data-testid': 'time-apply',
          onclick: () => {
            const f = new Date(fromInput.value).getTime();
            const u = new Date(untilInput.value).getTime();
            if (!(f < u)) return setStatus('The start must be before the end', 'error');
            apply(String(f), String(u));
          },
        }, 'Apply')));
    this.timePicker.append(this.timePopover);
  }
}

function fillSelect(select, options, value, emptyText) {
  const key = JSON.stringify([options, value]);
  if (select.dataset.key === key) return;
  select.dataset.key = key;
  clear(select);
  if (!options.length) select.append(h('option', { value: '' }, emptyText));
  for (const [v, label] of options) select.append(h('option', { value: v }, label));
  select.value = value || (options[0] ? options[0][0] : '');
}
