// The web UI against a Kiln with auth on (Chromium, playwright-core).
// Started by crates/server/tests/e2e/ui.rs (web_ui_with_auth), which writes
// { base, service, token } to the file named by KILN_UI_EXPECT. Without
// credentials the page says so and shows no data; once a token is entered
// in Settings every call carries it and the service's data appears.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { chromium } from 'playwright-core';

const X = JSON.parse(readFileSync(process.env.KILN_UI_EXPECT, 'utf8'));
const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(20_000);
  const statuses = [];
  const authorized = [];
  page.on('response', (r) => {
    const u = new URL(r.url());
    if (u.pathname.includes('querier.v1') || u.pathname.includes('kiln.ui.v1')) statuses.push(r.status());
  });
  page.on('request', (r) => {
    const a = r.headers().authorization;
    if (a) authorized.push(a);
  });

  await page.goto(X.base);
  // Without credentials: the API refuses and the page says where to fix it.
  try {
    await page.waitForFunction(() => /credentials in Settings/.test(document.getElementById('status')?.textContent || ''));
  } catch (e) {
    console.log(`status: ${await page.locator('#status').textContent()}; responses: ${statuses}`);
    throw e;
  }
  assert.ok(statuses.includes(401), `expected a 401, saw ${statuses}`);
  const before = await page.getByTestId('service-select').locator('option').allTextContents();
  assert.ok(!before.includes(X.service), `no data without credentials: ${before}`);

  // Enter the token in Settings.
  await page.locator('#settings-button').click();
  await page.getByTestId('settings-auth').selectOption('bearer');
  await page.getByTestId('settings-token').fill(X.token);
  await page.getByTestId('settings-save').click();
  await page.waitForFunction((svc) => [...document.querySelectorAll('[data-testid=service-select] option')]
    .some((o) => o.textContent === svc), X.service);
  assert.ok(authorized.length > 0 && authorized.every((a) => a === `Bearer ${X.token}`), `${authorized}`);

  // The token survives a reload (localStorage) and the data is shown.
  statuses.length = 0;
  await page.reload();
  await page.waitForFunction((svc) => [...document.querySelectorAll('[data-testid=service-select] option')]
    .some((o) => o.textContent === svc), X.service);
  await page.waitForTimeout(500);
  assert.ok(statuses.length > 0 && statuses.every((s) => s === 200), `after reload: ${statuses}`);
  console.log('ok   the UI passes its credentials');
} finally {
  await browser.close();
}
