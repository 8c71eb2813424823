// End-to-end tests of the web UI in Chromium (playwright-core driving
// Debian's `chromium`). Started by crates/server/tests/e2e/ui.rs, which
// runs `kiln` (under a base path), ingests fixed data and writes what the
// pages must show, computed from that data, to the JSON file named by
// KILN_UI_EXPECT. Every view is opened, clicked, searched and dragged on;
// the checks read what the page shows (texts, table rows, URL state).
// Screenshots go to KILN_UI_SHOTS.
//
// Environment: KILN_UI_EXPECT (required), KILN_UI_SHOTS (default
// ./screenshots), KILN_CHROMIUM (default /usr/bin/chromium).

import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const X = JSON.parse(readFileSync(process.env.KILN_UI_EXPECT, 'utf8'));
const SHOTS = process.env.KILN_UI_SHOTS || 'screenshots';
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const BASE = X.base; // e.g. http://127.0.0.1:41234/kiln/
const BASE_PATH = new URL(BASE).pathname;
mkdirSync(SHOTS, { recursive: true });

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

// ---- what the page must show, formatted independently of the UI's code ----

/** Nanoseconds as the UI writes CPU time (`7.00 s`, `400 ms`). */
function seconds(ns) {
  const s = ns / 1e9;
  if (s >= 60) throw new Error('fixture values stay under a minute');
  if (s >= 1) return `${s >= 10 ? s.toFixed(1) : s.toFixed(2)} s`;
  const ms = ns / 1e6;
  return `${ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)} ms`;
}
const pct = (part, whole) => `${((100 * part) / whole).toFixed(2)} %`;

function url(path, params) {
  const u = new URL(path, BASE);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, String(v));
  return u.href;
}

const common = { service: X.service, type: X.type, from: X.range.from, until: X.range.until };
const sides = { leftFrom: X.left.from, leftUntil: X.left.until, rightFrom: X.right.from, rightUntil: X.right.until };

// ---- harness -----------------------------------------------------------

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, 'ok', Date.now() - t0]);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, 'FAILED', Date.now() - t0]);
    console.log(`FAIL ${name}\n${e.stack || e}`);
    throw e;
  }
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true, colorScheme: 'light' });
const page = await context.newPage();
const pageErrors = [];
const foreignRequests = [];
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('console', (m) => { if (m.type() === 'error') console.log(`  [console] ${m.text()}`); });
page.on('request', (r) => {
  const u = new URL(r.url());
  if (u.protocol.startsWith('http') && !u.pathname.startsWith(BASE_PATH)) foreignRequests.push(r.url());
});
page.setDefaultTimeout(20_000);

const byTest = (id) => page.getByTestId(id);

/** The rows a virtual table shows, with the values it carries. */
async function tableRows(testId) {
  return page.$$eval(`[data-testid="${testId}"] .row`, (rows) => rows
    .map((r) => ({ ...r.dataset, top: parseFloat(r.style.top), cells: [...r.querySelectorAll('.cell')].map((c) => c.textContent) }))
    .sort((a, b) => a.top - b.top));
}

async function waitRendered(testId, nodes = null) {
  await page.waitForFunction(([id, n]) => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    return el && el.dataset.state === 'rendered' && (n === null || el.dataset.nodes === String(n));
  }, [testId, nodes]);
}

async function waitDataset(testId, key, value) {
  await page.waitForFunction(([id, k, v]) => document.querySelector(`[data-testid="${id}"]`)?.dataset[k] === String(v), [testId, key, value]);
}

function param(name) {
  return new URL(page.url()).searchParams.get(name);
}

async function download(click) {
  const [dl] = await Promise.all([page.waitForEvent('download'), click()]);
  return { name: dl.suggestedFilename(), bytes: readFileSync(await dl.path()) };
}

/** The canvas point at the middle of row `level`, `fraction` across. */
async function canvasPoint(testId, level, fraction) {
  const box = await byTest(`${testId}-canvas`).boundingBox();
  return { x: Math.round(box.width * fraction), y: level * 20 + 10 };
}

// ---- Single view -------------------------------------------------------

