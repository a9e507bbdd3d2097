// interrogation.mjs: Administration › Interrogation Services as a system
// administrator, against a server that has no vulnerability database yet and
// $PROJECT's images never scanned: the Vulnerability tab says so, UPDATE NOW
// loads the database from the test's feed server (the page shows the update
// ending and the counts the API reports), SCAN NOW scans every image (the
// progress reaches "N of N completed"), a schedule is saved and shown again
// after a reload; the Security Hub's totals, its most dangerous CVEs and
// artifacts and the search by CVE show what the API holds. Then a user who is
// not an administrator: no such page in the navigation, the address explains
// itself, the API refuses (403). Prints `SEEN <json>`: what the pages showed,
// which test_portal_ui.py checks against `wharf scan`.
import { URL, check, launch, shot, until, signIn, unlabelled, noHorizontalScroll } from './lib.mjs';

const IMAGES = Number(process.env.IMAGES);
const USER2 = process.env.USER2;
const USER2_PASSWORD = process.env.USER2_PASSWORD;
const SCAN_TIMEOUT = 120_000;

const { browser, page, problems } = await launch();
const apiGet = (path) => page.evaluate(async (p) => {
  const r = await fetch('/api/v2.0' + p, { credentials: 'same-origin' });
  return { status: r.status, body: await r.json() };
}, path);
const text = async (loc) => (await loc.textContent()).trim();
const seen = {};

