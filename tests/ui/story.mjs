// story.mjs: the platform team's walk through the portal, in Chromium, against
// a real wharf (started by tests/e2e/test_portal_ui.py, which also passes what
// to expect: the scan of the same image by `wharf scan`). Sign in (through a
// deep link, after a wrong password), create a project, turn on scan on push,
// push with skopeo, see "N Total · M Fixable" and its histogram, open the CVE
// list and a CVE, turn the gate on (skopeo's pull refused), allowlist the CVE
// (the pull succeeds), members, robot accounts, delete refused, phone width,
// sign out. A screenshot of each page goes to $WHARF_SHOTS.
import {
  URL, HOST, USER, PASSWORD, SCAN_TIMEOUT, check, launch, shot, until, signIn, skopeo,
  unlabelled, noHorizontalScroll,
} from './lib.mjs';

const PROJECT = process.env.PROJECT;
const IMAGE = process.env.IMAGE;
const MEMBER = process.env.MEMBER;
const WORK = process.env.WORK;
const EXPECT = JSON.parse(process.env.EXPECT);
const REPO = 'bookworm';
const CREDS = `${USER}:${PASSWORD}`;

const { browser, page, problems } = await launch();
const labelsOk = async (where) => check((await unlabelled(page)).length === 0, `every form control is labelled (${where}): ${await unlabelled(page)}`);

