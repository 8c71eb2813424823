// Flame-graph layout: from (model, viewport, view range) to the list of
// rectangles to draw, their labels and colours, and the node under a
// point. Pure functions without a canvas, unit-tested with node --test.
//
// Only what is visible is computed: the rows inside the viewport and, in
// each row, the nodes overlapping the visible tick range (found by binary
// search, since a level's nodes are sorted by start). Runs of neighbouring
// bars narrower than `minWidth` pixels become one grey "thin" block
// instead of many sub-pixel rectangles; hit-testing still finds every
// node, however thin, because it works on the data, not on the drawing.

import { diffColor, diffPercent, mutedColor, packageColor, thinBarsColor, valueColor } from '../colors.js';
import { nameOf } from './model.js';

export const ROW_HEIGHT = 20;
export const LABEL_PADDING = 4;

/** Pixels per tick for a viewport. */
export function scale(vp) {
  const span = vp.viewEnd - vp.viewStart;
  return span > 0 ? vp.width / span : 0;
}

/** The y (in viewport pixels) of a level's row. */
export function rowY(m, vp, level) {
  const h = vp.rowHeight || ROW_HEIGHT;
  const d = vp.inverted ? m.depth - 1 - level : level;
  return d * h - (vp.scrollTop || 0);
}

/** The first node of level `d` whose end is after tick `t`. */
export function firstEndingAfter(m, d, t) {
  let lo = m.levelStart[d];
  let hi = m.levelStart[d + 1];
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (m.start[mid] + m.value[mid] <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The rectangles visible in viewport `vp` = {width, height, scrollTop,
 * rowHeight, viewStart, viewEnd, inverted, minWidth}. `thinKey(i)`, if
 * given, splits thin runs where its value changes (e.g. search matches
 * stay apart from non-matches).
 *
 * Returns `{bars: [{i, x, y, w, h, level}], thin: [{x, y, w, h, key}]}`;
 * `x` and `w` are not clipped to the viewport.
 */
export function visibleBars(m, vp, thinKey = null) {
  const h = vp.rowHeight || ROW_HEIGHT;
  const k = scale(vp);
  const minWidth = vp.minWidth ?? 2;
  const bars = [];
  const thin = [];
  if (!m.count || k === 0) return { bars, thin };
  for (let d = 0; d < m.depth; d++) {
    const y = rowY(m, vp, d);
    if (y + h <= 0 || y >= vp.height) continue;
    let run = null;
    const end = m.levelStart[d + 1];
    for (let i = firstEndingAfter(m, d, vp.viewStart); i < end; i++) {
      if (m.start[i] >= vp.viewEnd) break;
      const x = (m.start[i] - vp.viewStart) * k;
      const w = m.value[i] * k;
      if (w < minWidth) {
        const key = thinKey ? thinKey(i) : 0;
        if (run && run.key === key && x <= run.x + run.w + 0.5) {
          run.w = Math.max(run.w, x + w - run.x);
        } else {
          run = { x, y, w, h, key };
          thin.push(run);
        }
        continue;
      }
      run = null;
      bars.push({ i, x, y, w, h, level: d });
    }
  }
  return { bars, thin };
}

/** The node under viewport point (px, py), or -1. */
export function hitTest(m, vp, px, py) {
  const h = vp.rowHeight || ROW_HEIGHT;
  const k = scale(vp);
  if (!m.count || k === 0 || px < 0 || px >= vp.width) return -1;
  const row = Math.floor((py + (vp.scrollTop || 0)) / h);
  const d = vp.inverted ? m.depth - 1 - row : row;
  if (d < 0 || d >= m.depth) return -1;
  const t = vp.viewStart + px / k;
  const i = firstEndingAfter(m, d, t);
  if (i < m.levelStart[d + 1] && m.start[i] <= t) return i;
  return -1;
}

/** The view range (ticks) that makes node `i` fill the width. */
export function focusRange(m, i) {
  if (!m.count || i < 0) return { viewStart: 0, viewEnd: m.count ? m.value[0] || 1 : 1 };
  return { viewStart: m.start[i], viewEnd: m.start[i] + Math.max(m.value[i], 1e-9) };
}

/**
 * The text that fits `px` pixels with characters `charWidth` wide: the
 * whole text, or its head with an ellipsis, or '' when fewer than three
 * characters fit.
 */
export function fitText(text, px, charWidth) {
  const room = Math.floor((px - 2 * LABEL_PADDING) / charWidth);
  if (room >= text.length) return text;
  if (room < 3) return '';
  return `${text.slice(0, room - 1)}…`;
}

/**
 * The label of a bar: `name (12.50 %, 1.20 s)` if it fits, else the name,
 * shortened if needed. `visibleWidth` is the bar's width inside the view.
 */
export function barLabel(name, detail, visibleWidth, charWidth) {
  if (visibleWidth < 3 * charWidth + 2 * LABEL_PADDING) return '';
  const full = detail ? `${name} (${detail})` : name;
  const room = Math.floor((visibleWidth - 2 * LABEL_PADDING) / charWidth);
  if (full.length <= room) return full;
  return fitText(name, visibleWidth, charWidth);
}

/** The colour of the `other` nodes (truncation), per theme. */
export function otherColor(theme) {
  return theme === 'dark' ? [110, 110, 122] : [176, 176, 186];
}

/**
 * The colour (`[r, g, b]`) of node `i`. `opts`: {mode: 'package' | 'value'
 * | 'diff', theme, matches (Uint8Array by name index, or null), viewValue
 * (ticks of the visible range, for 'value'), clamp, diffPalette}.
 */
export function barColor(m, i, opts) {
  const theme = opts.theme || 'light';
  const name = nameOf(m, i);
  if (opts.matches && m.level[i] > 0 && !opts.matches[m.name[i]]) return mutedColor(theme);
  if (m.diff) {
    const p = diffPercent(m.leftValue[i], m.leftTicks, m.rightValue[i], m.rightTicks);
    return diffColor(p, opts.clamp || 100, opts.diffPalette || 'default');
  }
  if (name === 'other') return otherColor(theme);
  if (m.level[i] === 0) return theme === 'dark' ? [120, 120, 132] : [190, 190, 200];
  if (opts.mode === 'value') return valueColor(m.value[i] / (opts.viewValue || m.total || 1));
  return packageColor(name);
}

/** The colour of a thin block, per theme. */
export function thinColor(theme) {
  return thinBarsColor(theme);
}
