// A time series drawn as SVG with drag-to-select. Dragging reports the
// selected range; selections (baseline, comparison) are drawn as coloured
// bands. Several lines can be drawn (Tag Explorer).

import { clear, h } from './dom.js';
import { formatValue, localDateTime, stepSeconds } from './format.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.append(c);
  return el;
}

function timeLabel(ms, spanMs) {
  const full = localDateTime(ms);
  if (spanMs <= 2 * 86400e3) return full.slice(11, 16);
  return full.slice(5, 16);
}

export class Timeline {
  /**
   * @param {HTMLElement} container
   * @param {object} opts {height, onSelect(fromMs, untilMs), testId, caption}
   */
  constructor(container, opts = {}) {
    this.opts = opts;
    this.height = opts.height || 100;
    this.series = [];
    this.selections = [];
    this.caption = h('div', { class: 'caption' });
    this.svg = s('svg', { height: this.height, role: 'img', 'aria-label': opts.caption || 'Timeline' });
    this.root = h('div', { class: 'timeline', 'data-testid': opts.testId || 'timeline' }, this.caption, this.svg);
    clear(container).append(this.root);
    if (opts.caption) this.caption.append(opts.caption);
    this.bindDrag();
    this.resizeObserver = new ResizeObserver(() => this.draw());
    this.resizeObserver.observe(this.root);
  }

  destroy() {
    this.resizeObserver.disconnect();
  }

  /**
   * Sets the lines: `[{points: [[ms, value], ...], color, label}]` over
   * `[startMs, endMs]`, values in `unit`.
   */
  setData(series, startMs, endMs, unit, stepMs = stepSeconds(startMs, endMs) * 1000) {
    this.series = series.map((line) => ({ ...line, points: fillGaps(line.points, startMs, endMs, stepMs) }));
    this.startMs = startMs;
    this.endMs = endMs;
    this.unit = unit;
    this.root.dataset.points = String(series.reduce((n, x) => n + x.points.length, 0)); // as answered, without the added zeros
    this.draw();
  }

  /** Bands to draw: `[{from, until, kind: 'baseline' | 'comparison'}]`. */
  setSelections(selections) {
    this.selections = selections;
    this.draw();
  }

  geometry() {
    const width = this.root.clientWidth || 600;
    const left = 52;
    const right = 8;
    const top = 6;
    const bottom = 18;
    return { width, left, right, top, bottom, plotW: Math.max(10, width - left - right), plotH: this.height - top - bottom };
  }

  xOf(ms, g) {
    return g.left + ((ms - this.startMs) / Math.max(1, this.endMs - this.startMs)) * g.plotW;
  }

  msOf(x, g) {
    const t = this.startMs + ((x - g.left) / g.plotW) * (this.endMs - this.startMs);
    return Math.round(Math.max(this.startMs, Math.min(this.endMs, t)));
  }

