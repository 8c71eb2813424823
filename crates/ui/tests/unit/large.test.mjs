// A 200,000-node flame graph: decoding and laying out one screen stay
// fast, and the layout never grows with the size of the graph, only with
// the size of the viewport.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decodeFlamegraph, findPath } from '../../assets/js/flamegraph/model.js';
import { hitTest, visibleBars } from '../../assets/js/flamegraph/layout.js';
import { fillGaps } from '../../assets/js/timeline.js';

/** root → 400 functions → 500 leaves each (1 + 400 + 200,000 nodes), every leaf worth k % 7 + 1. */
function wide() {
  const names = ['total'];
  const l1 = [];
  const l2 = [];
  let total = 0;
  for (let f = 0; f < 400; f++) {
    names.push(`pkg${f % 20}.fn${f}`);
    const fname = names.length - 1;
    let sub = 0;
    for (let k = 0; k < 500; k++) {
      const v = (k % 7) + 1;
      names.push(`leaf${f}_${k}`);
      l2.push(0, v, v, names.length - 1);
      sub += v;
    }
    l1.push(0, sub, 0, fname);
    total += sub;
  }
  return { names, levels: [[0, total, 0, 0], l1, l2], total };
}

test('200k nodes decode, lay out one screen and hit-test quickly', () => {
  const fg = wide();
  const t0 = performance.now();
  const m = decodeFlamegraph(fg);
  const decodeMs = performance.now() - t0;
  assert.equal(m.count, 1 + 400 + 200_000);
  assert.equal(m.value[0], fg.total);
  const vp = { width: 1200, height: 600, rowHeight: 20, viewStart: 0, viewEnd: m.value[0], minWidth: 2 };
  const t1 = performance.now();
  const { bars, thin } = visibleBars(m, vp);
  const layoutMs = performance.now() - t1;
  // 1,600,000 ticks over 1200 px: every leaf is under 2 px, so the leaf row
  // is a handful of grey blocks, not 200,000 rectangles.
  assert.ok(bars.length + thin.length < 1200, `${bars.length} bars, ${thin.length} thin blocks`);
  assert.ok(bars.some((b) => b.i === 0));
  // Every node is still reachable by the pointer: the leaf under x = 600.
  const leaf = hitTest(m, vp, 600, 45);
  assert.equal(m.level[leaf], 2);
  // Focusing a function brings its 500 leaves to full size.
  const fn = findPath(m, ['pkg0.fn0']);
  const focused = visibleBars(m, { ...vp, viewStart: m.start[fn], viewEnd: m.start[fn] + m.value[fn] });
  assert.equal(focused.bars.filter((b) => b.level === 2).length + focused.thin.length > 0, true);
  assert.ok(decodeMs < 2000, `decode took ${decodeMs} ms`);
  assert.ok(layoutMs < 200, `layout took ${layoutMs} ms`);
});

test('timeline gaps fall to zero instead of joining distant points', () => {
  const step = 10;
  // Points at 100 and 200 in a range 0..300: zeros after, between and before.
  assert.deepEqual(fillGaps([[100, 5], [200, 7]], 0, 300, step), [
    [90, 0], [100, 5], [110, 0], [190, 0], [200, 7], [210, 0],
  ]);
  // Neighbouring steps stay joined; no zeros at ends that touch the range.
  assert.deepEqual(fillGaps([[0, 1], [10, 2], [20, 3]], 0, 25, step), [[0, 1], [10, 2], [20, 3]]);
  // A gap of exactly two steps gets one zero in the middle.
  assert.deepEqual(fillGaps([[0, 1], [20, 3]], 0, 20, step), [[0, 1], [10, 0], [20, 3]]);
  assert.deepEqual(fillGaps([], 0, 100, step), []);
});
