// admin.mjs: Administration as a system administrator: a user created, made
// an administrator, given a new password (checked by signing in with it) and
// deleted; a system robot's one-time secret; the system CVE allowlist saved
// and shown again after a reload, with the expired warning; the audit log.
import { URL, PASSWORD, check, launch, shot, signIn } from './lib.mjs';

const NAME = process.env.NEWUSER;
const { browser, page, problems } = await launch();
const row = (name) => page.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) });

try {
  await page.goto(`${URL}/harbor/users`);
  await signIn(page);
  await page.getByRole('heading', { name: 'Users' }).waitFor();
  await page.getByRole('button', { name: '+ NEW USER' }).click();
  const dlg = page.getByRole('dialog', { name: 'New User' });
  await dlg.getByLabel('Username', { exact: true }).fill(NAME);
  await dlg.getByLabel('Email', { exact: true }).fill(`${NAME}@example.com`);
  await dlg.getByLabel('Full name', { exact: true }).fill('New User');
  await dlg.getByLabel('Password', { exact: true }).fill('weak');
  await dlg.getByRole('button', { name: 'OK' }).click();
  await dlg.getByRole('alert').waitFor();
  check((await dlg.getByRole('alert').textContent()).length > 0, `a weak password is refused with the API's reason: ${await dlg.getByRole('alert').textContent()}`);
  await dlg.getByLabel('Password', { exact: true }).fill('First-Passw0rd');
  await dlg.getByRole('button', { name: 'OK' }).click();
  await row(NAME).waitFor();
  check((await row(NAME).getByRole('cell').nth(1).textContent()) === 'No', 'the new user is listed, not an administrator');
  await page.getByRole('button', { name: `Set as admin ${NAME}` }).click();
  await page.getByRole('button', { name: `Revoke admin from ${NAME}` }).waitFor();
  check((await row(NAME).getByRole('cell').nth(1).textContent()) === 'Yes', 'made an administrator');
  await page.getByRole('button', { name: `Reset the password of ${NAME}` }).click();
  await page.getByLabel('New password').fill('Second-Passw0rd');
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click();
  await page.getByRole('dialog').waitFor({ state: 'detached' });
  await shot(page, '01-users');

  // the new password works (another browser context: its own cookie jar)
  const other = await browser.newContext();
  const p2 = await other.newPage();
  await p2.goto(`${URL}/harbor/sign-in`);
  await p2.getByLabel('Username').fill(NAME);
  await p2.getByLabel('Password').fill('Second-Passw0rd');
  await p2.getByRole('button', { name: 'LOG IN' }).click();
  await p2.waitForURL(`${URL}/harbor/projects`);
  check((await p2.getByTestId('current-user').textContent()) === NAME, 'the new password signs the user in');
  await other.close();

  await page.getByRole('button', { name: `Delete ${NAME}` }).click();
  await page.getByText(`${NAME} deleted.`).waitFor();
  check((await row(NAME).count()) === 0, 'the user is deleted');

  await page.goto(`${URL}/harbor/robot-accounts`);
  await page.getByRole('button', { name: '+ NEW ROBOT ACCOUNT' }).click();
  await page.getByLabel('Name', { exact: true }).fill('sysbot');
  // typed as a user does (playwright's fill of "-1" into a number field is lost in Firefox)
  await page.getByLabel('Expiration time (days, -1 for never)').fill('');
  await page.getByLabel('Expiration time (days, -1 for never)').pressSequentially('-1');
  await page.getByRole('button', { name: 'ADD', exact: true }).click();
  const secret = page.getByTestId('robot-secret');
  await secret.waitFor();
  check((await secret.inputValue()).length >= 16, 'a system robot\'s secret is shown once');
  await page.getByRole('button', { name: 'CLOSE' }).click();
  await row('robot$sysbot').waitFor();
  check((await row('robot$sysbot').getByRole('cell').nth(4).textContent()) === 'Never Expires', 'it never expires');
  await page.getByRole('button', { name: 'Refresh the secret of robot$sysbot' }).click();
  const fresh = page.getByTestId('robot-secret');
  await fresh.waitFor();
  check((await fresh.inputValue()).length >= 16, 'Refresh Secret shows the new secret once');
  await page.getByRole('button', { name: 'CLOSE' }).click();
  await shot(page, '02-system-robots');

  await page.goto(`${URL}/harbor/configs/security`);
  await page.getByLabel('Enter CVE ID(s)').fill('CVE-2024-1111\nCVE-2024-2222, CVE-2024-1111');
  await page.getByRole('button', { name: 'ADD', exact: true }).click();
  await page.getByLabel('Never expires').uncheck();
  await page.getByLabel('Expires at').fill('2020-01-31');
  await page.getByText('The system CVE allowlist has expired. You can enable the allowlist by extending the expiration date.').waitFor();
  check(true, 'a date in the past: the expired warning');
  await page.getByRole('button', { name: 'SAVE' }).click();
  await page.getByText('Configuration has been successfully saved.').waitFor();
  await page.reload();
  const items = page.getByTestId('allowlist-items');
  await items.getByText('CVE-2024-2222').waitFor();
  check((await items.locator('li').allTextContents()).map((t) => t.replace('×', '')).join() === 'CVE-2024-1111,CVE-2024-2222', 'the system allowlist is saved, each id once');
  check((await page.getByLabel('Expires at').inputValue()) === '2020-01-31', 'its expiry is saved');
  await page.getByText('The system CVE allowlist has expired.', { exact: false }).waitFor();
  await shot(page, '03-system-allowlist');

  await page.goto(`${URL}/harbor/logs`);
  const logs = page.getByRole('table', { name: 'Logs' });
  await logs.getByRole('cell', { name: NAME, exact: true }).first().waitFor();
  check(true, 'the audit log names the user');
  check(problems.length === 0, `no script error, dialog or CSP report: ${problems.join(' | ')}`);
  void PASSWORD;
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
