// bench_artifacts.mjs: not a test: bench/portal.py runs it against a wharf
// holding a repository of many artifacts. Signs in, opens the repository's
// artifacts page and walks its pages, timing in the browser each page from
// the click (or the navigation) to its rows on screen, counting the API
// requests per page and the long tasks (main-thread work over 50 ms: jank).
// Prints one JSON object.
import { chromium } from 'playwright-core';

const URL = process.env.WHARF_URL;
const PATH = process.env.PAGE_PATH;
const PAGES = Number(process.env.PAGES || 20);
const args = process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [];
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const apiCalls = [];
page.on('request', (r) => { if (r.url().includes('/api/v2.0/')) apiCalls.push(r.url()); });
await page.goto(`${URL}/harbor/sign-in`);
await page.getByLabel('Username').fill(process.env.WHARF_USER);
await page.getByLabel('Password').fill(process.env.WHARF_PASSWORD);
await page.getByRole('button', { name: 'LOG IN' }).click();
await page.waitForURL(`${URL}/harbor/projects`);
await page.addInitScript(() => {
  window.__long = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
    .observe({ type: 'longtask', buffered: true });
});

const rows = page.locator('table.grid tbody tr[data-digest]');
const first = async () => rows.first().getAttribute('data-digest');
const t0 = Date.now();
await page.goto(URL + PATH);
await rows.first().waitFor();
const firstLoad = Date.now() - t0;
const perPage = [];
const callsPerPage = [];
for (let i = 1; i < PAGES; i++) {
  const before = await first();
  const calls = apiCalls.length;
  const t = Date.now();
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.waitForFunction((d) => {
    const r = document.querySelector('table.grid tbody tr[data-digest]');
    return r && r.getAttribute('data-digest') !== d;
  }, before);
  perPage.push(Date.now() - t);
  callsPerPage.push(apiCalls.length - calls);
}
const long = await page.evaluate(() => window.__long);
const total = await page.locator('.pager span').first().textContent();
console.log(JSON.stringify({ firstLoad, perPage, callsPerPage, longTasks: long, rowsShown: await rows.count(), pager: total }));
await browser.close();
