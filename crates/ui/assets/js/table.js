// A sortable, filterable table with virtual scrolling: only the rows in
// view exist in the DOM, so tables of tens of thousands of functions stay
// fast. Each row carries its values as data attributes for tests and tools.

import { clear, h } from './dom.js';

const ROW = 26;

export class Table {
  /**
   * @param {HTMLElement} container
   * @param {object} opts {columns: [{key, title, numeric, width, render(row),
   *   value(row), bar(row) → 0..1}], sort: {key, desc}, height,
   *   onRowClick(row), actions: [{label, title, onClick(row), testId}],
   *   rowData(row) → {attr: value}, testId, selectedKey}
   */
  constructor(container, opts) {
    this.opts = opts;
    this.rows = [];
    this.view = [];
    this.filter = null;
    this.sort = { ...(opts.sort || { key: opts.columns[0].key, desc: true }) };
    this.selectedKey = null;
    const template = opts.columns.map((c) => c.width || (c.numeric ? '110px' : 'minmax(160px, 1fr)')).join(' ') + (opts.actions ? ' auto' : '');
    this.template = template;
    this.head = h('div', { class: 'thead', role: 'row', style: { gridTemplateColumns: template } });
    this.inner = h('div', { style: { position: 'relative' } });
    this.body = h('div', { class: 'body', role: 'rowgroup', style: { height: `${opts.height || 420}px` } }, this.inner);
    this.footer = h('div', { class: 'footer' });
    this.root = h('div', { class: 'ftable', role: 'table', 'data-testid': opts.testId || 'table' }, this.head, this.body, this.footer);
    clear(container).append(this.root);
    this.body.addEventListener('scroll', () => this.renderRows());
    this.renderHead();
  }

  renderHead() {
    clear(this.head);
    for (const c of this.opts.columns) {
      const arrow = this.sort.key === c.key ? (this.sort.desc ? ' ▼' : ' ▲') : '';
      this.head.append(h('div', { class: c.numeric ? 'num' : '', role: 'columnheader', 'aria-sort': this.sort.key === c.key ? (this.sort.desc ? 'descending' : 'ascending') : 'none' },
        h('button', { type: 'button', 'data-sort': c.key, onclick: () => this.sortBy(c.key) }, c.title + arrow)));
    }
    if (this.opts.actions) this.head.append(h('div', {}));
  }

  sortBy(key) {
    if (this.sort.key === key) this.sort.desc = !this.sort.desc;
    else this.sort = { key, desc: this.opts.columns.find((c) => c.key === key)?.numeric !== false };
    this.renderHead();
    this.refresh();
  }

  /** Replaces the rows. */
  setRows(rows) {
    this.rows = rows;
    this.refresh();
  }

  /** Keeps only rows for which `fn(row)` is true (null: all). */
  setFilter(fn) {
    this.filter = fn;
    this.refresh();
  }

  /** Marks a row (by the `key` column's value) as selected. */
  select(key) {
    this.selectedKey = key;
    this.renderRows();
  }

  refresh() {
    const col = this.opts.columns.find((c) => c.key === this.sort.key) || this.opts.columns[0];
    const value = col.value || ((r) => r[col.key]);
    const dir = this.sort.desc ? -1 : 1;
    this.view = (this.filter ? this.rows.filter(this.filter) : this.rows.slice()).sort((a, b) => {
      const x = value(a);
      const y = value(b);
      if (x < y) return -dir;
      if (x > y) return dir;
      return 0;
    });
    this.inner.style.height = `${this.view.length * ROW}px`;
    this.footer.textContent = this.filter
      ? `${this.view.length} of ${this.rows.length} rows match`
      : `${this.rows.length} rows`;
    this.root.dataset.rows = String(this.view.length);
    this.body.scrollTop = Math.min(this.body.scrollTop, Math.max(0, this.view.length * ROW - this.body.clientHeight));
    this.rendered = null;
    this.renderRows();
  }

  renderRows() {
    const height = this.body.clientHeight || this.opts.height || 420;
    const first = Math.max(0, Math.floor(this.body.scrollTop / ROW) - 5);
    const last = Math.min(this.view.length, Math.ceil((this.body.scrollTop + height) / ROW) + 5);
    const key = `${first}:${last}:${this.selectedKey}`;
    if (this.rendered === key) return;
    this.rendered = key;
    clear(this.inner);
    const keyCol = this.opts.columns[0].key;
    for (let k = first; k < last; k++) {
      const row = this.view[k];
      const cells = this.opts.columns.map((c) => {
        const text = c.render ? c.render(row) : String(row[c.key]);
        const attrs = { class: `cell${c.numeric ? ' num' : ''}${c.mono ? ' name' : ''}`, role: 'cell', title: c.numeric ? undefined : text };
        const bar = c.bar ? c.bar(row) : null;
        if (bar !== null && bar !== undefined) {
          const pct = Math.max(0, Math.min(100, bar * 100)).toFixed(1);
          attrs.style = { background: `linear-gradient(to left, var(--selection) ${pct}%, transparent ${pct}%)` };
        }
        return h('div', attrs, text);
      });
      if (this.opts.actions) {
        cells.push(h('div', { class: 'actions' }, this.opts.actions.map((a) => h('button', {
          type: 'button', title: a.title, 'data-testid': a.testId,
          onclick: (e) => { e.stopPropagation(); a.onClick(row); },
        }, a.label))));
      }
      const data = this.opts.rowData ? this.opts.rowData(row) : {};
      const attrs = {
        class: `row${row[keyCol] === this.selectedKey ? ' selected' : ''}`,
        role: 'row',
        style: { top: `${k * ROW}px`, gridTemplateColumns: this.template },
        onclick: () => this.opts.onRowClick?.(row),
      };
      for (const [n, v] of Object.entries(data)) attrs[`data-${n}`] = v;
      this.inner.append(h('div', attrs, cells));
    }
  }
}
