// The flame-graph component: a viewport-sized canvas over a scrolling
// spacer, so only the visible rows are ever drawn (deep or wide graphs
// never make a canvas larger than the screen). Geometry, labels and colours
// come from layout.js; this file draws them and handles the pointer and
// the keyboard.
//
// Pointer: hover shows a tooltip; click focuses a node (it fills the
// width; clicking the focused node or the root resets); right-click opens a
// menu (focus, sandwich, highlight the name, copy, reset).
// Keyboard (when the graph has focus): arrows move the selection (up:
// caller, down: widest callee, left/right: neighbours on the row); Enter
// focuses it; Esc or 0 resets; s opens the sandwich view of it; Home
// selects the root.

import { clear, currentTheme, h, hideTooltip, showTooltip } from '../dom.js';
import { cssColor, diffPercent } from '../colors.js';
import { formatChange, formatPercent, formatValue, valueName } from '../format.js';
import { barColor, barLabel, focusRange, hitTest, LABEL_PADDING, ROW_HEIGHT, thinColor, visibleBars } from './layout.js';
import { findPath, matchNames, matchStats, nameOf, neighbours, pathOf } from './model.js';

const FONT = '12px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace';

function textColorOn([r, g, b]) {
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#1d1d22' : '#f4f4f6';
}

export class FlameGraph {
  /**
   * @param {HTMLElement} container
   * @param {object} opts {maxHeight, inverted, testId, onFocus(path),
   *   onSandwich(name), onHighlight(name), title}
   */
  constructor(container, opts = {}) {
    this.opts = opts;
    this.model = null;
    this.ctx = { unit: '', sampleType: '', truncation: null };
    this.display = { matches: null, mode: 'package', clamp: 100, diffPalette: 'default' };
    this.focus = 0;
    this.selected = -1;
    this.crumbs = h('nav', { class: 'fg-crumbs', 'aria-label': 'Focus path' });
    this.canvas = h('canvas', { 'data-testid': `${opts.testId || 'flamegraph'}-canvas` });
    this.spacer = h('div');
    this.scroll = h('div', { class: 'fg-scroll' }, this.canvas, this.spacer);
    this.root = h('div', {
      class: 'fg',
      tabindex: '0',
      role: 'application',
      'aria-label': opts.title || 'Flame graph (arrow keys move, Enter focuses, Esc resets)',
      'data-testid': opts.testId || 'flamegraph',
      'data-state': 'empty',
    }, this.crumbs, this.scroll);
    clear(container).append(this.root);
    this.scheduled = false;
    this.bind();
    this.resizeObserver = new ResizeObserver(() => this.redraw());
    this.resizeObserver.observe(this.scroll);
  }

  destroy() {
    this.resizeObserver.disconnect();
    this.closeMenu();
    hideTooltip();
  }

  /** Sets the data: a decoded model (model.js) and its unit/context. */
  setData(model, ctx = {}) {
    this.model = model;
    this.ctx = { ...this.ctx, ...ctx };
    this.focus = 0;
    this.selected = -1;
    this.scroll.scrollTop = this.opts.inverted ? 1e9 : 0;
    this.applyMatches();
    this.renderCrumbs();
    this.redraw();
  }

  /** Display options: {search (compiled matcher or null), mode, clamp, diffPalette}. */
  setDisplay(d) {
    if ('search' in d) this.search = d.search;
    Object.assign(this.display, Object.fromEntries(Object.entries(d).filter(([k]) => k !== 'search')));
    this.applyMatches();
    this.redraw();
  }

  applyMatches() {
    this.display.matches = this.model && this.search ? matchNames(this.model, this.search) : null;
  }

  /** The share of the (focused) graph in search matches, or null without a search. */
  searchStats() {
    if (!this.model || !this.display.matches) return null;
    return matchStats(this.model, this.display.matches, 0);
  }

  /** Focuses the node at a path of names (empty: reset). Returns whether it exists. */
  setFocusPath(path, notify = false) {
    if (!this.model) return false;
    const node = path && path.length ? findPath(this.model, path) : 0;
    this.setFocus(node < 0 ? 0 : node, notify);
    return node >= 0;
  }

  setFocus(node, notify = true) {
    this.focus = node;
    this.renderCrumbs();
    this.redraw();
    if (notify) this.opts.onFocus?.(node > 0 ? pathOf(this.model, node) : []);
  }

