// app.js: the portal's shell: who is signed in, the navigation, and the
// router over Harbor's page addresses (/harbor/...), so that links written
// for Harbor open the same page here and a reload stays on it.
import { api, setUnauthorizedHandler, signIn, signOut, forgetSession } from './api.js';
import { h, clear, alertBox, field } from './dom.js';
import { projectsPage } from './projects.js';
import { projectPage } from './project.js';
import { artifactsPage } from './artifacts.js';
import { artifactPage } from './artifact.js';
import { usersPage, systemRobotsPage, securityPage, auditPage } from './admin.js';
import { interrogationPage } from './interrogation.js';

export const state = { user: null };

let pendingFocus = null;

/** Goes to `path`; `focusId` names the element to focus once the page is drawn. */
export function navigate(path, replace, focusId) {
  pendingFocus = focusId || null;
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

// Same-origin links inside the application are followed without a reload.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[data-nav]');
  if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});
window.addEventListener('popstate', () => route());

export function link(path, ...children) {
  return h('a', { href: path, 'data-nav': true }, ...children);
}

async function whoAmI() {
  try {
    const { data } = await api('GET', '/users/current', undefined, { quiet: true });
    state.user = data;
  } catch {
    state.user = null;
  }
}

function shell(main) {
  const u = state.user;
  const nav = h('nav', { class: 'side', 'aria-label': 'Main' },
    h('ul', null,
      h('li', null, link('/harbor/projects', 'Projects')),
      u && u.sysadmin_flag ? [
        h('li', null, link('/harbor/logs', 'Logs')),
        h('li', { class: 'group' }, h('span', null, 'Administration'),
          h('ul', null,
            h('li', null, link('/harbor/users', 'Users')),
            h('li', null, link('/harbor/robot-accounts', 'Robot Accounts')),
            h('li', null, link('/harbor/interrogation-services', 'Interrogation Services')),
            h('li', null, link('/harbor/configs/security', 'Configuration')))),
      ] : null),
    h('p', { class: 'foot' }, h('a', { href: '/api/v2.0/swagger.json' }, 'Harbor API V2.0')));
  const header = h('header', { class: 'top' },
    h('a', { href: '/harbor/projects', 'data-nav': true, class: 'brand' }, 'wharf'),
    h('span', { class: 'spacer' }),
    u ? [h('span', { class: 'who', 'data-testid': 'current-user' }, u.username),
      h('button', { type: 'button', class: 'link', onclick: async () => { await signOut(); state.user = null; navigate('/harbor/sign-in'); } }, 'Log Out')]
      : h('a', { href: '/harbor/sign-in', 'data-nav': true }, 'Log In'));
  const root = clear(document.getElementById('app'));
  root.appendChild(h('div', { class: 'layout' }, header, nav, h('main', { id: 'main', tabindex: '-1' }, main)));
  markCurrent(nav);
}

function markCurrent(nav) {
  for (const a of nav.querySelectorAll('a[data-nav]')) {
    if (location.pathname.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
  }
}

function signInPage(message) {
  const err = h('div', { 'aria-live': 'assertive' }, message ? alertBox('info', message) : null);
  const [fu, user] = field('Username', { name: 'principal', autocomplete: 'username', required: true });
  const [fp, pass] = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const btn = h('button', { type: 'submit', class: 'primary' }, 'LOG IN');
  const form = h('form', { class: 'signin', 'aria-label': 'Log in' }, h('h1', null, 'wharf'), fu, fp, err, btn);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    btn.disabled = true;
    clear(err);
    try {
      await signIn(user.value, pass.value);
      await whoAmI();
      const next = new URLSearchParams(location.search).get('redirect_url');
      navigate(next && next.startsWith('/harbor/') ? next : '/harbor/projects', true);
    } catch (ex) {
      err.appendChild(alertBox('error', ex.message));
      pass.value = '';
      pass.focus();
    } finally {
      btn.disabled = false;
    }
  });
  const root = clear(document.getElementById('app'));
  root.appendChild(h('div', { class: 'signin-wrap' }, form));
  user.focus();
}

