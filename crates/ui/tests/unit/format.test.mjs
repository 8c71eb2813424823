// Units, percentages, time expressions and URL state.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  describeRange, formatBytes, formatChange, formatCount, formatPercent, formatValue, parseProfileType, parseTime,
  stepSeconds, unitKind, valueName,
} from '../../assets/js/format.js';
import {
  buildUrl, formatMatchers, pageOfPath, parseMatchers, parseQuery, selectorOf, withMatcher,
} from '../../assets/js/state.js';

test('values in their units', () => {
  assert.equal(formatValue(850, 'nanoseconds'), '850 ns');
  assert.equal(formatValue(1_200_000, 'nanoseconds'), '1.20 ms');
  assert.equal(formatValue(3.5e9, 'nanoseconds'), '3.50 s');
  assert.equal(formatValue(120e9, 'nanoseconds'), '2.00 min');
  assert.equal(formatValue(5400e9, 'nanoseconds'), '1.50 h');
  assert.equal(formatValue(3 * 86400e9, 'nanoseconds'), '3.00 days');
  assert.equal(formatValue(1500, 'microseconds'), '1.50 ms');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatValue(20 * 1024 * 1024, 'bytes'), '20.0 MiB');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1200), '1.20 K');
  assert.equal(formatValue(3_400_000, 'objects'), '3.40 M objects');
  assert.equal(formatValue(42, 'count'), '42');
  assert.equal(unitKind('bytes'), 'bytes');
  assert.equal(valueName('nanoseconds', 'cpu'), 'CPU time');
  assert.equal(valueName('bytes', 'alloc_space'), 'Memory');
  assert.equal(valueName('count', 'goroutine'), 'Goroutine');
});

test('percentages', () => {
  assert.equal(formatPercent(0.1234), '12.34 %');
  assert.equal(formatPercent(0.00001), '< 0.01 %');
  assert.equal(formatPercent(0), '0.00 %');
  assert.equal(formatChange(12.5), '+12.50 %');
  assert.equal(formatChange(-3), '-3.00 %');
});

test('profile type ids', () => {
  const t = parseProfileType('process_cpu:cpu:nanoseconds:cpu:nanoseconds');
  assert.equal(t.sampleUnit, 'nanoseconds');
  assert.equal(t.sampleType, 'cpu');
});

test('time expressions and steps', () => {
  const now = 1_700_000_000_000;
  assert.equal(parseTime('now', now), now);
  assert.equal(parseTime('now-1h', now), now - 3_600_000);
  assert.equal(parseTime('now-7d', now), now - 7 * 86_400_000);
  assert.equal(parseTime('1700000000', now), now, 'seconds');
  assert.equal(parseTime('1700000000000', now), now, 'milliseconds');
  assert.ok(Number.isNaN(parseTime('yesterday', now)));
  assert.equal(describeRange('now-1h', 'now', now), 'Last 1 hour');
  assert.equal(describeRange('now-15m', 'now', now), 'Last 15 minutes');
  assert.equal(describeRange('1000', '2000', now, (ms) => String(ms)), '1000000 → 2000000');
  assert.equal(stepSeconds(0, 3_600_000), 15);
  assert.equal(stepSeconds(0, 86_400_000), 600);
});

test('URL state round-trips and leaves defaults out', () => {
  assert.equal(pageOfPath(''), 'single');
  assert.equal(pageOfPath('/diff/'), 'diff');
  assert.equal(pageOfPath('explore'), 'explore');
  const s = parseQuery('?service=api&type=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds&search=foo&bogus=1');
  assert.equal(s.service, 'api');
  assert.equal(s.search, 'foo');
  assert.equal(s.from, 'now-1h');
  assert.equal(s.bogus, undefined);
  const url = buildUrl('diff', s);
  assert.equal(url, 'diff?service=api&type=process_cpu%3Acpu%3Ananoseconds%3Acpu%3Ananoseconds&search=foo');
  assert.deepEqual(parseQuery(url.split('?')[1]), s);
  assert.equal(buildUrl('single', parseQuery('')), './');
});

test('matchers parse, print and build selectors', () => {
  const list = parseMatchers('env="dev", pod=~"api-.*",x!="a\\"b"');
  assert.deepEqual(list, [
    { name: 'env', op: '=', value: 'dev' },
    { name: 'pod', op: '=~', value: 'api-.*' },
    { name: 'x', op: '!=', value: 'a"b' },
  ]);
  assert.equal(formatMatchers(list), 'env="dev",pod=~"api-.*",x!="a\\"b"');
  assert.deepEqual(parseMatchers('{a!~"b"}'), [{ name: 'a', op: '!~', value: 'b' }]);
  assert.throws(() => parseMatchers('env=dev'), /quoted/);
  assert.throws(() => parseMatchers('="x"'), /label name/);
  assert.equal(selectorOf('api', 'env="dev"'), '{service_name="api",env="dev"}');
  assert.equal(selectorOf('', ''), '{}');
  assert.equal(withMatcher('env="dev"', { name: 'env', op: '=', value: 'prod' }), 'env="prod"');
});