  renderCrumbs() {
    clear(this.crumbs);
    if (!this.model) return;
    const path = this.focus > 0 ? pathOf(this.model, this.focus) : [];
    const nodes = [];
    for (let n = this.focus; n > 0; n = this.model.parent[n]) nodes.unshift(n);
    this.crumbs.append(h('button', { type: 'button', onclick: () => this.setFocus(0), 'data-testid': 'crumb-root' }, 'all'));
    nodes.forEach((n, k) => {
      this.crumbs.append(h('span', { class: 'sep' }, '›'));
      this.crumbs.append(h('button', { type: 'button', title: path[k], onclick: () => this.setFocus(n) }, shorten(path[k])));
    });
    if (this.focus > 0) {
      const share = this.model.value[this.focus] / (this.model.value[0] || 1);
      this.crumbs.append(h('span', { class: 'muted', style: { marginLeft: '8px' } }, `${formatPercent(share)} of total`));
      this.crumbs.append(h('button', { type: 'button', onclick: () => this.setFocus(0), 'data-testid': 'reset-focus', style: { marginLeft: '8px', color: 'inherit', borderColor: 'var(--border)' } }, 'Reset view'));
    }
  }

  viewport(width, height, scrollTop) {
    const range = focusRange(this.model, this.focus);
    return { width, height, scrollTop, rowHeight: ROW_HEIGHT, inverted: !!this.opts.inverted, minWidth: 2, ...range };
  }

  redraw() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  draw() {
    const m = this.model;
    const width = this.scroll.clientWidth;
    if (!m || width === 0) return;
    const full = m.depth * ROW_HEIGHT;
    const maxHeight = this.opts.maxHeight || 640;
    const height = Math.max(ROW_HEIGHT, Math.min(full, maxHeight));
    this.scroll.style.height = `${height + 2}px`;
    this.spacer.style.height = `${Math.max(0, full - height)}px`;
    const dpr = window.devicePixelRatio || 1;
    if (this.canvas.width !== Math.round(width * dpr) || this.canvas.height !== Math.round(height * dpr)) {
      this.canvas.width = Math.round(width * dpr);
      this.canvas.height = Math.round(height * dpr);
      this.canvas.style.width = `${width}px`;
      this.canvas.style.height = `${height}px`;
    }
    const g = this.canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const vp = this.viewport(width, height, this.scroll.scrollTop);
    const count = this.paint(g, vp);
    this.root.dataset.state = 'rendered';
    this.root.dataset.bars = String(count);
    this.root.dataset.nodes = String(m.count);
  }

  /** Draws the bars of viewport `vp` on a 2D context; returns how many. */
  paint(g, vp) {
    const m = this.model;
    const theme = currentTheme();
    g.clearRect(0, 0, vp.width, vp.height);
    g.font = FONT;
    g.textBaseline = 'middle';
    if (!this.charWidth) this.charWidth = g.measureText('M').width || 7;
    const matches = this.display.matches;
    const { bars, thin } = visibleBars(m, vp, matches ? (i) => matches[m.name[i]] : null);
    const focusLevel = this.focus > 0 ? m.level[this.focus] : 0;
    const opts = { ...this.display, theme, viewValue: vp.viewEnd - vp.viewStart };
    for (const b of bars) {
      const color = barColor(m, b.i, opts);
      const x0 = Math.max(b.x, 0);
      const x1 = Math.min(b.x + b.w, vp.width);
      const w = x1 - x0;
      g.globalAlpha = b.level < focusLevel ? 0.55 : 1;
      g.fillStyle = cssColor(color);
      g.fillRect(x0 + 0.5, b.y + 0.5, Math.max(0, w - 1), b.h - 1);
      const label = barLabel(nameOf(m, b.i), this.detail(b.i), w, this.charWidth);
      if (label) {
        g.fillStyle = textColorOn(color);
        g.fillText(label, x0 + LABEL_PADDING, b.y + b.h / 2 + 0.5);
      }
    }
    g.globalAlpha = 1;
    const thinFill = cssColor(thinColor(theme));
    for (const t of thin) {
      g.fillStyle = t.key ? cssColor(barColor(m, 0, { theme })) : thinFill;
      g.fillRect(Math.max(t.x, 0) + 0.5, t.y + 0.5, Math.max(1, t.w - 0.5), t.h - 1);
    }
    if (this.selected >= 0) {
      const sel = bars.find((b) => b.i === this.selected);
      if (sel) {
        g.strokeStyle = theme === 'dark' ? '#ffffff' : '#111111';
        g.lineWidth = 2;
        g.strokeRect(Math.max(sel.x, 0) + 1, sel.y + 1, Math.min(sel.w, vp.width) - 2, sel.h - 2);
      }
    }
    return bars.length + thin.length;
  }

