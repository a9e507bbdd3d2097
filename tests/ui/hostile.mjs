// hostile.mjs: text from the registry that holds markup (a label, a robot's
// description, a CVE description, a repository name in the address) is shown
// as that text: no element is made from it and no script runs.
import { URL, check, launch, shot, signIn } from './lib.mjs';

const PROJECT = process.env.PROJECT;
const PID = process.env.PROJECT_ID;
const XSS = process.env.XSS;
const LABEL = process.env.LABEL;

const { browser, page, problems } = await launch();
const ran = () => page.evaluate(() => window.__xss);
const injected = () => page.evaluate(() => document.querySelectorAll('img[src="x"], svg[onload], #app script').length);

try {
  await page.goto(`${URL}/harbor/sign-in`);
  await signIn(page);
  await page.waitForURL(`${URL}/harbor/projects`);

  await page.goto(`${URL}/harbor/projects/${PID}/repositories/bookworm/artifacts-tab`);
  const label = page.locator('span.label').first();
  await label.waitFor();
  check((await label.textContent()) === LABEL, 'a label named with markup shows the markup as text');
  check((await label.getAttribute('title')) === XSS, 'its description is a plain title');
  await page.getByTestId('vuln-totals').first().hover();
  check((await injected()) === 0 && (await ran()) === undefined, 'no element made, no script run (artifacts)');
  await shot(page, '01-label');

  await page.locator('td a code').first().click();
  await page.getByPlaceholder('Filter Vulnerabilities').fill('CVE-2023-45853');
  await page.getByRole('button', { name: 'Details of CVE-2023-45853' }).first().click();
  const desc = page.locator('tr.detail:not([hidden]) .description').first();
  await desc.waitFor();
  check((await desc.textContent()) === 'Hostile description ' + XSS, 'a CVE description with markup shows the markup as text');
  check((await injected()) === 0 && (await ran()) === undefined, 'no element made, no script run (CVE list)');
  await shot(page, '02-cve');

  await page.goto(`${URL}/harbor/projects/${PID}/robot-account`);
  const cell = page.getByRole('cell', { name: XSS, exact: true });
  await cell.waitFor();
  check(true, 'a robot description with markup shows as text');
  check((await injected()) === 0 && (await ran()) === undefined, 'no element made, no script run (robots)');

  const evil = encodeURIComponent(XSS);
  await page.goto(`${URL}/harbor/projects/${PID}/repositories/${evil}/artifacts-tab`);
  await page.getByRole('heading', { name: `${PROJECT}/${XSS}` }).waitFor();
  check(true, 'a repository name with markup in the address shows as text');
  await page.getByRole('alert').waitFor();
  check((await injected()) === 0 && (await ran()) === undefined, 'no element made, no script run (address)');
  await shot(page, '03-address');

  // even markup put in the page's DOM by a bug could not run inline script: the policy forbids it
  const blocked = await page.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.violatedDirective), { once: true });
    const s = document.createElement('script');
    s.textContent = "window.__xss='inline'";
    document.body.appendChild(s);
    setTimeout(() => resolve(null), 2000);
  }));
  check(blocked && blocked.startsWith('script-src') && (await ran()) === undefined, `an inline script is refused by the Content-Security-Policy (${blocked})`);
  problems.splice(0, problems.length, ...problems.filter((p) => !p.startsWith('CSP:')));
  check(problems.length === 0, `no script error or dialog: ${problems.join(' | ')}`);
} catch (e) {
  await shot(page, 'failure').catch(() => {});
  console.error(e.stack || String(e));
  console.error('problems seen: ' + problems.join(' | '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
