// Decoding of flame graphs and the queries on the model.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  compileSearch, decodeFlamegraph, findPath, matchNames, matchStats, nameOf, neighbours, pathOf, toFolded,
} from '../../assets/js/flamegraph/model.js';

// main;foo 30, main;bar 10, main 5: the model crate's worked example.
export const SINGLE = {
  names: ['total', 'main', 'foo', 'bar'],
  levels: [[0, 45, 0, 0], [0, 45, 5, 1], [5, 10, 10, 3, 0, 30, 30, 2]],
  total: 45,
  maxSelf: 30,
};

test('decodes delta-encoded levels into absolute spans', () => {
  const m = decodeFlamegraph(SINGLE);
  assert.equal(m.count, 4);
  assert.equal(m.depth, 3);
  assert.deepEqual([...m.start], [0, 0, 5, 15]);
  assert.deepEqual([...m.value], [45, 45, 10, 30]);
  assert.deepEqual([...m.self], [0, 5, 10, 30]);
  assert.deepEqual([...m.parent], [-1, 0, 1, 1]);
  assert.deepEqual([m.childStart[1], m.childEnd[1]], [2, 4]);
  assert.equal(nameOf(m, 3), 'foo');
  assert.deepEqual(pathOf(m, 3), ['main', 'foo']);
  assert.equal(findPath(m, ['main', 'bar']), 2);
  assert.equal(findPath(m, ['main', 'nope']), -1);
  assert.equal(findPath(m, []), 0);
});

test('decodes the Connect JSON shape (int64 as strings) the same way', () => {
  const connect = {
    names: SINGLE.names,
    levels: SINGLE.levels.map((l) => ({ values: l.map(String) })),
    total: '45',
    maxSelf: '30',
  };
  const a = decodeFlamegraph(SINGLE);
  const b = decodeFlamegraph(connect);
  assert.deepEqual([...b.start], [...a.start]);
  assert.deepEqual([...b.value], [...a.value]);
  assert.equal(b.total, 45);
});

test('decodes a diff: width is left plus right, both sides kept', () => {
  // left main;foo 30, main;bar 10 — right main;foo 10, main;baz 20
  const diff = {
    names: ['total', 'main', 'bar', 'baz', 'foo'],
    levels: [
      [0, 40, 0, 0, 30, 0, 0],
      [0, 40, 0, 0, 30, 0, 1],
      [0, 10, 10, 0, 0, 0, 2, 0, 0, 0, 0, 20, 20, 3, 0, 30, 30, 0, 10, 10, 4],
    ],
    total: 70,
    maxSelf: 30,
    leftTicks: 40,
    rightTicks: 30,
  };
  const m = decodeFlamegraph(diff);
  assert.equal(m.diff, true);
  assert.deepEqual([...m.value], [70, 70, 10, 20, 40]);
  assert.deepEqual([...m.start], [0, 0, 0, 10, 30]);
  assert.deepEqual([...m.leftValue], [40, 40, 10, 0, 30]);
  assert.deepEqual([...m.rightValue], [30, 30, 0, 20, 10]);
  assert.deepEqual([...m.parent], [-1, 0, 1, 1, 1]);
});

test('search: substrings ignore case, /regex/ is explicit, commas mean or', () => {
  assert.equal(compileSearch(''), null);
  assert.equal(compileSearch('  ,  '), null);
  const s = compileSearch('FOO');
  assert.ok(s('a.foo.b'));
  assert.ok(!s('bar'));
  const r = compileSearch('/^ba[rz]$/');
  assert.ok(r('bar') && r('baz') && !r('xbar'));
  const or = compileSearch('foo, baz');
  assert.ok(or('foo') && or('baz') && !or('bar'));
  // An invalid expression is searched as text.
  const bad = compileSearch('/a(/');
  assert.ok(bad('x/a(/y'));
});

test('match share counts nested matches once', () => {
  // a;b;a;c 4, a;d 6, x 10 — "a" matches at depth 1 and 3: 10 of 20.
  const fg = {
    names: ['total', 'a', 'x', 'b', 'd', 'a', 'c'],
    levels: [
      [0, 20, 0, 0],
      [0, 10, 0, 1, 0, 10, 10, 2],
      [0, 4, 0, 3, 0, 6, 6, 4],
      [0, 4, 0, 5],
      [0, 4, 4, 6],
    ],
    total: 20,
  };
  const m = decodeFlamegraph(fg);
  const st = matchStats(m, matchNames(m, compileSearch('a')));
  assert.equal(st.matched, 10);
  assert.equal(st.nodes, 2);
  assert.equal(st.ratio, 0.5);
  const c = matchStats(m, matchNames(m, compileSearch('c,d')));
  assert.equal(c.matched, 10);
  // Against a focused subtree (the first "a"), the share is of that subtree.
  const inA = matchStats(m, matchNames(m, compileSearch('d')), findPath(m, ['a']));
  assert.equal(inA.ratio, 0.6);
});

test('keyboard neighbours: parent, widest child, same-level siblings', () => {
  const m = decodeFlamegraph(SINGLE);
  assert.deepEqual(neighbours(m, 1), { up: 0, down: 3, left: 1, right: 1 });
  assert.deepEqual(neighbours(m, 2), { up: 1, down: 2, left: 2, right: 3 });
  assert.deepEqual(neighbours(m, 0), { up: 0, down: 1, left: 0, right: 0 });
});

test('folded export lists self values per stack', () => {
  assert.equal(toFolded(decodeFlamegraph(SINGLE)), 'main 5\nmain;bar 10\nmain;foo 30\n');
});
