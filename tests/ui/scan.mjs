// scan.mjs: the Signed column, then the Vulnerabilities cell through a scan's states, driven by the
// row's actions (the server holds the first scan Running and fails the
// second, through its failpoints), then Copy and Delete.
import { URL, SCAN_TIMEOUT, check, launch, shot, until, signIn, allowClipboard } from './lib.mjs';

const PID = process.env.PROJECT_ID;
const DIGEST = process.env.DIGEST;
const WANT = process.env.WANT;
const short = DIGEST.slice(0, 15);

const { browser, context, page, problems } = await launch();
await allowClipboard(context);
const state = () => page.locator(`tr[data-digest="${DIGEST}"] [data-state]`).first();
const stateIs = (s) => until(async () => (await state().getAttribute('data-state')) === s, `state ${s}`, SCAN_TIMEOUT);

try {
  await page.goto(`${URL}/harbor/projects/${PID}/repositories/app/artifacts-tab`);
  await signIn(page);
  await stateIs('none');
  check((await state().textContent()) === 'Not Scanned', 'never scanned: Not Scanned');
  const signed = (d) => page.locator(`tr[data-digest="${d}"] td[data-signed]`);
  check((await signed(DIGEST).textContent()) === 'Yes (cosign)', 'Signed: the image has a cosign signature');
  check((await signed(process.env.SIGNATURE).textContent()) === 'No', 'the signature itself is not signed');

  await page.getByRole('button', { name: `Scan ${short}` }).click();
  await stateIs('scanning');
  check((await state().textContent()) === 'Scanning', 'a running scan: Scanning');
  await shot(page, '01-scanning');
  await page.getByRole('button', { name: `Stop scan of ${short}` }).click();
  await stateIs('stopped');
  check((await state().textContent()) === 'Scan stopped', 'stopped: Scan stopped');

  await page.getByRole('button', { name: `Scan ${short}` }).click();
  await stateIs('error');
  const log = state();
  check((await log.textContent()) === 'Error · View Log', 'a failed scan: Error · View Log');
  const href = await log.getAttribute('href');
  check(/\/scan\/[0-9a-f]{32}\/log$/.test(href), `the link is the scan's log (${href})`);
  const r = await page.request.get(URL + href);
  check(r.status() === 200 && (await r.text()) === 'internal error (the server log has the details)', 'the log opens with the session');
  await shot(page, '02-error');

  await page.getByRole('button', { name: `Scan ${short}` }).click();
  await until(async () => (await page.getByTestId('vuln-totals').count()) === 1 && (await page.getByTestId('vuln-totals').textContent()) === WANT, `"${WANT}"`, SCAN_TIMEOUT);
  check(true, `scanned again: "${WANT}"`);

  await page.getByRole('button', { name: `Copy digest ${DIGEST}` }).first().click();
  check((await page.evaluate(() => navigator.clipboard.readText())) === DIGEST, 'Copy puts the whole digest on the clipboard');

  await page.goto(`${URL}/harbor/projects/${PID}/repositories/gone/artifacts-tab`);
  await page.getByRole('button', { name: `Delete ${short}` }).click();
  const dlg = page.getByRole('dialog', { name: 'Confirm deletion' });
  await dlg.getByRole('button', { name: 'DELETE' }).click();
  await page.getByText('Artifact deleted.').waitFor();
  await page.getByText("We couldn't find any artifacts!").waitFor();
  check(true, 'Delete, once confirmed, removes the artifact');
  check(problems.length === 0, `no script error, dialog or CSP report: ${problems.join(' | ')}`);
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