  /** The short value text drawn after a bar's name. */
  detail(i) {
    const m = this.model;
    if (m.diff) {
      if (m.leftValue[i] === 0 && m.rightValue[i] > 0) return 'new';
      if (m.rightValue[i] === 0 && m.leftValue[i] > 0) return 'removed';
      return formatChange(diffPercent(m.leftValue[i], m.leftTicks, m.rightValue[i], m.rightTicks));
    }
    return `${formatPercent(m.value[i] / (m.total || 1))}, ${formatValue(m.value[i], this.ctx.unit)}`;
  }

  /** The tooltip's content for node `i`. */
  tooltipContent(i) {
    const m = this.model;
    const name = nameOf(m, i);
    const unit = this.ctx.unit;
    const label = valueName(unit, this.ctx.sampleType);
    const rows = [];
    const row = (k, v, cls) => rows.push(h('tr', {}, h('td', {}, k), h('td', { class: cls || '' }, v)));
    if (m.diff) {
      const lt = m.leftTicks || 1;
      const rt = m.rightTicks || 1;
      row('Baseline', `${formatPercent(m.leftValue[i] / lt)} · ${formatValue(m.leftValue[i], unit)} (self ${formatValue(m.leftSelf[i], unit)})`);
      row('Comparison', `${formatPercent(m.rightValue[i] / rt)} · ${formatValue(m.rightValue[i], unit)} (self ${formatValue(m.rightSelf[i], unit)})`);
      const p = diffPercent(m.leftValue[i], m.leftTicks, m.rightValue[i], m.rightTicks);
      const text = m.leftValue[i] === 0 && m.rightValue[i] > 0 ? 'new' : m.rightValue[i] === 0 && m.leftValue[i] > 0 ? 'removed' : formatChange(p);
      row('Change of share', text, p > 0 ? 'bad' : p < 0 ? 'good' : '');
    } else {
      const total = m.total || 1;
      row(`Total ${label.toLowerCase()}`, `${formatValue(m.value[i], unit)} (${formatPercent(m.value[i] / total)})`);
      row(`Self ${label.toLowerCase()}`, `${formatValue(m.self[i], unit)} (${formatPercent(m.self[i] / total)})`);
      if (this.focus > 0) row('Of focused', formatPercent(m.value[i] / (m.value[this.focus] || 1)));
    }
    row('Depth', String(m.level[i]));
    const out = h('div', {}, h('div', { class: 'name' }, m.level[i] === 0 ? 'total' : name), h('table', {}, rows));
    if (name === 'other' && m.level[i] > 0) {
      const t = this.ctx.truncation;
      const why = t && t.maxNodes
        ? `"other" stands for callees too small to keep within max nodes = ${t.maxNodes}: every node under ${formatValue(t.threshold, unit)} is folded into one "other" per caller (${t.folded} nodes in all). Raise max nodes to see them; the table and sandwich view are computed from the full profile and stay exact.`
        : '"other" stands for callees folded away to keep the graph within its node budget (max nodes). Raise max nodes to see them.';
      out.append(h('div', { class: 'explain', 'data-testid': 'other-explanation' }, why));
    }
    return out;
  }