setUnauthorizedHandler(() => {
  forgetSession();
  state.user = null;
  const here = location.pathname;
  history.replaceState(null, '', '/harbor/sign-in?redirect_url=' + encodeURIComponent(here));
  signInPage('Your session has ended: log in again.');
});

function decode(s) {
  try { return decodeURIComponent(s); } catch { return s; }
}

// The pages, by address. Each renders into the element it is given; those
// marked ADMIN are the system administrators' (Administration, Logs).
const ADMIN = true;
const routes = [
  [/^\/harbor\/projects\/?$/, () => projectsPage],
  [/^\/harbor\/projects\/(\d+)\/repositories\/(.+)\/artifacts-tab\/artifacts\/([^/]+)\/?$/,
    (m) => (el) => artifactPage(el, Number(m[1]), decode(m[2]), decode(m[3]))],
  [/^\/harbor\/projects\/(\d+)\/repositories\/(.+)\/artifacts-tab\/?$/,
    (m) => (el) => artifactsPage(el, Number(m[1]), decode(m[2]))],
  [/^\/harbor\/projects\/(\d+)\/repositories\/(.+?)\/?$/,
    (m) => (el) => artifactsPage(el, Number(m[1]), decode(m[2]))],
  [/^\/harbor\/projects\/(\d+)(?:\/([a-z-]+))?\/?$/, (m) => (el) => projectPage(el, Number(m[1]), m[2] || 'summary')],
  [/^\/harbor\/users\/?$/, () => usersPage, ADMIN],
  [/^\/harbor\/robot-accounts\/?$/, () => systemRobotsPage, ADMIN],
  [/^\/harbor\/interrogation-services(?:\/([a-z-]+))?\/?$/, (m) => (el) => interrogationPage(el, m[1]), ADMIN],
  [/^\/harbor\/configs(\/.*)?$/, () => securityPage, ADMIN],
  [/^\/harbor\/logs\/?$/, () => auditPage, ADMIN],
];

let routeSeq = 0;

export async function route() {
  const seq = ++routeSeq;
  const path = location.pathname;
  if (path === '/' || path === '/harbor' || path === '/harbor/') {
    history.replaceState(null, '', '/harbor/projects');
    return route();
  }
  if (state.user === undefined || state.user === null) await whoAmI();
  if (seq !== routeSeq) return;
  if (path.startsWith('/harbor/sign-in')) {
    if (state.user) return navigate('/harbor/projects', true);
    return signInPage();
  }
  let page = null, adminOnly = false;
  for (const [re, make, admin] of routes) {
    const m = path.match(re);
    if (m) { page = make(m); adminOnly = !!admin; break; }
  }
  if (!state.user) {
    // as in Harbor, every page but the sign-in asks for one first
    history.replaceState(null, '', '/harbor/sign-in?redirect_url=' + encodeURIComponent(path));
    return signInPage();
  }
  const main = h('div', { class: 'page' });
  shell(main);
  if (!page) {
    main.appendChild(h('h1', null, 'Page not found'));
    main.appendChild(h('p', null, link('/harbor/projects', 'Projects')));
    return;
  }
  if (adminOnly && !state.user.sysadmin_flag) {
    // the server refuses these pages' requests (403): say why instead
    main.appendChild(h('h1', null, 'Administration'));
    main.appendChild(alertBox('info', 'This page is for system administrators only. Ask one to give you the role, or to do what you need.'));
    main.appendChild(h('p', null, link('/harbor/projects', 'Projects')));
    document.getElementById('main')?.focus({ preventScroll: true });
    return;
  }
  try {
    await page(main);
  } catch (ex) {
    main.appendChild(alertBox('error', ex.message));
  }
  const target = (pendingFocus && document.getElementById(pendingFocus)) || document.getElementById('main');
  pendingFocus = null;
  target?.focus({ preventScroll: true });
}

route();
