// Node rectangles, hit-testing, labels and bar colours, without a canvas.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { decodeFlamegraph, matchNames, compileSearch } from '../../assets/js/flamegraph/model.js';
import {
  barColor, barLabel, fitText, focusRange, hitTest, otherColor, visibleBars,
} from '../../assets/js/flamegraph/layout.js';
import { diffColor, mutedColor, packageColor } from '../../assets/js/colors.js';
import { SINGLE } from './model.test.mjs';

const vp = (over = {}) => ({ width: 450, height: 200, scrollTop: 0, rowHeight: 20, viewStart: 0, viewEnd: 45, minWidth: 2, ...over });

test('rectangles: 10 px per tick, one row per level', () => {
  const m = decodeFlamegraph(SINGLE);
  const { bars, thin } = visibleBars(m, vp());
  assert.equal(thin.length, 0);
  assert.deepEqual(
    bars.map((b) => [b.i, b.x, b.y, b.w]),
    [[0, 0, 0, 450], [1, 0, 20, 450], [2, 50, 40, 100], [3, 150, 40, 300]],
  );
});

test('focus: the focused node fills the width, others outside are culled', () => {
  const m = decodeFlamegraph(SINGLE);
  const range = focusRange(m, 3); // foo: ticks 15..45
  assert.deepEqual(range, { viewStart: 15, viewEnd: 45 });
  const { bars } = visibleBars(m, vp(range));
  // root and main are ancestors and stay (wider than the view); bar is gone.
  assert.deepEqual(bars.map((b) => b.i), [0, 1, 3]);
  const foo = bars.find((b) => b.i === 3);
  assert.equal(foo.x, 0);
  assert.equal(foo.w, 450);
  assert.equal(bars[0].x, -225, 'ancestors keep their unclipped geometry');
});

test('only the rows inside the viewport are laid out', () => {
  const m = decodeFlamegraph(SINGLE);
  const { bars } = visibleBars(m, vp({ height: 20, scrollTop: 20 }));
  assert.deepEqual(bars.map((b) => [b.i, b.y]), [[1, 0]]);
});

test('inverted graphs put the root on the bottom row', () => {
  const m = decodeFlamegraph(SINGLE);
  const { bars } = visibleBars(m, vp({ inverted: true }));
  assert.deepEqual(bars.map((b) => [b.i, b.y]), [[0, 40], [1, 20], [2, 0], [3, 0]]);
  assert.equal(hitTest(m, vp({ inverted: true }), 60, 5), 2);
  assert.equal(hitTest(m, vp({ inverted: true }), 60, 45), 0);
});

test('thin neighbours merge into one block; search state splits blocks', () => {
  // 100 leaves of 1 tick under one parent of 100 ticks; 100 px wide → 1 px each.
  const names = ['total', 'p'];
  const leaves = [];
  for (let k = 0; k < 100; k++) {
    names.push(k % 2 ? `odd${k}` : `even${k}`);
    leaves.push(0, 1, 1, k + 2);
  }
  const m = decodeFlamegraph({ names, levels: [[0, 100, 0, 0], [0, 100, 0, 1], leaves], total: 100 });
  const base = { width: 100, height: 100, rowHeight: 20, viewStart: 0, viewEnd: 100, minWidth: 2 };
  const { bars, thin } = visibleBars(m, base);
  assert.equal(bars.length, 2);
  assert.equal(thin.length, 1);
  assert.equal(thin[0].w, 100);
  const matches = matchNames(m, compileSearch('even0'));
  const split = visibleBars(m, base, (i) => matches[m.name[i]]);
  assert.equal(split.thin.length, 2, 'the matching leaf gets its own block');
  // Every thin leaf is still found by the pointer.
  assert.equal(hitTest(m, base, 57.5, 45), 2 + 57);
});

test('hit-testing misses outside the graph', () => {
  const m = decodeFlamegraph(SINGLE);
  assert.equal(hitTest(m, vp(), 10, 70), -1);
  assert.equal(hitTest(m, vp(), -1, 5), -1);
  assert.equal(hitTest(m, vp(), 449, 45), 3);
  assert.equal(hitTest(m, vp(), 50, 45), 2);
  assert.equal(hitTest(m, vp(), 49.9, 45), -1, 'main\'s self part has no child');
});

test('labels: full text, then the name, then the head with an ellipsis', () => {
  assert.equal(barLabel('main', '50.00 %, 1.00 s', 400, 7), 'main (50.00 %, 1.00 s)');
  assert.equal(barLabel('main.handler', '50.00 %, 1.00 s', 100, 7), 'main.handler');
  assert.equal(barLabel('main.handler', '', 60, 7), 'main.h…');
  assert.equal(barLabel('main', '', 20, 7), '');
  assert.equal(fitText('abcdef', 4 * 7 + 8, 7), 'abc…');
  assert.equal(fitText('abcdef', 100, 7), 'abcdef');
});

test('colours: package, muted by search, other, diff', () => {
  const m = decodeFlamegraph(SINGLE);
  assert.deepEqual(barColor(m, 3, { mode: 'package' }), packageColor('foo'));
  const matches = matchNames(m, compileSearch('bar'));
  assert.deepEqual(barColor(m, 3, { mode: 'package', matches, theme: 'light' }), mutedColor('light'));
  assert.deepEqual(barColor(m, 2, { mode: 'package', matches }), packageColor('bar'));
  const withOther = decodeFlamegraph({ names: ['total', 'other'], levels: [[0, 5, 0, 0], [0, 5, 5, 1]], total: 5 });
  assert.deepEqual(barColor(withOther, 1, { theme: 'dark' }), otherColor('dark'));
  const diff = decodeFlamegraph({
    names: ['total', 'a', 'b'],
    levels: [[0, 10, 0, 0, 10, 0, 0], [0, 5, 5, 0, 10, 10, 1, 0, 5, 5, 0, 0, 0, 2]],
    leftTicks: 10,
    rightTicks: 10,
  });
  // a: 50 % → 100 %: +100 % (full red); b: 50 % → 0 %: −100 % (full green).
  assert.deepEqual(barColor(diff, 1, { clamp: 100 }), [200, 0, 0]);
  assert.deepEqual(barColor(diff, 2, { clamp: 100 }), [0, 170, 0]);
  assert.deepEqual(barColor(diff, 0, { clamp: 100 }), diffColor(0));
});