try {
  // 1. a link written for Harbor, followed without a session: sign-in first
  await page.goto(`${URL}/harbor/projects/1/repositories`);
  await page.getByRole('button', { name: 'LOG IN' }).waitFor();
  check(page.url().includes('/harbor/sign-in?redirect_url='), 'a deep link without a session asks for a sign-in');
  await labelsOk('sign-in');
  await signIn(page, USER, 'Not-The-Passw0rd');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  check((await alert.textContent()) === 'Invalid user name or password.', 'wrong credentials: a clear message');
  await shot(page, '01-sign-in-error');
  await signIn(page);
  await page.waitForURL(`${URL}/harbor/projects/1/repositories`);
  await page.getByRole('tab', { name: 'Repositories', selected: true }).waitFor();
  check(true, 'after the sign-in, the deep link\'s page (library\'s repositories)');

  // 2. a new project
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Projects' }).click();
  await page.getByRole('heading', { name: 'Projects' }).waitFor();
  await page.getByRole('button', { name: '+ NEW PROJECT' }).click();
  const dlg = page.getByRole('dialog', { name: 'New Project' });
  await dlg.waitFor();
  await labelsOk('new project dialog');
  await page.getByLabel('Project Name').fill(PROJECT);
  await shot(page, '02-new-project');
  await dlg.getByRole('button', { name: 'OK' }).click();
  await dlg.waitFor({ state: 'detached' });
  const projLink = page.getByRole('link', { name: PROJECT, exact: true });
  await projLink.waitFor();
  const row = page.getByRole('row').filter({ has: projLink });
  check((await row.getByRole('cell').nth(1).textContent()) === 'Private', 'the new project is listed, Private');
  check((await row.getByRole('cell').nth(2).textContent()) === 'Project Admin', 'its creator is its Project Admin');
  await shot(page, '03-projects');
  await page.getByLabel('Filter projects by name').fill(PROJECT.slice(3));
  await page.getByRole('link', { name: 'library', exact: true }).waitFor({ state: 'detached' });
  check((await page.getByRole('table', { name: 'Projects' }).locator('tbody tr').count()) === 1, 'the filter keeps the matching project only');

  // 3. Configuration: scan on push, saved and still there after a reload
  await projLink.click();
  await page.waitForURL(/\/harbor\/projects\/\d+\/repositories$/);
  const projectId = page.url().match(/projects\/(\d+)/)[1];
  await page.getByRole('tab', { name: 'Configuration' }).click();
  await page.getByLabel('Automatically scan images on push').check();
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('Configuration has been successfully saved.').waitFor();
  await page.reload();
  await page.getByLabel('Automatically scan images on push').waitFor();
  check(await page.getByLabel('Automatically scan images on push').isChecked(), 'scan on push saved (after a reload)');
  await labelsOk('configuration');

  // 4. push with skopeo: the scan starts on its own
  skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', CREDS, IMAGE, `docker://${HOST}/${PROJECT}/${REPO}:1`]);
  check(true, 'skopeo pushed the image');
  await page.getByRole('tab', { name: 'Repositories' }).click();
  const repoLink = page.getByRole('link', { name: `${PROJECT}/${REPO}` });
  await repoLink.waitFor();
  const repoRow = page.getByRole('row').filter({ has: repoLink });
  check((await repoRow.getByRole('cell').nth(1).textContent()) === '1', 'the repository shows 1 artifact');
  await shot(page, '04-repositories');
  await repoLink.click();
  await page.waitForURL(`${URL}/harbor/projects/${projectId}/repositories/${REPO}/artifacts-tab`);

  // 5. the Vulnerabilities cell once the scan is done, and its hover card
  const totals = page.getByTestId('vuln-totals');
  const want = `${EXPECT.total} Total · ${EXPECT.fixable} Fixable`;
  await until(async () => (await totals.count()) && (await totals.first().textContent()) === want, `"${want}"`, SCAN_TIMEOUT);
  check(true, `the artifact shows "${want}"`);
  const cell = page.locator('.vuln').first();
  check((await cell.locator('.sq').textContent()) === EXPECT.severity[0], `the badge holds ${EXPECT.severity[0]}`);
  check((await page.getByRole('table', { name: 'Artifacts' }).count()) === 1, 'the artifacts table is a table');
  await shot(page, '05-artifacts');
  const card = page.getByTestId('vuln-card').first();
  check(!(await card.isVisible()), 'the card is hidden until hovered');
  await totals.first().hover();
  await card.waitFor({ state: 'visible' });
  check((await card.textContent()).includes(`Vulnerability Severity: ${EXPECT.severity}`), 'the card names the severity');
  for (const [sev, n] of Object.entries(EXPECT.summary)) {
    const r = card.getByRole('row').filter({ has: page.getByRole('rowheader', { name: sev, exact: true }) });
    check((await r.getByRole('cell').last().textContent()) === String(n), `the histogram: ${sev} ${n}`);
  }
  check(/Scanned by: wharf@/.test(await card.textContent()), 'the card names the scanner');
  check(/Duration: \d+ min \d+ sec/.test(await card.textContent()), 'the card gives the duration');
  check(/Scan completed time: \S/.test(await card.textContent()), 'the card gives the completion time');
  await shot(page, '06-hover-histogram');
  // by keyboard too
  await page.mouse.move(0, 0);
  await card.waitFor({ state: 'hidden' });
  await cell.focus();
  await card.waitFor({ state: 'visible' });
  check(true, 'the card opens on keyboard focus');
  await labelsOk('artifacts');

  // 6. the artifact page: the CVE list
  await page.locator('td a code').first().click();
  await page.waitForURL(/\/artifacts-tab\/artifacts\/sha256:[0-9a-f]{64}$/);
  const artifactUrl = page.url();
  await page.getByText('Reported by wharf@').waitFor();
  const count = page.locator('.count');
  await until(async () => (await count.textContent()) === `${EXPECT.total} of ${EXPECT.total}`, 'the whole list');
  check(true, `the CVE list holds ${EXPECT.total} rows`);
  const vt = page.getByRole('table', { name: 'Vulnerabilities' });
  const firstCve = async () => vt.locator('tbody tr[data-cve]').first().getAttribute('data-cve');
  check((await firstCve()) === EXPECT.cve, `sorted by severity, ${EXPECT.cve} comes first`);
  await page.getByRole('button', { name: 'CVSS3' }).click();
  check((await page.locator('th[aria-sort="descending"]').textContent()).startsWith('CVSS3'), 'sorted by CVSS3, highest first');
  check((await firstCve()) === EXPECT.cve, `${EXPECT.cve} has the highest CVSS3`);
  await page.getByPlaceholder('Filter Vulnerabilities').fill(EXPECT.cve);
  await until(async () => (await count.textContent()) === `${EXPECT.cve_rows} of ${EXPECT.total}`, 'the filtered list');
  check(true, `filtered to ${EXPECT.cve}`);
  await page.getByRole('button', { name: `Details of ${EXPECT.cve}` }).first().click();
  const desc = page.locator('tr.detail:not([hidden]) .description').first();
  await desc.waitFor();
  check((await desc.textContent()).startsWith(EXPECT.description.slice(0, 60)), 'the CVE opens onto its description');
  const ref = page.locator('tr.detail:not([hidden]) ul.links a').first();
  check((await ref.getAttribute('href')) === EXPECT.link, `and its link ${EXPECT.link}`);
  check((await ref.getAttribute('target')) === '_blank' && (await ref.getAttribute('rel')).includes('noopener'), 'the link opens apart, without an opener');
  await shot(page, '07-artifact-cve');
  await page.reload();
  await page.getByText('Reported by wharf@').waitFor();
  check(page.url() === artifactUrl, 'a reload stays on the artifact page');
  await page.getByRole('heading', { name: 'Build History' }).waitFor();
  await labelsOk('artifact');

  // 7. the gate on, through the Configuration tab; skopeo is refused
  await page.goto(`${URL}/harbor/projects/${projectId}/configs`);
  await page.getByLabel('Prevent vulnerable images from running.').check();
  await page.getByLabel('Severity threshold').selectOption('critical');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('Configuration has been successfully saved.').waitFor();
  await page.reload();
  await page.getByLabel('Prevent vulnerable images from running.').waitFor();
  check(await page.getByLabel('Prevent vulnerable images from running.').isChecked(), 'the gate is on after a reload');
  check((await page.getByLabel('Severity threshold').inputValue()) === 'critical', 'the threshold is Critical after a reload');
  await shot(page, '08-configuration-gate');
  const refused = skopeo(['copy', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${HOST}/${PROJECT}/${REPO}:1`, `oci:${WORK}/refused:x`], { ok: false });
  check(refused.code !== 0 && refused.err.includes(EXPECT.cve), `skopeo's pull is refused naming ${EXPECT.cve}`);

  // 8. the CVE allowlisted in the portal: the pull goes through
  await page.getByLabel('Project allowlist').check();
  await page.getByLabel('Enter CVE ID(s)').fill(`${EXPECT.cve},\nCVE-2000-0001`);
  await page.getByRole('button', { name: 'ADD', exact: true }).click();
  const items = page.getByTestId('allowlist-items');
  await items.getByText(EXPECT.cve).waitFor();
  await page.getByRole('button', { name: 'Remove CVE-2000-0001' }).click();
  check(await page.getByLabel('Never expires').isChecked(), 'the allowlist never expires');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('Configuration has been successfully saved.').waitFor();
  await page.reload();
  await page.getByLabel('Project allowlist').waitFor();
  check(await page.getByLabel('Project allowlist').isChecked(), 'the project allowlist is chosen after a reload');
  check((await items.locator('li').allTextContents()).map((t) => t.replace('×', '')).join() === EXPECT.cve, `the allowlist holds ${EXPECT.cve} only`);
  await shot(page, '09-configuration-allowlist');
  skopeo(['copy', '--src-tls-verify=false', '--src-creds', CREDS, `docker://${HOST}/${PROJECT}/${REPO}:1`, `oci:${WORK}/allowed:x`]);
  check(true, 'skopeo pulls the image now');
  await page.goto(artifactUrl);
  await page.getByPlaceholder('Filter Vulnerabilities').fill(EXPECT.cve);
  const cveRow = page.locator(`tr[data-cve="${EXPECT.cve}"]`).first();
  await until(async () => (await cveRow.locator('td').last().textContent()) === 'Yes', 'Listed In CVE Allowlist: Yes');
  check(true, `${EXPECT.cve} is listed in the CVE allowlist`);

  // 9. Summary, Members, Robot Accounts, Logs
  await page.goto(`${URL}/harbor/projects/${projectId}/summary`);
  await until(async () => (await page.getByTestId('repo-count').textContent()) === '1', 'the summary');
  await shot(page, '10-summary');
  // the tabs by keyboard: the arrows move between them
  await page.getByRole('tab', { name: 'Summary' }).focus();
  await page.keyboard.press('ArrowRight');
  await page.waitForURL(`${URL}/harbor/projects/${projectId}/repositories`);
  await until(async () => (await page.evaluate(() => document.activeElement && document.activeElement.id)) === 'tab-repositories', 'the focus on the Repositories tab');
  await page.keyboard.press('End');
  await page.waitForURL(`${URL}/harbor/projects/${projectId}/configs`);
  await until(async () => (await page.evaluate(() => document.activeElement && document.activeElement.id)) === 'tab-configs', 'the focus on the Configuration tab');
  await page.keyboard.press('Home');
  await page.waitForURL(`${URL}/harbor/projects/${projectId}/summary`);
  check((await page.getByRole('tab', { name: 'Summary' }).getAttribute('tabindex')) === '0', 'the tabs follow the arrows, Home and End, keeping the focus');
  await page.getByRole('tab', { name: 'Members' }).click();
  await page.getByRole('button', { name: '+ USER' }).click();
  await page.getByRole('dialog', { name: 'New Member' }).waitFor();
  await labelsOk('new member');
  await page.getByLabel('Name', { exact: true }).fill(MEMBER);
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
  const role = page.getByLabel(`Role of ${MEMBER}`);
  await role.waitFor();
  check((await role.inputValue()) === '2', `${MEMBER} added as Developer`);
  await role.selectOption('3');
  await page.getByText(`Role of ${MEMBER} changed.`).waitFor();
  await page.reload();
  await until(async () => (await page.getByLabel(`Role of ${MEMBER}`).inputValue()) === '3', 'the new role');
  check(true, `${MEMBER} is a Guest after a reload`);
  await shot(page, '11-members');
  await page.getByRole('button', { name: `Remove member ${MEMBER}` }).click();
  await page.getByText(`${MEMBER} removed.`).waitFor();
  check((await page.getByLabel(`Role of ${MEMBER}`).count()) === 0, `${MEMBER} removed`);

  await page.getByRole('tab', { name: 'Robot Accounts' }).click();
  await page.getByRole('button', { name: '+ NEW ROBOT ACCOUNT' }).click();
  await page.getByRole('dialog', { name: 'New Robot Account' }).waitFor();
  await labelsOk('new robot');
  await page.getByLabel('Name', { exact: true }).fill('ci');
  await page.getByLabel('Expiration time (days, -1 for never)').fill('7');
  await page.getByRole('button', { name: 'ADD' }).click();
  const secret = page.getByTestId('robot-secret');
  await secret.waitFor();
  const secretValue = await secret.inputValue();
  check(secretValue.length >= 16, 'the robot\'s secret is shown once');
  check((await page.getByRole('button', { name: 'Copy the secret' }).count()) === 1, 'with a copy button');
  await shot(page, '12-robot-secret');
  await page.getByRole('button', { name: 'CLOSE' }).click();
  const robotName = `robot$${PROJECT}+ci`;
  await page.getByRole('cell', { name: robotName, exact: true }).waitFor();
  check(!(await page.content()).includes(secretValue), 'the secret is nowhere on the page afterwards');
  skopeo(['inspect', '--tls-verify=false', '--creds', `${robotName}:${secretValue}`, `docker://${HOST}/${PROJECT}/${REPO}:1`]);
  check(true, 'the robot pulls with that secret');
  await page.getByRole('button', { name: `Disable ${robotName}` }).click();
  await page.getByText(`${robotName} disabled.`).waitFor();
  // the message comes before the list is read again: wait for the row
  await until(async () => (await page.getByRole('row').filter({ has: page.getByRole('cell', { name: robotName, exact: true }) }).getByRole('cell').nth(1).textContent()) === 'Disabled', 'the row to say Disabled');
  check(true, 'the robot is disabled');
  await shot(page, '13-robots');
  await page.getByRole('tab', { name: 'Logs' }).click();
  await page.getByRole('table', { name: 'Logs' }).waitFor();
  await shot(page, '14-logs');

  // 10. a project with a repository cannot be deleted: the API's reason is shown
  await page.goto(`${URL}/harbor/projects`);
  await page.getByRole('button', { name: `Delete project ${PROJECT}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'DELETE' }).click();
  const refusal = page.getByRole('alert');
  await refusal.waitFor();
  check((await refusal.textContent()).startsWith(`Project ${PROJECT} cannot be deleted: `), `the refusal is explained: ${await refusal.textContent()}`);
  await shot(page, '15-delete-refused');

  // 11. administration pages
  for (const [path, heading, name] of [['/harbor/users', 'Users', '16-users'], ['/harbor/robot-accounts', 'Robot Accounts', '17-system-robots'],
    ['/harbor/configs/security', 'Configuration', '18-system-allowlist'], ['/harbor/logs', 'Logs', '19-audit-log']]) {
    await page.goto(URL + path);
    await page.getByRole('heading', { name: heading, exact: true }).waitFor();
    await page.locator('table, form').first().waitFor();
    await labelsOk(path);
    await shot(page, name);
  }

  // 12. a phone's width: the page does not scroll sideways (tables do, inside)
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${URL}/harbor/projects/${projectId}/repositories/${REPO}/artifacts-tab`);
  await page.getByTestId('vuln-totals').first().waitFor();
  check(await noHorizontalScroll(page), 'readable at phone width: no sideways scroll of the page');
  await shot(page, '20-phone-artifacts');
  await page.goto(`${URL}/harbor/projects/${projectId}/configs`);
  await page.getByRole('button', { name: 'SAVE' }).waitFor();
  check(await noHorizontalScroll(page), 'the configuration at phone width');
  await shot(page, '21-phone-configuration');
  await page.setViewportSize({ width: 1280, height: 900 });

  // 13. sign out: the private project asks for a sign-in again
  await page.getByRole('button', { name: 'Log Out' }).click();
  await page.getByRole('button', { name: 'LOG IN' }).waitFor();
  await page.goto(`${URL}/harbor/projects/${projectId}/configs`);
  await page.getByRole('button', { name: 'LOG IN' }).waitFor();
  check(true, 'after signing out, the project asks for a sign-in');

  check(problems.length === 0, `no script error, dialog or CSP report: ${problems.join(' | ')}`);
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  console.error('problems seen: ' + problems.join(' | '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
