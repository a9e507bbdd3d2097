// index.mjs: an image index in the artifacts list: one row, its children's
// merged scan (with the completed percent), and a ▸ button that shows the
// child image under it with its own scan.
import { URL, SCAN_TIMEOUT, check, launch, shot, until, signIn } from './lib.mjs';

const PID = process.env.PROJECT_ID;
const CHILD = process.env.CHILD;
const WANT = process.env.WANT;

const { browser, page, problems } = await launch();
try {
  await page.goto(`${URL}/harbor/projects/${PID}/repositories/multi/artifacts-tab`);
  await signIn(page);
  const rows = page.getByRole('table', { name: 'Artifacts' }).locator('tbody tr[data-digest]');
  const totals = page.getByTestId('vuln-totals');
  await until(async () => (await totals.count()) === 1 && (await totals.first().textContent()) === WANT, `the index's "${WANT}"`, SCAN_TIMEOUT);
  check((await rows.count()) === 1, 'the index is one row (its child is not listed apart)');
  check((await rows.first().locator('td').nth(3).textContent()) === 'linux/amd64', 'its OS/ARCH names its child\'s platform');
  await totals.first().hover();
  await page.getByTestId('vuln-card').first().getByText('Scan completed percent: 100%').waitFor();
  check(true, 'the index\'s card gives the completed percent');
  const open = page.getByRole('button', { name: /^Show the 1 images of / });
  check((await open.getAttribute('aria-expanded')) === 'false', 'the index is closed');
  await open.click();
  const child = page.locator(`tr.child[data-digest="${CHILD}"]`);
  await child.waitFor();
  check((await open.getAttribute('aria-expanded')) === 'true', 'the index is open');
  check((await child.getByTestId('vuln-totals').textContent()) === WANT, `its child shows "${WANT}"`);
  await shot(page, '01-index-open');
  await open.click();
  await child.waitFor({ state: 'detached' });
  check(true, 'closing the index hides its child');
  check(problems.length === 0, `no script error, dialog or CSP report: ${problems.join(' | ')}`);
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