  bind() {
    const pos = (e) => {
      const r = this.canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    const nodeAt = (e) => {
      if (!this.model) return -1;
      const [x, y] = pos(e);
      return hitTest(this.model, this.viewport(this.scroll.clientWidth, this.canvas.clientHeight, this.scroll.scrollTop), x, y);
    };
    this.canvas.addEventListener('mousemove', (e) => {
      const i = nodeAt(e);
      this.canvas.style.cursor = i >= 0 ? 'pointer' : 'default';
      if (i < 0 || this.menu) return hideTooltip();
      showTooltip(this.tooltipContent(i), e.clientX, e.clientY);
    });
    this.canvas.addEventListener('mouseleave', hideTooltip);
    this.canvas.addEventListener('click', (e) => {
      const i = nodeAt(e);
      if (i < 0) return;
      this.selected = i;
      this.setFocus(i === this.focus || i === 0 ? 0 : i);
      this.root.focus({ preventScroll: true });
    });
    this.canvas.addEventListener('contextmenu', (e) => {
      const i = nodeAt(e);
      if (i < 0) return;
      e.preventDefault();
      this.selected = i;
      this.redraw();
      this.openMenu(i, e.clientX, e.clientY);
    });
    this.scroll.addEventListener('scroll', () => this.redraw());
    this.root.addEventListener('keydown', (e) => this.onKey(e));
  }

  onKey(e) {
    const m = this.model;
    if (!m || !m.count || e.target !== this.root) return;
    if (this.selected < 0) this.selected = this.focus;
    const nb = neighbours(m, this.selected);
    let handled = true;
    switch (e.key) {
      case 'ArrowUp': this.selected = this.opts.inverted ? nb.down : nb.up; break;
      case 'ArrowDown': this.selected = this.opts.inverted ? nb.up : nb.down; break;
      case 'ArrowLeft': this.selected = nb.left; break;
      case 'ArrowRight': this.selected = nb.right; break;
      case 'Home': this.selected = 0; break;
      case 'Enter': this.setFocus(this.selected === this.focus ? 0 : this.selected); break;
      case 'Escape': case '0': this.selected = -1; this.setFocus(0); hideTooltip(); break;
      case 's': if (this.selected > 0) this.opts.onSandwich?.(nameOf(m, this.selected)); break;
      default: handled = false;
    }
    if (!handled) return;
    e.preventDefault();
    if (this.selected >= 0) {
      this.ensureVisible(this.selected);
      this.root.dataset.selected = m.level[this.selected] === 0 ? 'total' : nameOf(m, this.selected);
      const r = this.canvas.getBoundingClientRect();
      const vp = this.viewport(this.scroll.clientWidth, this.canvas.clientHeight, this.scroll.scrollTop);
      const k = vp.width / (vp.viewEnd - vp.viewStart);
      const x = Math.max(0, (m.start[this.selected] - vp.viewStart) * k);
      const y = (vp.inverted ? m.depth - 1 - m.level[this.selected] : m.level[this.selected]) * ROW_HEIGHT - vp.scrollTop;
      showTooltip(this.tooltipContent(this.selected), r.left + x + 10, r.top + y + 10);
    }
    this.redraw();
  }

  /** Scrolls and refocuses so node `i` is on screen. */
  ensureVisible(i) {
    const m = this.model;
    const row = this.opts.inverted ? m.depth - 1 - m.level[i] : m.level[i];
    const top = row * ROW_HEIGHT;
    const h = this.canvas.clientHeight;
    if (top < this.scroll.scrollTop) this.scroll.scrollTop = top;
    else if (top + ROW_HEIGHT > this.scroll.scrollTop + h) this.scroll.scrollTop = top + ROW_HEIGHT - h;
    const range = focusRange(m, this.focus);
    if (m.start[i] + m.value[i] <= range.viewStart || m.start[i] >= range.viewEnd) this.setFocus(m.parent[i] > 0 ? m.parent[i] : 0);
  }

  openMenu(i, x, y) {
    this.closeMenu();
    hideTooltip();
    const name = nameOf(this.model, i);
    const item = (label, fn, testId) => h('button', { type: 'button', 'data-testid': testId, onclick: () => { this.closeMenu(); fn(); } }, label);
    const items = [item('Focus on this frame', () => this.setFocus(i), 'menu-focus')];
    if (i > 0) {
      if (this.opts.onSandwich) items.push(item('Sandwich view (callers and callees)', () => this.opts.onSandwich(name), 'menu-sandwich'));
      if (this.opts.onHighlight) items.push(item('Highlight this function', () => this.opts.onHighlight(name), 'menu-highlight'));
      items.push(item('Copy function name', () => navigator.clipboard?.writeText(name).catch(() => {}), 'menu-copy'));
    }
    items.push(item('Reset view', () => this.setFocus(0), 'menu-reset'));
    this.menu = h('div', { class: 'fg-ctx', role: 'menu', 'data-testid': 'flamegraph-menu', style: { left: `${x}px`, top: `${y}px` } }, items);
    document.body.append(this.menu);
    const close = (e) => {
      if (!this.menu || this.menu.contains(e.target)) return;
      this.closeMenu();
    };
    this.menuCloser = close;
    setTimeout(() => document.addEventListener('mousedown', close), 0);
    document.addEventListener('keydown', this.menuKey = (e) => { if (e.key === 'Escape') this.closeMenu(); });
  }

  closeMenu() {
    if (this.menu) this.menu.remove();
    this.menu = null;
    if (this.menuCloser) document.removeEventListener('mousedown', this.menuCloser);
    if (this.menuKey) document.removeEventListener('keydown', this.menuKey);
  }

  /**
   * The whole graph (all rows, current focus) as a PNG blob, rendered off
   * screen; very deep graphs are cut at 16,000 pixels.
   */
  toPng() {
    const m = this.model;
    if (!m) return Promise.resolve(null);
    const width = this.scroll.clientWidth || 1200;
    const height = Math.min(m.depth * ROW_HEIGHT, 16000);
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    const g = c.getContext('2d');
    g.fillStyle = getComputedStyle(document.body).backgroundColor || '#fff';
    g.fillRect(0, 0, width, height);
    this.paint(g, this.viewport(width, height, 0));
    return new Promise((resolve) => c.toBlob(resolve, 'image/png'));
  }
}

function shorten(s) {
  return s.length > 40 ? `${s.slice(0, 18)}…${s.slice(-18)}` : s;
}