try {
  await page.goto(`${URL}/harbor/interrogation-services`);
  await signIn(page);
  await page.waitForURL(`${URL}/harbor/interrogation-services`);
  const nav = page.getByRole('navigation', { name: 'Main' });
  check(await nav.getByRole('link', { name: 'Interrogation Services' }).getAttribute('aria-current') === 'page',
    'Administration › Interrogation Services is in the navigation, marked current');
  await page.getByRole('tab', { name: 'Vulnerability', selected: true }).waitFor();
  check(await unlabelled(page).then((u) => u.length === 0), 'every form control is labelled');

  // the database: none yet, then UPDATE NOW
  await page.getByText('There is no vulnerability database yet', { exact: false }).waitFor();
  check(await text(page.getByTestId('vdb-updated')) === 'Never', 'Database updated on: Never');
  check(await text(page.getByTestId('vdb-interval')) === 'Off (only when asked: scan.db_update_interval is 0)', 'automatic update off');
  check(await text(page.getByTestId('vdb-last')) === 'None since the server started', 'no update yet');
  await shot(page, '01-vulnerability-empty');
  await page.getByRole('button', { name: 'UPDATE NOW' }).click();
  await page.getByText('The vulnerability database was updated:', { exact: false }).waitFor({ timeout: 60_000 });
  const st = (await apiGet('/vulndb/status')).body;
  check(st.update.status === 'Success' && st.present, 'the update succeeded (API)');
  check(await text(page.getByTestId('vdb-last').locator('[data-state]')) === 'Success', 'Last update: Success');
  check(await text(page.getByTestId('vdb-advisories')) === String(st.advisories), `the advisories the API counts: ${st.advisories}`);
  check(await text(page.getByTestId('vdb-nvd')) === String(st.nvd_records), 'the NVD records the API counts');
  check(await text(page.getByTestId('vdb-updated')) !== 'Never', 'Database updated on: a time now');
  check(await page.getByText('There is no vulnerability database yet', { exact: false }).count() === 0, 'the warning is gone');
  check(!/\b(null|undefined|NaN)\b/.test(await page.locator('main').textContent()), 'no null, undefined or NaN shown');
  const sources = page.getByRole('table', { name: 'Vulnerability database sources' });
  for (const s of st.sources) {
    const row = sources.getByRole('row').filter({ has: page.getByRole('cell', { name: s.name, exact: true }) });
    check(await text(row.getByRole('cell').nth(2)) === String(s.records), `source ${s.name}: ${s.records} records`);
  }
  check(await sources.locator('tbody tr').count() === st.sources.length, 'one row per source');
  seen.advisories = Number(await text(page.getByTestId('vdb-advisories')));
  await page.getByText('Feeds an update reads', { exact: false }).click();
  check(await page.locator('details.feeds li').count() === st.feeds.length, 'the feeds are listed');
  await shot(page, '02-vulnerability-updated');

  // scan all: never ran, SCAN NOW, the progress to the end
  await page.getByText('Scan all has not run yet.').waitFor();
  check(await page.getByRole('button', { name: 'STOP SCAN' }).isDisabled(), 'STOP SCAN is disabled without a run');
  await page.getByRole('button', { name: 'SCAN NOW' }).click();
  await page.getByText('Scan all started.').waitFor();
  const state = page.getByTestId('scanall-state');
  await until(async () => (await state.getAttribute('data-ongoing')) === 'false' && /Last run/.test(await text(state)),
    'scan all to end', SCAN_TIMEOUT);
  const m = (await apiGet('/scans/all/metrics')).body;
  check(m.total === IMAGES && m.completed === IMAGES && !m.ongoing, `the run scanned the ${IMAGES} images (API)`);
  check(await text(state) === `Last run (Manual): ${IMAGES} of ${IMAGES} completed (100%)`, `the page shows it: ${await text(state)}`);
  check(await text(page.locator('[data-status="Success"]')) === `Success: ${IMAGES}`, 'Success counted');
  check(await page.getByRole('progressbar').getAttribute('value') === String(IMAGES), 'the progress bar is full');
  check(!(await page.getByRole('button', { name: 'SCAN NOW' }).isDisabled()), 'SCAN NOW can start another run');
  await shot(page, '03-scan-all-done');

  // the schedule, kept over a reload
  await page.getByLabel('Schedule', { exact: true }).selectOption('Custom');
  await page.getByLabel('Cron (seconds minutes hours day month weekday, UTC)').fill('0 0 2 * * *');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('The scan all schedule has been saved.').waitFor();
  await page.reload();
  await page.getByTestId('scanall-next').getByText('Next scheduled time:', { exact: false }).waitFor();
  check(await page.getByLabel('Schedule', { exact: true }).inputValue() === 'Custom', 'the schedule is kept');
  check(await page.getByLabel('Cron (seconds minutes hours day month weekday, UTC)').inputValue() === '0 0 2 * * *', 'its cron is kept');
  const sched = (await apiGet('/system/scanAll/schedule')).body;
  check(sched.schedule.type === 'Custom' && sched.schedule.cron === '0 0 2 * * *', 'the API holds it');
  await page.getByLabel('Cron (seconds minutes hours day month weekday, UTC)').fill('0 0 99 * * *');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByRole('alert').getByText('invalid cron', { exact: false }).waitFor();
  check(true, 'a bad cron is refused with the API\'s reason');
  await page.getByLabel('Schedule', { exact: true }).selectOption('None');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('No schedule: scan all runs only when started here.').waitFor();
  check(Object.keys((await apiGet('/system/scanAll/schedule')).body).length === 0, 'None removes the schedule');

  // the security hub
  await page.getByRole('tab', { name: 'Security Hub' }).click();
  await page.waitForURL(`${URL}/harbor/interrogation-services/security-hub`);
  const sum = (await apiGet('/security/summary?with_dangerous_cve=true&with_dangerous_artifact=true')).body;
  check(await text(page.getByTestId('hub-artifacts')) === `${sum.total_artifact} artifact(s): ${sum.scanned_cnt} scanned, ${sum.total_artifact - sum.scanned_cnt} not scanned`, 'artifacts scanned and not');
  check(await text(page.getByTestId('hub-vulns')) === `${sum.total_vuls} vulnerabilities in total, ${sum.fixable_cnt} fixable`, `${sum.total_vuls} vulnerabilities, ${sum.fixable_cnt} fixable`);
  seen.totals = {};
  for (const [k, label] of [['critical_cnt', 'Critical'], ['high_cnt', 'High'], ['medium_cnt', 'Medium'], ['low_cnt', 'Low'], ['unknown_cnt', 'Unknown'], ['none_cnt', 'None']]) {
    const n = Number(await text(page.getByTestId('hub-totals').locator(`[data-severity="${label}"] .n`)));
    check(n === sum[k], `${label}: ${n}`);
    seen.totals[label] = n;
  }
  seen.total = sum.total_vuls;
  seen.fixable = sum.fixable_cnt;
  const topCves = page.getByRole('table', { name: 'Top 5 Most Dangerous CVEs' });
  const shownCves = (await topCves.locator('tbody tr td:first-child').allTextContents()).map((t) => t.trim());
  check(shownCves.join() === sum.dangerous_cves.map((v) => v.cve_id).join() && shownCves.length > 0, `the most dangerous CVEs: ${shownCves.join(', ')}`);
  seen.topCve = shownCves[0];
  const topArts = page.getByRole('table', { name: 'Top 5 Most Dangerous Artifacts' });
  check(await topArts.locator('tbody tr').count() === sum.dangerous_artifacts.length && sum.dangerous_artifacts.length === IMAGES, 'the most dangerous artifacts: every image');
  await shot(page, '04-security-hub');

  // search by CVE: the top one, from the table's button
  await topCves.getByRole('button', { name: `Search ${seen.topCve}` }).click();
  const grid = page.getByRole('table', { name: 'Vulnerabilities' });
  await until(async () => (await grid.locator('tbody tr td:first-child').allTextContents()).every((t) => t.trim() === seen.topCve), 'the search to apply');
  const vul = (await apiGet(`/security/vul?q=${encodeURIComponent('cve_id=' + seen.topCve)}&page_size=100`));
  check(await grid.locator('tbody tr').count() === vul.body.length && vul.body.length >= IMAGES, `every finding of ${seen.topCve} (${vul.body.length})`);
  seen.searchRows = vul.body.length;
  await page.getByLabel('CVE ID', { exact: true }).fill('CVE-1999-0000');
  await page.getByRole('button', { name: 'SEARCH', exact: true }).click();
  await page.getByText('No vulnerability matches the search.').waitFor();
  check(true, 'a CVE no image has: the empty state');
  await page.getByLabel('CVE ID', { exact: true }).fill('');
  await page.getByLabel('Severity', { exact: true }).selectOption('Critical');
  await page.getByRole('button', { name: 'SEARCH', exact: true }).click();
  await until(async () => (await grid.locator('tbody tr').count()) > 0, 'the critical findings');
  const sevs = await grid.locator('tbody tr td:nth-child(6)').allTextContents();
  check(sevs.every((s) => s.trim() === 'Critical'), 'the severity filter');
  check(await page.getByText(`1 - ${Math.min(15, sum.critical_cnt)} of ${sum.critical_cnt} items`).count() === 1, `the pager counts the ${sum.critical_cnt} critical findings`);
  // a digest opens its artifact
  await grid.getByRole('link', { name: /^sha256:/ }).first().click();
  await page.getByRole('heading', { level: 1 }).locator('code').waitFor();
  check(page.url().includes('/artifacts-tab/artifacts/sha256:'), 'a digest opens the artifact\'s page');

  // keyboard: the tabs move with the arrows
  await page.goto(`${URL}/harbor/interrogation-services/security-hub`);
  await page.getByRole('tab', { name: 'Security Hub', selected: true }).focus();
  await page.keyboard.press('ArrowLeft');
  await page.getByRole('tab', { name: 'Vulnerability', selected: true }).waitFor();
  await until(async () => (await page.evaluate(() => document.activeElement.textContent)) === 'Vulnerability', 'the focus on the tab');
  check(true, 'ArrowLeft moves to the Vulnerability tab, focused');
  check(await page.getByRole('button', { name: 'UPDATE NOW' }).isEnabled(), 'the page is drawn');

  // phone width
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${URL}/harbor/interrogation-services/security-hub`);
  await page.getByTestId('hub-totals').waitFor();
  check(await noHorizontalScroll(page), 'the security hub fits a phone\'s width');
  await shot(page, '05-security-hub-phone');
  await page.goto(`${URL}/harbor/interrogation-services/vulnerability`);
  await page.getByTestId('scanall-state').waitFor();
  check(await noHorizontalScroll(page), 'the vulnerability tab fits a phone\'s width');
  await shot(page, '06-vulnerability-phone');
  check(problems.length === 0, `no script error, dialog or CSP report: ${problems.join(' | ')}`);

  // a user who is not an administrator
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const p2 = await other.newPage();
  await p2.goto(`${URL}/harbor/interrogation-services/vulnerability`);
  await signIn(p2, USER2, USER2_PASSWORD);
  await p2.getByText('This page is for system administrators only.', { exact: false }).waitFor();
  check(await p2.getByRole('button', { name: 'UPDATE NOW' }).count() === 0, 'a user gets an explanation, no button');
  check(await p2.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Interrogation Services' }).count() === 0, 'and no such entry in the navigation');
  const refused = await p2.evaluate(async () => Promise.all(['/vulndb/status', '/security/summary', '/scans/all/metrics']
    .map(async (x) => (await fetch('/api/v2.0' + x, { credentials: 'same-origin' })).status)));
  check(refused.every((s) => s === 403), `the API refuses the user (${refused})`);
  await shot(p2, '07-not-an-administrator');
  await other.close();
  console.log('SEEN ' + JSON.stringify(seen));
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
