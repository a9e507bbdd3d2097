// lib.mjs: what the portal's browser tests share: Debian's Chromium or
// Firefox ESR ($BROWSER) driven by playwright-core (no browser download),
// waits on conditions with deadlines (never a sleep), assertions,
// screenshots, and the hooks that catch any script the page did not mean to
// run.
import { chromium, firefox } from 'playwright-core';
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export const BROWSER = process.env.BROWSER || 'chromium';

export const URL = process.env.WHARF_URL;
export const HOST = process.env.WHARF_HOST;
export const USER = process.env.WHARF_USER || 'admin';
export const PASSWORD = process.env.WHARF_PASSWORD;
export const SHOTS = process.env.WHARF_SHOTS || 'build/ui-screenshots';
export const TIMEOUT = 30_000;
export const SCAN_TIMEOUT = 120_000;

if (!URL || !PASSWORD) {
  console.error('WHARF_URL and WHARF_PASSWORD must be set (tests/e2e/test_portal_ui.py sets them)');
  process.exit(2);
}

export function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok   ' + what);
}

/*
 * Firefox is driven through WebDriver BiDi, the protocol Firefox itself
 * speaks (playwright-core's "moz-firefox" channel: no patched browser
 * build). Playwright sends one command Debian's Firefox ESR does not know,
 * emulation.setMediaFeaturesOverride (the prefers-color-scheme override of a
 * new context, which no test uses): it is answered here, in the WebSocket
 * client, as done, and never reaches the browser. Every other command and
 * event goes through untouched.
 */
const FIREFOX_UNSUPPORTED = new Set(['emulation.setMediaFeaturesOverride']);
let shimmed = false;
function shimFirefoxBidi() {
  if (shimmed) return;
  shimmed = true;
  const { ws } = createRequire(import.meta.url)('playwright-core/lib/utilsBundle');
  const send = ws.prototype.send;
  ws.prototype.send = function sendUnlessUnsupported(data, ...rest) {
    let m = null;
    try { m = JSON.parse(String(data)); } catch { /* not a BiDi command */ }
    if (m && FIREFOX_UNSUPPORTED.has(m.method)) {
      setImmediate(() => this.emit('message', Buffer.from(JSON.stringify({ type: 'success', id: m.id, result: {} })), false));
      return undefined;
    }
    return send.call(this, data, ...rest);
  };
}

/*
 * Before a screenshot playwright-core adds a <style> holding "body {}" to the
 * page; the portal's Content-Security-Policy refuses it, and Firefox reports
 * that as a page error (Chromium lets the driver bypass the policy). That
 * report, recognised by the hash of "body {}", is the driver's, not the
 * portal's; any other stays a problem.
 */
const PLAYWRIGHT_OWN = /sha256-YjaKGiklmzC6wjXA513HAMmzus8VE61XCOT\+SmwNZWA=/;

async function launchBrowser() {
  if (BROWSER === 'firefox') {
    shimFirefoxBidi();
    return firefox.launch({
      channel: 'moz-firefox', executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
      headless: true, timeout: 60_000,
      // the clipboard without a user's paste prompt (what grantPermissions does in Chromium)
      firefoxUserPrefs: { 'dom.events.testing.asyncClipboard': true },
    });
  }
  const args = ['--disable-dev-shm-usage', '--disable-gpu'];
  // CI runs as root, where Chromium's sandbox cannot start
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args, timeout: 60_000,
  });
}

export async function launch(viewport = { width: 1280, height: 900 }) {
  const browser = await launchBrowser();
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(TIMEOUT);
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => {
    if (PLAYWRIGHT_OWN.test(e.message)) return;
    // Firefox reports what the Content-Security-Policy refused as a page error
    problems.push((/^The page.s settings blocked/.test(e.message) ? 'CSP: ' : 'page error: ') + e.message);
  });
  page.on('dialog', async (d) => { problems.push('unexpected dialog: ' + d.message()); await d.dismiss(); });
  page.on('console', (m) => {
    // a script refused by the Content-Security-Policy is reported here
    if (/Content[- ]Security[- ]Policy/i.test(m.text())) problems.push('CSP: ' + m.text());
  });
  mkdirSync(SHOTS, { recursive: true });
  return { browser, context, page, problems };
}

/** Lets the page read and write the clipboard (Firefox: the profile's preference above). */
export async function allowClipboard(context) {
  if (BROWSER === 'chromium') await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL });
}

export async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** Polls fn() until it returns a truthy value or the deadline passes. */
export async function until(fn, what, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try { last = await fn(); } catch (e) { last = e; }
    if (last && !(last instanceof Error)) return last;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function signIn(page, user = USER, password = PASSWORD) {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'LOG IN' }).click();
}

/** skopeo with the environment the test runner prepared. */
export function skopeo(args, { ok = true } = {}) {
  try {
    const out = execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 });
    if (!ok) throw new Error(`skopeo ${args.join(' ')} succeeded but should have failed`);
    return { code: 0, out, err: '' };
  } catch (e) {
    if (e.status === undefined || e.status === null) throw e;
    if (ok) throw new Error(`skopeo ${args.join(' ')} failed: ${e.stderr}`);
    return { code: e.status, out: e.stdout, err: e.stderr };
  }
}

/** Every form control of the page has an accessible name. */
export async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
    .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.outerHTML.slice(0, 120)));
}

export async function noHorizontalScroll(page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
}
