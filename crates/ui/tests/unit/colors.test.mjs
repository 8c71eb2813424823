// Package extraction, palettes and Pyroscope's diff colours.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  DIFF_PALETTES, diffColor, diffLegend, diffPercent, hashString, hslToRgb, packageColor, packageOf, valueColor,
} from '../../assets/js/colors.js';

test('package of a frame name, per language convention', () => {
  assert.equal(packageOf('github.com/grafana/pyroscope/pkg/model.(*Tree).Merge'), 'github.com/grafana/pyroscope/pkg/model');
  assert.equal(packageOf('net/http.(*conn).serve'), 'net/http');
  assert.equal(packageOf('runtime.mallocgc'), 'runtime');
  assert.equal(packageOf('java.util.HashMap.get'), 'java.util');
  assert.equal(packageOf('System.Threading.Thread.Sleep'), 'System.Threading');
  assert.equal(packageOf('tokio::runtime::park'), 'tokio');
  assert.equal(packageOf('<alloc::vec::Vec<T> as Drop>::drop'), 'alloc');
  assert.equal(packageOf('work (app/busy.py:3)'), 'app');
  assert.equal(packageOf('fib (busy.py:2)'), 'busy.py');
  assert.equal(packageOf('main'), 'main');
});

test('one package, one colour', () => {
  assert.deepEqual(packageColor('runtime.mallocgc'), packageColor('runtime.gcBgMarkWorker'));
  assert.equal(hashString('abc'), 0x1a47e90b);
});

test('diff percent follows Pyroscope: relative change of each side\'s share', () => {
  assert.equal(diffPercent(10, 100, 20, 100), 100);
  assert.equal(diffPercent(20, 100, 10, 100), -50);
  // Same share with different totals: no change.
  assert.equal(diffPercent(10, 100, 20, 200), 0);
  // New in the comparison: +100 %. Removed: -100 %.
  assert.equal(diffPercent(0, 100, 5, 100), 100);
  assert.equal(diffPercent(5, 100, 0, 100), -100);
  assert.equal(diffPercent(0, 0, 0, 0), 0);
});

test('diff colours: green, grey, red, clamped and interpolated', () => {
  const p = DIFF_PALETTES.default;
  assert.deepEqual(diffColor(0), p.neutral);
  assert.deepEqual(diffColor(100), p.bad);
  assert.deepEqual(diffColor(-100), p.good);
  assert.deepEqual(diffColor(250), p.bad, 'clamped at +100 %');
  assert.deepEqual(diffColor(50), [174, 71, 71]);
  assert.deepEqual(diffColor(-50), [74, 156, 71]);
  // A ±20 % clamp saturates sooner.
  assert.deepEqual(diffColor(20, 20), p.bad);
  assert.deepEqual(diffColor(-100, 100, 'colorblind'), DIFF_PALETTES.colorblind.good);
  const legend = diffLegend(100, 'default', 5);
  assert.deepEqual(legend.map((s) => s.percent), [-100, -50, 0, 50, 100]);
  assert.deepEqual(legend[2].color, p.neutral);
});

test('value colours run from yellow to red', () => {
  assert.deepEqual(hslToRgb(0, 1, 0.5), [255, 0, 0]);
  assert.deepEqual(hslToRgb(120, 1, 0.5), [0, 255, 0]);
  const small = valueColor(0);
  const large = valueColor(1);
  assert.ok(small[1] > large[1], 'less green for a larger share');
});