  draw() {
    if (this.startMs === undefined) return;
    const g = this.geometry();
    const svg = this.svg;
    svg.setAttribute('viewBox', `0 0 ${g.width} ${this.height}`);
    svg.setAttribute('width', g.width);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let max = 0;
    for (const line of this.series) for (const [, v] of line.points) max = Math.max(max, v);
    const yOf = (v) => g.top + g.plotH - (max > 0 ? (v / max) * g.plotH : 0);
    // grid and axes
    svg.append(s('line', { class: 'grid', x1: g.left, x2: g.left + g.plotW, y1: g.top + g.plotH, y2: g.top + g.plotH }));
    svg.append(s('line', { class: 'grid', x1: g.left, x2: g.left + g.plotW, y1: g.top, y2: g.top }));
    const maxText = s('text', { class: 'axis', x: g.left - 6, y: g.top + 9, 'text-anchor': 'end' });
    maxText.textContent = max > 0 ? formatValue(max, this.unit) : '0';
    svg.append(maxText);
    const ticks = Math.max(2, Math.min(8, Math.floor(g.plotW / 110)));
    for (let k = 0; k <= ticks; k++) {
      const ms = this.startMs + ((this.endMs - this.startMs) * k) / ticks;
      const t = s('text', { class: 'axis', x: this.xOf(ms, g), y: this.height - 4, 'text-anchor': k === 0 ? 'start' : k === ticks ? 'end' : 'middle' });
      t.textContent = timeLabel(ms, this.endMs - this.startMs);
      svg.append(t);
    }
    for (const sel of this.selections) {
      const x0 = this.xOf(Math.max(sel.from, this.startMs), g);
      const x1 = this.xOf(Math.min(sel.until, this.endMs), g);
      if (x1 <= x0) continue;
      svg.append(s('rect', { class: `sel-${sel.kind}`, x: x0, y: g.top, width: Math.max(1, x1 - x0), height: g.plotH, 'data-kind': sel.kind }));
    }
    for (const line of this.series) {
      if (line.points.length === 0) continue;
      const pts = line.points.map(([ms, v]) => `${this.xOf(ms, g).toFixed(1)},${yOf(v).toFixed(1)}`);
      const color = line.color ? { style: `stroke:${line.color}` } : {};
      if (this.series.length === 1) {
        const first = this.xOf(line.points[0][0], g).toFixed(1);
        const last = this.xOf(line.points[line.points.length - 1][0], g).toFixed(1);
        const base = (g.top + g.plotH).toFixed(1);
        svg.append(s('path', { class: 'area', d: `M${first},${base}L${pts.join('L')}L${last},${base}Z` }));
      }
      svg.append(s('path', { class: 'line', d: `M${pts.join('L')}`, ...color }));
      if (line.points.length === 1) {
        const [ms, v] = line.points[0];
        svg.append(s('circle', { cx: this.xOf(ms, g), cy: yOf(v), r: 3, style: `fill:${line.color || 'var(--series)'}` }));
      }
    }
    if (this.drag) {
      const x0 = Math.min(this.drag.x0, this.drag.x1);
      const x1 = Math.max(this.drag.x0, this.drag.x1);
      svg.append(s('rect', { class: 'sel-drag', x: x0, y: g.top, width: Math.max(1, x1 - x0), height: g.plotH }));
    }
  }

  bindDrag() {
    const xAt = (e) => {
      const r = this.svg.getBoundingClientRect();
      const g = this.geometry();
      return Math.max(g.left, Math.min(g.left + g.plotW, e.clientX - r.left));
    };
    this.svg.addEventListener('mousedown', (e) => {
      if (e.button !== 0 || this.startMs === undefined) return;
      e.preventDefault();
      const x = xAt(e);
      this.drag = { x0: x, x1: x };
      const move = (ev) => {
        this.drag.x1 = xAt(ev);
        this.draw();
      };
      const up = (ev) => {
        document.removeEventListener('mousemove', move);
        document.removeEventListener('mouseup', up);
        this.drag.x1 = xAt(ev);
        const g = this.geometry();
        const a = Math.min(this.drag.x0, this.drag.x1);
        const b = Math.max(this.drag.x0, this.drag.x1);
        this.drag = null;
        this.draw();
        if (b - a >= 3) this.opts.onSelect?.(this.msOf(a, g), this.msOf(b, g));
      };
      document.addEventListener('mousemove', move);
      document.addEventListener('mouseup', up);
    });
  }
}

/**
 * Points with the missing steps brought down to zero: the series API only
 * answers steps that have samples, and a line drawn straight across a gap
 * would show load that was never there. A zero is added one step after a
 * point and one step before the next when the gap between them is wider
 * than a step (and at the ends of the range), not at every empty step.
 */
export function fillGaps(points, startMs, endMs, stepMs) {
  if (!points.length || !(stepMs > 0)) return points.slice();
  const out = [];
  const gap = stepMs * 1.5;
  if (points[0][0] - startMs >= gap) out.push([points[0][0] - stepMs, 0]);
  points.forEach((p, k) => {
    if (k > 0) {
      const prev = points[k - 1][0];
      if (p[0] - prev >= gap) {
        out.push([prev + stepMs, 0]);
        if (p[0] - stepMs > prev + stepMs) out.push([p[0] - stepMs, 0]);
      }
    }
    out.push(p);
  });
  const last = points[points.length - 1][0];
  if (endMs - last >= gap) out.push([last + stepMs, 0]);
  return out;
}

/** `[[ms, value]]` points of a Connect `Series` (timestamps may be strings). */
export function pointsOf(series) {
  return (series?.points || []).map((p) => [Number(p.timestamp), Number(p.value)]);
}

/** Tooltip-free summary of a selection. */
export function describeSelection(from, until) {
  return `${localDateTime(from)} → ${localDateTime(until)}`;
}
