// The flame-graph model: Pyroscope's "levels" encoding decoded once into
// flat typed arrays, plus the queries the view needs (paths, search
// matches, match share, neighbours for keyboard moves, folded export).
// Pure (no DOM); unit-tested with node --test.
//
// Levels: one array per depth; 4 numbers per node for a single profile
// (x offset, total, self, name index) and 7 for a diff (left x, left
// total, left self, right x, right total, right self, name index). The x
// offsets are delta-encoded: each is relative to the end of the previous
// node of the same level. A diff bar spans both sides: its width is the
// left total plus the right total.

function num(v) {
  return typeof v === 'number' ? v : Number(v);
}

/**
 * Decodes a flame graph as the querier's Connect JSON gives it
 * (`levels: [{values: ["0", ...]}]`, int64 as strings) or as Kiln's UI API
 * gives it (`levels: [[0, ...]]`).
 */
export function decodeFlamegraph(fg) {
  const names = fg.names || ['total'];
  const rawLevels = (fg.levels || []).map((l) => (Array.isArray(l) ? l : l.values || []));
  const diff = fg.leftTicks !== undefined || fg.rightTicks !== undefined || (rawLevels[0] && rawLevels[0].length === 7);
  const width = diff ? 7 : 4;
  let count = 0;
  for (const l of rawLevels) count += Math.floor(l.length / width);
  const depth = rawLevels.length;
  const m = {
    diff,
    names,
    count,
    depth,
    total: num(fg.total || 0),
    maxSelf: num(fg.maxSelf || 0),
    leftTicks: num(fg.leftTicks || 0),
    rightTicks: num(fg.rightTicks || 0),
    level: new Int32Array(count),
    start: new Float64Array(count),
    value: new Float64Array(count),
    self: new Float64Array(count),
    name: new Int32Array(count),
    parent: new Int32Array(count),
    childStart: new Int32Array(count),
    childEnd: new Int32Array(count),
    levelStart: new Int32Array(depth + 1),
    leftValue: diff ? new Float64Array(count) : null,
    leftSelf: diff ? new Float64Array(count) : null,
    rightValue: diff ? new Float64Array(count) : null,
    rightSelf: diff ? new Float64Array(count) : null,
  };
  let i = 0;
  for (let d = 0; d < depth; d++) {
    m.levelStart[d] = i;
    const l = rawLevels[d];
    let endL = 0;
    let endR = 0;
    for (let k = 0; k + width <= l.length; k += width) {
      m.level[i] = d;
      if (diff) {
        const lx = endL + num(l[k]);
        const lt = num(l[k + 1]);
        const rx = endR + num(l[k + 3]);
        const rt = num(l[k + 4]);
        endL = lx + lt;
        endR = rx + rt;
        m.start[i] = lx + rx;
        m.value[i] = lt + rt;
        m.self[i] = num(l[k + 2]) + num(l[k + 5]);
        m.leftValue[i] = lt;
        m.leftSelf[i] = num(l[k + 2]);
        m.rightValue[i] = rt;
        m.rightSelf[i] = num(l[k + 5]);
        m.name[i] = num(l[k + 6]);
      } else {
        const x = endL + num(l[k]);
        const t = num(l[k + 1]);
        endL = x + t;
        m.start[i] = x;
        m.value[i] = t;
        m.self[i] = num(l[k + 2]);
        m.name[i] = num(l[k + 3]);
      }
      i++;
    }
  }
  m.levelStart[depth] = i;
  if (diff && !m.total) m.total = m.leftTicks + m.rightTicks;
  if (!m.total && count > 0) m.total = m.value[0];
  // Parents and child ranges: both levels are sorted by start, so one
  // merge pass per level pairs each node with the parent whose span holds it.
  m.parent.fill(-1);
  for (let d = 1; d < depth; d++) {
    let p = m.levelStart[d - 1];
    const pEnd = m.levelStart[d];
    for (let c = m.levelStart[d]; c < m.levelStart[d + 1]; c++) {
      while (p < pEnd && m.start[c] >= m.start[p] + m.value[p]) p++;
      if (p >= pEnd) break;
      m.parent[c] = p;
    }
  }
  for (let k = 0; k < count; k++) {
    m.childStart[k] = -1;
    m.childEnd[k] = -1;
  }
  for (let c = 0; c < count; c++) {
    const p = m.parent[c];
    if (p < 0) continue;
    if (m.childStart[p] < 0) m.childStart[p] = c;
    m.childEnd[p] = c + 1;
  }
  return m;
}

