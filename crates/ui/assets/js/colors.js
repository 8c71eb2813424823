// Colours of flame-graph bars. Pure functions, unit-tested with node --test.
//
// * By package: the package part of a frame name is hashed onto a fixed
//   palette, so one package keeps one colour in every graph.
// * By value: yellow (small share) to red (large share of the view).
// * Diff: Pyroscope's semantics. Each side's share of its own total is
//   compared; the relative change of the share, (right% − left%) / left%,
//   clamped to ±clamp %, runs linearly from green (−clamp, smaller share:
//   better) through grey (0) to red (+clamp, larger share: worse). A frame
//   absent from the baseline counts as +100 % (new).

/** Palette for light and dark themes (24 colours). */
export const PACKAGE_PALETTE = [
  [232, 96, 60], [240, 160, 60], [216, 194, 72], [150, 196, 90], [88, 180, 130], [70, 170, 180],
  [92, 140, 210], [140, 120, 210], [190, 110, 190], [220, 110, 150], [200, 130, 100], [170, 160, 110],
  [236, 128, 92], [246, 188, 96], [196, 214, 110], [120, 206, 150], [104, 200, 200], [120, 166, 230],
  [166, 146, 226], [214, 140, 210], [236, 140, 170], [214, 166, 130], [150, 180, 150], [180, 150, 120],
];

/** FNV-1a 32-bit hash of a string. */
export function hashString(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * The package of a frame name, by the conventions of the common languages:
 * - `crate::module::func` (Rust, C++): the first segment (`crate`);
 * - `github.com/org/repo/pkg.(*T).Method` (Go): up to the first dot after
 *   the last slash (`github.com/org/repo/pkg`);
 * - `java/util/HashMap.get` (JFR): the same rule gives the class
 *   (`java/util/HashMap`);
 * - `a.b.Class.method` (Java, .NET dotted): all but the last two segments
 *   (`a.b`); with two segments (`runtime.mallocgc`), the first;
 * - `func (path/file.py:12)` (py-spy): the file's directory, else the file;
 * - anything else: the whole name.
 */
export function packageOf(name) {
  const n = String(name);
  const py = /^.*? \((.+?)(?::\d+)?\)$/.exec(n);
  if (py) {
    const file = py[1];
    const slash = file.lastIndexOf('/');
    return slash > 0 ? file.slice(0, slash) : file;
  }
  const colons = n.indexOf('::');
  if (colons > 0) {
    const head = n.slice(0, colons);
    // `<T as Trait>::f` and similar: drop leading punctuation.
    return head.replace(/^[<&*( ]+/, '') || head;
  }
  const lastSlash = n.lastIndexOf('/');
  if (lastSlash >= 0) {
    const dot = n.indexOf('.', lastSlash);
    return dot > 0 ? n.slice(0, dot) : n;
  }
  const parts = n.split('.');
  if (parts.length >= 3 && parts.every((p) => p.length > 0)) return parts.slice(0, -2).join('.');
  if (parts.length === 2 && parts[0]) return parts[0];
  return n;
}

function rgb([r, g, b], alpha = 1) {
  return alpha === 1 ? `rgb(${r}, ${g}, ${b})` : `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** The palette colour of a frame's package (an `[r, g, b]` triple). */
export function packageColor(name) {
  return PACKAGE_PALETTE[hashString(packageOf(name)) % PACKAGE_PALETTE.length];
}

/** Yellow → red by a share in [0, 1] of the visible range. */
export function valueColor(share) {
  const s = Math.max(0, Math.min(1, share));
  // hue 50 (yellow) down to 0 (red)
  const hue = 50 - 50 * s;
  return hslToRgb(hue, 0.85, 0.62 - 0.1 * s);
}

/** HSL (h in degrees, s and l in [0, 1]) to `[r, g, b]`. */
export function hslToRgb(h, s, l) {
  const c = (1 - Math.abs(2 * l - 1)) * s;
  const hp = (((h % 360) + 360) % 360) / 60;
  const x = c * (1 - Math.abs((hp % 2) - 1));
  let r = 0;
  let g = 0;
  let b = 0;
  if (hp < 1) [r, g, b] = [c, x, 0];
  else if (hp < 2) [r, g, b] = [x, c, 0];
  else if (hp < 3) [r, g, b] = [0, c, x];
  else if (hp < 4) [r, g, b] = [0, x, c];
  else if (hp < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  const m = l - c / 2;
  return [Math.round((r + m) * 255), Math.round((g + m) * 255), Math.round((b + m) * 255)];
}

/** Diff palettes: [good (smaller share), neutral, bad (larger share)]. */
export const DIFF_PALETTES = {
  default: { name: 'Green – grey – red', good: [0, 170, 0], neutral: [148, 142, 142], bad: [200, 0, 0] },
  colorblind: { name: 'Blue – grey – red (colour-blind)', good: [26, 133, 255], neutral: [148, 142, 142], bad: [220, 50, 32] },
};

/** Rounds a share to 0.01 % as Pyroscope does before comparing. */
function roundedPercent(value, total) {
  if (!total) return 0;
  return Math.round((value / total) * 10000) / 100;
}

/**
 * The relative change, in %, of a frame's share between baseline (left)
 * and comparison (right): (right% − left%) / left% × 100; +100 when the
 * baseline share is 0 and the comparison's is not (new code), 0 when both
 * are equal.
 */
export function diffPercent(leftValue, leftTotal, rightValue, rightTotal) {
  const l = roundedPercent(leftValue, leftTotal);
  const r = roundedPercent(rightValue, rightTotal);
  if (l === r) return 0;
  if (l === 0) return 100;
  return ((r - l) / l) * 100;
}

function lerp(a, b, t) {
  return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t));
}

/** The colour (`[r, g, b]`) of a change in %, clamped to ±clamp. */
export function diffColor(percent, clamp = 100, palette = 'default') {
  const p = DIFF_PALETTES[palette] || DIFF_PALETTES.default;
  const c = Math.max(1, clamp);
  const t = Math.max(-1, Math.min(1, percent / c));
  return t < 0 ? lerp(p.neutral, p.good, -t) : lerp(p.neutral, p.bad, t);
}

/** Legend swatches: `count` changes from −clamp to +clamp with their colours. */
export function diffLegend(clamp = 100, palette = 'default', count = 9) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const percent = -clamp + (2 * clamp * i) / (count - 1);
    out.push({ percent, color: diffColor(percent, clamp, palette) });
  }
  return out;
}

/** Grey used for bars that do not match a search, per theme. */
export function mutedColor(theme) {
  return theme === 'dark' ? [70, 70, 76] : [222, 222, 226];
}

/** Colour of the grey blocks standing for runs of bars too thin to draw. */
export function thinBarsColor(theme) {
  return theme === 'dark' ? [96, 96, 104] : [200, 200, 200];
}

export { rgb as cssColor };