try {
  await step('single view: summary, table rows and flame graph from real data', async () => {
    await page.goto(url('./', common));
    await waitDataset('summary', 'total', X.total);
    await waitRendered('flamegraph', X.nodes);
    const summary = await byTest('summary').textContent();
    assert.match(summary, new RegExp(`CPU time: ${seconds(X.total).replace('.', '\\.')} in all`));
    assert.match(summary, new RegExp(`${Object.keys(X.functions).length} functions`));
    const rows = await tableRows('function-table');
    const got = Object.fromEntries(rows.map((r) => [r.name, { self: Number(r.self), total: Number(r.total) }]));
    assert.deepEqual(got, X.functions);
    // Sorted by self, descending; each cell shows the value and its share.
    const selfs = rows.map((r) => Number(r.self));
    assert.deepEqual(selfs, [...selfs].sort((a, b) => b - a));
    const top = rows[0];
    assert.equal(top.cells[1], `${seconds(Number(top.self))} · ${pct(Number(top.self), X.total)}`);
    // The service and type selectors show the URL's choice.
    assert.equal(await byTest('service-select').inputValue(), X.service);
    assert.equal(await byTest('type-select').inputValue(), X.type);
    assert.equal(await page.title(), `Single view · ${X.service} · Kiln`);
  });

  await step('single view: sorting the table by total', async () => {
    await page.click('[data-testid="function-table"] [data-sort="total"]');
    let rows = await tableRows('function-table');
    assert.equal(rows[0].name, 'main');
    assert.equal(Number(rows[0].total), X.total);
    await page.click('[data-testid="function-table"] [data-sort="total"]');
    rows = await tableRows('function-table');
    const totals = rows.map((r) => Number(r.total));
    assert.deepEqual(totals, [...totals].sort((a, b) => a - b), 'second click sorts ascending');
    await page.click('[data-testid="function-table"] [data-sort="self"]');
  });

  await step('single view: hover tooltip with unit-formatted values', async () => {
    const p = await canvasPoint('flamegraph', 1, 0.5);
    await byTest('flamegraph-canvas').hover({ position: p });
    const tip = page.locator('#tooltip');
    await tip.waitFor({ state: 'visible' });
    const text = await tip.textContent();
    assert.match(text, /^main/);
    assert.ok(text.includes(`Total cpu time${seconds(X.functions.main.total)} (100.00 %)`), text);
    assert.ok(text.includes('Self cpu time0 ns (0.00 %)'), text);
  });

  await step('single view: search highlights and reports the matched share', async () => {
    await byTest('search-input').fill('json');
    const expected = `matched ${pct(X.functions['json.encode'].total, X.total)} of total · 1 frame`;
    await page.waitForFunction((t) => document.querySelector('[data-testid="search-match"]').textContent === t, expected);
    await page.waitForFunction(() => new URL(location.href).searchParams.get('search') === 'json');
    const rows = await tableRows('function-table');
    assert.deepEqual(rows.map((r) => r.name), ['json.encode']);
    assert.equal(await page.locator('[data-testid="function-table"] .footer').textContent(), `1 of ${Object.keys(X.functions).length} rows match`);
    // Nested matches count once: `render` appears twice on one stack.
    await byTest('search-input').fill('render');
    const once = `matched ${pct(X.functions.render.total, X.total)} of total · 2 frames`;
    await page.waitForFunction((t) => document.querySelector('[data-testid="search-match"]').textContent === t, once);
    await byTest('search-input').fill('');
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('search'));
  });

  await step('single view: click focuses a node, breadcrumbs and reset', async () => {
    // handler is 75 %+ of main's width whichever side it is drawn on, so
    // 60 % across row 2 is always inside it.
    await byTest('flamegraph-canvas').click({ position: await canvasPoint('flamegraph', 2, 0.6) });
    await page.waitForFunction(() => new URL(location.href).searchParams.get('focus') === 'main;handler');
    const crumbs = await page.locator('[data-testid="flamegraph"] .fg-crumbs').textContent();
    assert.ok(crumbs.includes('all›main›handler'), crumbs);
    assert.ok(crumbs.includes(`${pct(X.functions.handler.total, X.total)} of total`), crumbs);
    // The focus survives a reload: it is in the URL.
    await page.reload();
    await waitRendered('flamegraph', X.nodes);
    assert.ok((await page.locator('[data-testid="flamegraph"] .fg-crumbs').textContent()).includes('main›handler'));
    await byTest('reset-focus').click();
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('focus'));
  });

  await step('single view: keyboard navigation moves and focuses', async () => {
    await byTest('flamegraph').focus();
    await page.keyboard.press('ArrowDown'); // root → main
    await page.keyboard.press('ArrowDown'); // main → its widest child, handler
    assert.equal(await byTest('flamegraph').getAttribute('data-selected'), 'handler');
    await page.keyboard.press('ArrowDown'); // handler → db.query (widest)
    assert.equal(await byTest('flamegraph').getAttribute('data-selected'), X.widestUnderHandler);
    await page.keyboard.press('Enter');
    await page.waitForFunction((f) => new URL(location.href).searchParams.get('focus') === f, `main;handler;${X.widestUnderHandler}`);
    await page.keyboard.press('Escape');
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('focus'));
  });

  await step('single view: sandwich of a function, computed by the server', async () => {
    const row = page.locator('[data-testid="function-table"] .row[data-name="db.query"]');
    await row.getByTestId('row-sandwich').click();
    await page.waitForFunction(() => new URL(location.href).searchParams.get('sandwich') === 'db.query');
    assert.equal(param('view'), 'sandwich');
    const title = byTest('sandwich-title');
    await title.waitFor();
    const text = await title.textContent();
    const f = X.functions['db.query'];
    assert.ok(text.startsWith('db.query'), text);
    assert.ok(text.includes(`total ${seconds(f.total)} (${pct(f.total, X.total)}), self ${seconds(f.self)}`), text);
    await waitRendered('sandwich-callers');
    await waitRendered('sandwich-callees');
    // Callers of db.query: db.query, handler, main and the root = 4 nodes.
    assert.equal(await byTest('sandwich-callers').getAttribute('data-nodes'), '4');
    await page.screenshot({ path: join(SHOTS, 'single-sandwich.png') });
    await byTest('sandwich-close').click();
    await page.waitForFunction(() => !new URL(location.href).searchParams.has('sandwich'));
  });

  await step('single view: max nodes folds small callees into an explained "other"; the table stays exact', async () => {
    await byTest('max-nodes').fill('4');
    await byTest('max-nodes').press('Enter');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('maxNodes') === '4');
    const notice = byTest('truncation-notice');
    await notice.waitFor({ state: 'visible' });
    const text = await notice.textContent();
    assert.match(text, /folded into \d+ "other" node/);
    assert.ok(text.includes('The table and sandwich view use the full profile'), text);
    const rows = await tableRows('function-table');
    const got = Object.fromEntries(rows.map((r) => [r.name, { self: Number(r.self), total: Number(r.total) }]));
    assert.deepEqual(got, X.functions, 'table values do not change under truncation');
    await byTest('max-nodes').fill('');
    await byTest('max-nodes').press('Enter');
    await notice.waitFor({ state: 'hidden' });
  });

  await step('header: label filter autocompletes names and values', async () => {
    await byTest('filter-input').click();
    await byTest('filter-input').fill('en');
    const names = byTest('filter-suggestions');
    await names.locator('li[data-value="env"]').waitFor();
    await names.locator('li[data-value="env"]').dispatchEvent('mousedown');
    await names.locator('li[data-value="staging"]').waitFor();
    const values = await names.locator('li[data-value]').evaluateAll((els) => els.map((e) => e.dataset.value));
    assert.deepEqual(values.sort(), Object.keys(X.envs).sort());
    await names.locator('li[data-value="staging"]').dispatchEvent('mousedown');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('filters') === 'env="staging"');
    assert.equal(await byTest('filter-chip').first().textContent(), 'env="staging"×');
    await waitDataset('summary', 'total', X.envs.staging);
    await page.getByRole('button', { name: 'Remove env="staging"' }).click();
    await waitDataset('summary', 'total', X.total);
  });

  await step('header: time presets and absolute ranges', async () => {
    await byTest('time-button').click();
    await page.click('[data-testid="time-popover"] [data-preset="now-1h"]');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('from') === null); // now-1h is the default
    assert.equal(await byTest('time-button').textContent(), 'Last 1 hour');
    // The fixture is within the last hour.
    await waitDataset('summary', 'total', X.total);
    await byTest('time-button').click();
    await page.click('[data-testid="time-popover"] [data-preset="now-5m"]');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('from') === 'now-5m');
    await page.waitForFunction(() => document.querySelector('[data-testid="summary"]').textContent.includes('No data') || document.querySelector('[data-testid="summary"]').dataset.total === '0');
    // An absolute range typed in the picker.
    await byTest('time-button').click();
    const local = (ms) => {
      const d = new Date(ms);
      const p = (n) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    };
    await byTest('time-from').fill(local(X.left.from));
    await byTest('time-until').fill(local(X.left.until));
    await byTest('time-apply').click();
    await page.waitForFunction((v) => new URL(location.href).searchParams.get('from') === v, String(Math.floor(X.left.from / 1000) * 1000));
    await waitDataset('summary', 'total', X.leftTotal);
  });

  await step('single view: dragging on the timeline selects a range', async () => {
    await page.goto(url('./', common));
    await waitDataset('summary', 'total', X.total);
    const svg = page.locator('[data-testid="timeline"] svg');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="timeline"]').dataset.points) > 0);
    const box = await svg.boundingBox();
    // Plot area: 52 px of axis on the left, 8 px margin on the right.
    const plotW = box.width - 60;
    const xOf = (ms) => box.x + 52 + ((ms - X.range.from) / (X.range.until - X.range.from)) * plotW;
    await page.mouse.move(xOf(X.right.from), box.y + 40);
    await page.mouse.down();
    await page.mouse.move(xOf(X.right.until), box.y + 40, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction((v) => Number(new URL(location.href).searchParams.get('from')) > v, X.left.until);
    const from = Number(param('from'));
    const until = Number(param('until'));
    assert.ok(Math.abs(from - X.right.from) < 60_000 && Math.abs(until - X.right.until) < 60_000, `${from}..${until}`);
    await waitDataset('summary', 'total', X.rightTotal);
  });

  await step('single view: exports (PNG, JSON, pprof, folded) hold the profile', async () => {
    await page.goto(url('./', common));
    await waitRendered('flamegraph', X.nodes);
    const open = () => byTest('export-button').click();
    await open();
    const png = await download(() => byTest('export-png').click());
    assert.deepEqual([...png.bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    await open();
    const json = await download(() => byTest('export-json').click());
    const doc = JSON.parse(json.bytes.toString());
    assert.equal(doc.flamebearer.numTicks, X.total);
    assert.equal(doc.metadata.units, 'nanoseconds');
    await open();
    const folded = await download(() => byTest('export-folded').click());
    const stacks = {};
    for (const line of folded.bytes.toString().trim().split('\n')) {
      const at = line.lastIndexOf(' ');
      stacks[line.slice(0, at)] = Number(line.slice(at + 1));
    }
    assert.deepEqual(stacks, X.stacks);
    await open();
    const pprof = await download(() => byTest('export-pprof').click());
    assert.ok(pprof.name.endsWith('.pb.gz'), pprof.name);
    assert.deepEqual([...pprof.bytes.subarray(0, 2)], [0x1f, 0x8b]);
  });

  await step('single view: colour by value, dark theme, screenshot', async () => {
    await page.goto(url('./', common));
    await waitRendered('flamegraph', X.nodes);
    await page.screenshot({ path: join(SHOTS, 'single.png') });
    await byTest('palette-select').selectOption('value');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('palette') === 'value');
    await page.click('#theme-button');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    await page.screenshot({ path: join(SHOTS, 'single-dark.png') });
    await page.click('#theme-button');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
  });

  // ---- Comparison view ---------------------------------------------------

  await step('comparison view: two ranges side by side with synced search', async () => {
    await page.goto(url('comparison', { ...common, ...sides }));
    await waitDataset('left-summary', 'total', X.leftTotal);
    await waitDataset('right-summary', 'total', X.rightTotal);
    assert.equal(await byTest('left-summary').textContent(), `Total ${seconds(X.leftTotal)}`);
    assert.equal(await byTest('right-summary').textContent(), `Total ${seconds(X.rightTotal)}`);
    await waitRendered('flamegraph-left');
    await waitRendered('flamegraph-right');
    await byTest('search-input').fill('json');
    const expected = `baseline: matched ${pct(X.leftFunctions['json.encode'].total, X.leftTotal)} of total · 1 frame — `
      + `comparison: matched ${pct(X.rightFunctions['json.encode'].total, X.rightTotal)} of total · 1 frame`;
    await page.waitForFunction((t) => document.querySelector('[data-testid="search-match"]').textContent === t, expected);
    await page.waitForFunction(() => new URL(location.href).searchParams.get('search') === 'json');
    await page.screenshot({ path: join(SHOTS, 'comparison.png') });
  });

  await step('comparison view: dragging on the baseline timeline moves the baseline', async () => {
    const svg = page.locator('[data-testid="timeline-left"] svg');
    const box = await svg.boundingBox();
    const plotW = box.width - 60;
    const xOf = (ms) => box.x + 52 + ((ms - X.range.from) / (X.range.until - X.range.from)) * plotW;
    await page.mouse.move(xOf(X.right.from), box.y + 30);
    await page.mouse.down();
    await page.mouse.move(xOf(X.right.until), box.y + 30, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction((v) => Number(new URL(location.href).searchParams.get('leftFrom')) > v, X.left.until);
    // The baseline now covers the comparison's data.
    await waitDataset('left-summary', 'total', X.rightTotal);
  });

  // ---- Diff view ---------------------------------------------------------

  await step('diff view: legend, diff flame graph and the baseline/comparison/diff table', async () => {
    await page.goto(url('diff', { ...common, ...sides }));
    await waitDataset('diff-summary', 'left', X.leftTotal);
    await waitDataset('diff-summary', 'right', X.rightTotal);
    await waitRendered('diff-flamegraph');
    const legend = await byTest('diff-legend').textContent();
    assert.ok(legend.includes('smaller share than baseline (better)'), legend);
    assert.ok(legend.includes('-100%') && legend.includes('+100%'), legend);
    const rows = await tableRows('diff-table');
    const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
    assert.deepEqual(Object.keys(byName).sort(), Object.keys(X.diff).sort());
    for (const [name, d] of Object.entries(X.diff)) {
      const r = byName[name];
      assert.equal(Number(r.leftTotal), d.leftTotal, name);
      assert.equal(Number(r.rightTotal), d.rightTotal, name);
      assert.equal(r.cells[3], d.text, `diff of ${name}`);
    }
    // Sorted by diff, largest increase first: the new functions lead.
    assert.equal(rows[0].cells[3], 'new');
    // Hovering a bar shows both sides.
    await byTest('diff-flamegraph-canvas').hover({ position: await canvasPoint('diff-flamegraph', 1, 0.5) });
    const tip = await page.locator('#tooltip').textContent();
    assert.ok(tip.includes(`Baseline100.00 % · ${seconds(X.leftTotal)}`), tip);
    assert.ok(tip.includes(`Comparison100.00 % · ${seconds(X.rightTotal)}`), tip);
    await page.mouse.move(0, 0);
    await page.screenshot({ path: join(SHOTS, 'diff.png') });
  });

  await step('diff view: clamp and palette are URL state', async () => {
    await byTest('diff-clamp').selectOption('50');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('clamp') === '50');
    assert.ok((await byTest('diff-legend').textContent()).includes('+50%'));
    await byTest('diff-palette').selectOption('colorblind');
    await page.waitForFunction(() => new URL(location.href).searchParams.get('diffPalette') === 'colorblind');
    // Clicking a table row highlights that function (exact-name search).
    await page.locator('[data-testid="diff-table"] .row[data-name="json.encode"]').click();
    await page.waitForFunction(() => new URL(location.href).searchParams.get('search') === '/^json\\.encode$/');
  });

  // ---- Tag Explorer ------------------------------------------------------

  await step('tag explorer: each value of a label, its share, and its flame graph', async () => {
    await page.goto(url('explore', common));
    await page.waitForFunction(() => new URL(location.href).searchParams.get('groupBy') === 'env');
    await page.waitForFunction((n) => document.querySelector('[data-testid="explore-table"]')?.dataset.rows === String(n), Object.keys(X.envs).length);
    const rows = await tableRows('explore-table');
    const sum = Object.values(X.envs).reduce((a, b) => a + b, 0);
    for (const r of rows) {
      assert.equal(Number(r.total), X.envs[r.value], r.value);
      assert.equal(r.cells[4], pct(X.envs[r.value], sum), r.value);
    }
    assert.deepEqual(rows.map((r) => r.value), Object.keys(X.envs).sort((a, b) => X.envs[b] - X.envs[a]));
    await page.locator('[data-testid="explore-table"] .row[data-value="staging"]').click();
    await page.waitForFunction(() => new URL(location.href).searchParams.get('groupValue') === 'staging');
    assert.equal(await byTest('explore-detail-title').evaluate((e) => e.firstChild.textContent), 'env = staging');
    await waitRendered('explore-flamegraph');
    await page.screenshot({ path: join(SHOTS, 'explore.png'), fullPage: true });
    await byTest('explore-open-single').click();
    await page.waitForFunction(() => location.pathname.endsWith('/') && new URL(location.href).searchParams.get('filters') === 'env="staging"');
    await waitDataset('summary', 'total', X.envs.staging);
  });

  // ---- Upload, navigation, sub-path ----------------------------------------

  await step('upload: a folded file is stored and shown', async () => {
    await page.goto(url('./', common));
    await waitDataset('summary', 'total', X.total);
    await page.click('#upload-button');
    await byTest('upload-file').setInputFiles(X.upload.file);
    await byTest('upload-service').fill(X.upload.service);
    await byTest('upload-submit').click();
    await page.waitForFunction((s) => new URL(location.href).searchParams.get('service') === s, X.upload.service);
    await waitDataset('summary', 'total', X.upload.total);
    const rows = await tableRows('function-table');
    const got = Object.fromEntries(rows.map((r) => [r.name, { self: Number(r.self), total: Number(r.total) }]));
    assert.deepEqual(got, X.upload.functions);
  });

  await step('navigation keeps the query; the back button restores views', async () => {
    await page.goto(url('./', common));
    await waitDataset('summary', 'total', X.total);
    await byTest('nav-diff').click();
    await page.waitForFunction(() => location.pathname.endsWith('/diff'));
    assert.equal(param('service'), X.service);
    await waitRendered('diff-flamegraph');
    await byTest('nav-comparison').click();
    await page.waitForFunction(() => location.pathname.endsWith('/comparison'));
    await page.goBack();
    await page.waitForFunction(() => location.pathname.endsWith('/diff'));
    await byTest('diff-legend').waitFor();
    await page.goBack();
    await waitDataset('summary', 'total', X.total);
  });

  await step('sub-path: every page request stayed under the base path', async () => {
    assert.ok(BASE_PATH.length > 1, 'the test runs kiln with --http.base-path');
    assert.deepEqual(foreignRequests, []);
    const html = await (await page.request.get(new URL('explore', BASE).href)).text();
    assert.ok(html.includes(`<base href="${BASE_PATH}">`));
  });

  await step('renderer: a 200,000-node graph draws only the visible area, quickly', async () => {
    const r = await page.evaluate(async () => {
      const { FlameGraph } = await import('./assets/js/flamegraph/flamegraph.js');
      const { decodeFlamegraph } = await import('./assets/js/flamegraph/model.js');
      const names = ['total'];
      const l1 = [];
      const l2 = [];
      let total = 0;
      for (let f = 0; f < 400; f++) {
        names.push(`pkg${f % 20}.fn${f}`);
        const fi = names.length - 1;
        let sub = 0;
        for (let k = 0; k < 500; k++) {
          names.push(`leaf${f}_${k}`);
          l2.push(0, 1 + (k % 3), 1 + (k % 3), names.length - 1);
          sub += 1 + (k % 3);
        }
        l1.push(0, sub, 0, fi);
        total += sub;
      }
      const box = document.createElement('div');
      box.style.width = '1200px';
      document.body.append(box);
      const fg = new FlameGraph(box, { testId: 'big' });
      const t0 = performance.now();
      fg.setData(decodeFlamegraph({ names, levels: [[0, total, 0, 0], l1, l2], total }), { unit: 'nanoseconds' });
      fg.draw();
      const first = performance.now() - t0;
      const t1 = performance.now();
      fg.setFocus(1, false);
      fg.draw();
      const focus = performance.now() - t1;
      const out = { nodes: fg.root.dataset.nodes, drawn: Number(fg.root.dataset.bars), first, focus, canvasHeight: fg.canvas.height };
      box.remove();
      return out;
    });
    assert.equal(r.nodes, String(1 + 400 + 200_000));
    assert.ok(r.drawn < 2500, `drew ${r.drawn} rectangles`);
    assert.ok(r.first < 3000 && r.focus < 500, JSON.stringify(r));
  });

  await step('no script errors on any page', async () => {
    assert.deepEqual(pageErrors, []);
  });
} finally {
  await browser.close();
}
console.log(`${results.length} steps passed; screenshots in ${SHOTS}`);