/** The name of node `i`. */
export function nameOf(m, i) {
  return m.names[m.name[i]] ?? '';
}

/** The frame names from the root's first child down to node `i`. */
export function pathOf(m, i) {
  const out = [];
  for (let n = i; n > 0 && m.level[n] > 0; n = m.parent[n]) out.push(nameOf(m, n));
  return out.reverse();
}

/** The node at a path of frame names, or -1 (0, the root, for an empty path). */
export function findPath(m, path) {
  let node = 0;
  if (m.count === 0) return -1;
  for (const frame of path) {
    let next = -1;
    for (let c = m.childStart[node]; c >= 0 && c < m.childEnd[node]; c++) {
      if (nameOf(m, c) === frame) {
        next = c;
        break;
      }
    }
    if (next < 0) return -1;
    node = next;
  }
  return node;
}

/**
 * Compiles a search: comma-separated terms, any of which may match. A term
 * written `/.../flags` is a regular expression; anything else is a
 * case-insensitive substring. Returns null for an empty search.
 */
export function compileSearch(query) {
  const terms = String(query || '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (terms.length === 0) return null;
  const tests = terms.map((term) => {
    const re = /^\/(.+)\/([a-z]*)$/.exec(term);
    if (re) {
      try {
        const r = new RegExp(re[1], re[2].replace(/[gy]/g, ''));
        return (s) => r.test(s);
      } catch {
        // not a valid expression: treat it as text
      }
    }
    const needle = term.toLowerCase();
    return (s) => s.toLowerCase().includes(needle);
  });
  return (name) => tests.some((t) => t(name));
}

/** Which names match: a Uint8Array indexed by name index (null: no search). */
export function matchNames(m, matcher) {
  if (!matcher) return null;
  const out = new Uint8Array(m.names.length);
  for (let k = 1; k < m.names.length; k++) out[k] = matcher(m.names[k]) ? 1 : 0;
  return out;
}

/**
 * The share of the subtree of `root` spent in matching frames: the values
 * of the outermost matching nodes are summed, so a match nested inside
 * another match is counted once.
 */
export function matchStats(m, nameMatches, root = 0) {
  const total = m.count ? m.value[root] : 0;
  let matched = 0;
  let nodes = 0;
  if (!nameMatches || m.count === 0) return { matched, nodes, total, ratio: 0 };
  const stack = [[root, false]];
  while (stack.length) {
    const [n, inside] = stack.pop();
    const hit = m.level[n] > 0 && nameMatches[m.name[n]] === 1;
    if (hit) nodes++;
    if (hit && !inside) matched += m.value[n];
    for (let c = m.childStart[n]; c >= 0 && c < m.childEnd[n]; c++) stack.push([c, inside || hit]);
  }
  return { matched, nodes, total, ratio: total ? matched / total : 0 };
}

/** The index range `[lo, hi)` of a level's nodes. */
export function levelRange(m, d) {
  return [m.levelStart[d], m.levelStart[d + 1]];
}

/** The neighbours of node `i` for keyboard moves. */
export function neighbours(m, i) {
  const d = m.level[i];
  const [lo, hi] = levelRange(m, d);
  let widest = -1;
  for (let c = m.childStart[i]; c >= 0 && c < m.childEnd[i]; c++) {
    if (widest < 0 || m.value[c] > m.value[widest]) widest = c;
  }
  return {
    up: m.parent[i] >= 0 ? m.parent[i] : i,
    down: widest >= 0 ? widest : i,
    left: i > lo ? i - 1 : i,
    right: i + 1 < hi ? i + 1 : i,
  };
}

/** The profile as folded stacks (`a;b;c self`), one line per node with self. */
export function toFolded(m) {
  const lines = [];
  for (let i = 1; i < m.count; i++) {
    if (m.self[i] > 0) lines.push(`${pathOf(m, i).join(';')} ${m.self[i]}`);
  }
  return lines.join('\n') + (lines.length ? '\n' : '');
}
