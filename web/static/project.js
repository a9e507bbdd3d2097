// project.js: a project's page and its tabs (Summary, Repositories, Members,
// Robot Accounts, Logs, Configuration), each at Harbor's address.
import { api } from './api.js';
import { h, clear, fmtTime, fmtSize, alertBox, actor, dialog, field, table, pager, copyButton } from './dom.js';
import { link, navigate } from './app.js';
import { ROLES } from './projects.js';
import { allowlistEditor } from './allowlist.js';

const TABS = [
  ['summary', 'Summary'], ['repositories', 'Repositories'], ['members', 'Members'],
  ['robot-account', 'Robot Accounts'], ['logs', 'Logs'], ['configs', 'Configuration'],
];

export async function projectPage(el, id, tab) {
  const { data: p } = await api('GET', `/projects/${id}`);
  if (!TABS.some(([k]) => k === tab)) tab = 'summary';
  const tabs = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Project' },
    TABS.map(([k, label]) => h('a', {
      role: 'tab', href: `/harbor/projects/${id}/${k}`, 'data-nav': true,
      'aria-selected': k === tab ? 'true' : 'false', id: `tab-${k}`, tabindex: k === tab ? '0' : '-1',
    }, label)));
  // the tab pattern: one tab in the tab order, the arrows, Home and End move between them
  tabs.addEventListener('keydown', (e) => {
    const all = [...tabs.querySelectorAll('[role=tab]')];
    const i = all.indexOf(document.activeElement);
    const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: all.length - 1 }[e.key];
    if (i < 0 || to === undefined) return;
    e.preventDefault();
    const next = all[(to + all.length) % all.length];
    navigate(next.getAttribute('href'), false, next.id);
  });
  const panel = h('section', { role: 'tabpanel', 'aria-labelledby': `tab-${tab}`, class: 'panel' });
  el.append(h('p', { class: 'crumbs' }, link('/harbor/projects', 'Projects'), ' / '),
    h('h1', null, p.name, h('span', { class: 'badge' }, p.metadata.public === 'true' ? 'Public' : 'Private')),
    tabs, panel);
  const pages = { summary, repositories, members, 'robot-account': robots, logs, configs };
  await pages[tab](panel, p);
}

async function summary(el, p) {
  const { data: s } = await api('GET', `/projects/${p.project_id}/summary`);
  const hard = s.quota && s.quota.hard ? s.quota.hard.storage : -1;
  const used = s.quota && s.quota.used ? s.quota.used.storage : 0;
  el.append(h('dl', { class: 'summary' },
    h('dt', null, 'Repositories'), h('dd', { 'data-testid': 'repo-count' }, String(s.repo_count)),
    h('dt', null, 'Members'), h('dd', null,
      `${s.project_admin_count} Admin(s), ${s.maintainer_count} Maintainer(s), ${s.developer_count} Developer(s), ${s.guest_count} Guest(s), ${s.limited_guest_count} Limited guest(s)`),
    h('dt', null, 'Quota used'), h('dd', null, `${fmtSize(used)} of ${hard < 0 ? 'unlimited' : fmtSize(hard)}`)));
  if (hard > 0) {
    const bar = h('div', { class: 'bar-fill' });
    bar.style.width = Math.min(100, (100 * used) / hard).toFixed(1) + '%';
    el.append(h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': hard, 'aria-valuenow': used, 'aria-label': 'Quota used' }, bar));
  }
}

async function repositories(el, p) {
  let page = 1, filter = '';
  const size = 15;
  const list = h('div');
  const search = h('input', { type: 'search', placeholder: 'Filter repositories', 'aria-label': 'Filter repositories by name' });
  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { filter = search.value.trim(); page = 1; load(); }, 250); });
  el.append(h('div', { class: 'toolbar' }, h('span', { class: 'spacer' }), search), list);
  async function load() {
    const q = new URLSearchParams({ page, page_size: size });
    if (filter) q.set('q', `name=~${filter}`);
    const res = await api('GET', `/projects/${encodeURIComponent(p.name)}/repositories?${q}`);
    const rows = res.data.map((r) => {
      const short = r.name.slice(p.name.length + 1);
      return h('tr', null,
        h('td', null, link(`/harbor/projects/${p.project_id}/repositories/${encodeURIComponent(short)}/artifacts-tab`, r.name)),
        h('td', { class: 'num' }, String(r.artifact_count)),
        h('td', { class: 'num' }, String(r.pull_count)),
        h('td', null, fmtTime(r.update_time)));
    });
    clear(list).append(table('Repositories', ['Name', 'Artifacts', 'Pulls', 'Last Modified Time'], rows),
      rows.length ? '' : h('p', { class: 'empty' }, 'We couldn\'t find any repositories!'),
      pager(page, size, res.total ?? rows.length, (n) => { page = n; load(); }));
  }
  await load();
}

async function members(el, p) {
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  el.append(h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: add }, '+ USER')), msg, list);
  const roleSelect = (cur) => h('select', { 'aria-label': 'Role' },
    [1, 4, 2, 3, 5].map((r) => h('option', { value: r, selected: r === cur }, ROLES[r])));
  async function load() {
    const { data } = await api('GET', `/projects/${p.project_id}/members?page_size=100`);
    const rows = data.map((m) => {
      const sel = roleSelect(m.role_id);
      sel.setAttribute('aria-label', `Role of ${m.entity_name}`);
      sel.addEventListener('change', () => act(() => api('PUT', `/projects/${p.project_id}/members/${m.id}`, { role_id: Number(sel.value) }), `Role of ${m.entity_name} changed.`));
      return h('tr', null, h('td', null, m.entity_name), h('td', null, m.entity_type === 'g' ? 'Group' : 'User'),
        h('td', null, sel),
        h('td', null, h('button', { type: 'button', class: 'link danger', 'aria-label': `Remove member ${m.entity_name}`, onclick: () => act(() => api('DELETE', `/projects/${p.project_id}/members/${m.id}`), `${m.entity_name} removed.`) }, 'Remove')));
    });
    clear(list).append(table('Members', ['Name', 'Member Type', 'Role', ''], rows));
  }
  const act = actor(msg, load);
  function add() {
    const [fn, name] = field('Name', { required: true, autocomplete: 'off' });
    const sel = roleSelect(2);
    const err = h('div', { 'aria-live': 'assertive' });
    const form = h('form', { id: 'add-member' }, fn, h('div', { class: 'field' }, h('label', null, 'Role', sel)), err);
    const cancel = h('button', { type: 'button' }, 'CANCEL');
    const d = dialog('New Member', form, [cancel, h('button', { type: 'submit', class: 'primary', form: 'add-member' }, 'OK')]);
    cancel.addEventListener('click', () => d.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await api('POST', `/projects/${p.project_id}/members`, { role_id: Number(sel.value), member_user: { username: name.value.trim() } });
        d.close();
        await load();
      } catch (ex) { clear(err).append(alertBox('error', ex.message)); }
    });
    name.focus();
  }
  await load();
}

const ROBOT_ACTIONS = [
  ['repository', 'pull', 'Pull repository'], ['repository', 'push', 'Push repository'],
  ['repository', 'delete', 'Delete repository'], ['artifact', 'read', 'Read artifact'],
  ['artifact', 'delete', 'Delete artifact'], ['tag', 'create', 'Create tag'], ['tag', 'delete', 'Delete tag'],
  ['scan', 'create', 'Create scan'], ['scan', 'stop', 'Stop scan'], ['scan', 'read', 'Read scan'],
];

export function expiresIn(r) {
  if (r.expires_at === -1 || r.duration === -1) return 'Never Expires';
  const s = r.expires_at - Date.now() / 1000;
  if (s <= 0) return 'Expired';
  const d = Math.floor(s / 86400);
  return d > 0 ? `${d} day(s)` : `${Math.ceil(s / 3600)} hour(s)`;
}

export function robotGrid(el, opts) {
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  el.append(h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: create }, '+ NEW ROBOT ACCOUNT')), msg, list);
  async function load() {
    const { data } = await api('GET', `/robots?${opts.query}&page_size=100`);
    const rows = data.map((r) => h('tr', null,
      h('td', null, r.name),
      h('td', null, r.disable ? 'Disabled' : 'Enabled'),
      h('td', null, (r.permissions || []).map((pp) => `${pp.namespace}: ${(pp.access || []).map((a) => `${a.action} ${a.resource}`).join(', ')}`).join('; ')),
      h('td', null, fmtTime(r.creation_time)),
      h('td', null, expiresIn(r)),
      h('td', null, r.description || ''),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'link', 'aria-label': `${r.disable ? 'Enable' : 'Disable'} ${r.name}`, onclick: () => act(() => api('PUT', `/robots/${r.id}`, { ...r, disable: !r.disable }), `${r.name} ${r.disable ? 'enabled' : 'disabled'}.`) }, r.disable ? 'Enable' : 'Disable'),
        h('button', { type: 'button', class: 'link', 'aria-label': `Refresh the secret of ${r.name}`, onclick: () => refresh(r) }, 'Refresh Secret'),
        h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete ${r.name}`, onclick: () => act(() => api('DELETE', `/robots/${r.id}`), `${r.name} deleted.`) }, 'Delete'))));
    clear(list).append(table('Robot Accounts', ['Name', 'Enabled state', 'Permissions', 'Created time', 'Expires in', 'Description', ''], rows),
      rows.length ? '' : h('p', { class: 'empty' }, 'We couldn\'t find any robot accounts!'));
  }
  const act = actor(msg, load);
  async function refresh(r) {
    clear(msg);
    try {
      const { data } = await api('PATCH', `/robots/${r.id}`, {});
      showSecret(r.name, data.secret);
    } catch (ex) { msg.append(alertBox('error', ex.message)); }
  }
  function create() {
    const [fn, name] = field('Name', { required: true, autocomplete: 'off' });
    const [fe, days] = field('Expiration time (days, -1 for never)', { type: 'number', value: '30', min: '-1', step: '1' });
    const [fd, desc] = field('Description', { autocomplete: 'off' });
    const boxes = ROBOT_ACTIONS.map(([res, act, label], i) => {
      const cb = h('input', { type: 'checkbox', id: `ra-${i}`, checked: act === 'pull' || act === 'push' });
      return [res, act, cb, h('label', { for: `ra-${i}`, class: 'inline' }, cb, ' ' + label)];
    });
    const err = h('div', { 'aria-live': 'assertive' });
    const form = h('form', { id: 'new-robot' }, fn, fe, fd,
      h('fieldset', null, h('legend', null, 'Permissions'), boxes.map((b) => b[3])), err);
    const cancel = h('button', { type: 'button' }, 'CANCEL');
    const d = dialog('New Robot Account', form, [cancel, h('button', { type: 'submit', class: 'primary', form: 'new-robot' }, 'ADD')]);
    cancel.addEventListener('click', () => d.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const access = boxes.filter((b) => b[2].checked).map(([resource, action]) => ({ resource, action }));
      const body = { name: name.value.trim(), description: desc.value, level: opts.level, duration: Number(days.value), disable: false, permissions: opts.permissions(access) };
      try {
        const { data } = await api('POST', '/robots', body);
        d.close();
        showSecret(data.name, data.secret);
        await load();
      } catch (ex) { clear(err).append(alertBox('error', ex.message)); }
    });
    name.focus();
  }
  function showSecret(name, secret) {
    const out = h('input', { type: 'text', readonly: true, value: secret, 'aria-label': 'Secret', class: 'secret', 'data-testid': 'robot-secret' });
    const close = h('button', { type: 'button', class: 'primary' }, 'CLOSE');
    const d = dialog(`Secret of ${name}`, h('div', null,
      h('p', null, 'Copy the secret now: it is shown only this once.'),
      h('div', { class: 'copyline' }, out, copyButton(secret, 'Copy the secret'))), [close]);
    close.addEventListener('click', () => d.close());
    out.select();
  }
  return load();
}

async function robots(el, p) {
  await robotGrid(el, {
    level: 'project',
    query: 'q=' + encodeURIComponent(`Level=project,ProjectID=${p.project_id}`),
    permissions: (access) => [{ kind: 'project', namespace: p.name, access }],
  });
}

export function logGrid(el, path) {
  let page = 1;
  const size = 15;
  const list = h('div');
  el.append(list);
  async function load() {
    const res = await api('GET', `${path}${path.includes('?') ? '&' : '?'}page=${page}&page_size=${size}`);
    const rows = res.data.map((l) => h('tr', null,
      h('td', null, fmtTime(l.op_time)), h('td', null, l.username), h('td', null, l.resource),
      h('td', null, l.resource_type), h('td', null, l.operation), h('td', null, l.operation_description || ''),
      h('td', null, l.operation_result ? 'Yes' : 'No')));
    clear(list).append(table('Logs', ['Timestamp', 'Username', 'Resource', 'Resource Type', 'Operation', 'Operation Description', 'Success'], rows),
      pager(page, size, res.total ?? rows.length, (n) => { page = n; load(); }));
  }
  return load();
}

async function logs(el, p) {
  await logGrid(el, `/projects/${encodeURIComponent(p.name)}/logs`);
}

async function configs(el, p) {
  const m = p.metadata || {};
  const truthy = (v) => v === 'true' || v === '1';
  const msg = h('div', { 'aria-live': 'polite' });
  const cb = (id, on) => h('input', { type: 'checkbox', id, checked: on });
  const pub = cb('cfg-public', truthy(m.public));
  const prevent = cb('cfg-prevent', truthy(m.prevent_vul));
  const sev = h('select', { id: 'cfg-severity', 'aria-label': 'Severity threshold' },
    ['critical', 'high', 'medium', 'low', 'none'].map((s) => h('option', { value: s, selected: (m.severity || 'low') === s }, s[0].toUpperCase() + s.slice(1))));
  const scan = cb('cfg-autoscan', truthy(m.auto_scan));
  const sync = () => { sev.disabled = !prevent.checked; };
  prevent.addEventListener('change', sync);
  sync();
  let sys = { items: [], expires_at: null };
  try { sys = (await api('GET', '/system/CVEAllowlist')).data; } catch { /* shown as empty */ }
  const editor = allowlistEditor({
    scope: 'project', list: p.cve_allowlist || { items: [] }, system: sys,
    reuseSystem: m.reuse_sys_cve_allowlist === undefined ? true : truthy(m.reuse_sys_cve_allowlist),
  });
  const save = h('button', { type: 'submit', class: 'primary' }, 'SAVE');
  const cancel = h('button', { type: 'button', onclick: () => navigate(location.pathname, true) }, 'CANCEL');
  const form = h('form', { class: 'config', 'aria-label': 'Project configuration' },
    h('fieldset', null, h('legend', null, 'Project registry'),
      h('label', { for: 'cfg-public', class: 'inline' }, pub, ' Public'),
      h('p', { class: 'hint' }, 'Making a project registry public will make all repositories accessible to everyone.')),
    h('fieldset', null, h('legend', null, 'Deployment security'),
      h('label', { for: 'cfg-prevent', class: 'inline' }, prevent, ' Prevent vulnerable images from running.'),
      h('p', { class: 'sentence' }, 'Prevent images with vulnerability severity of ', sev, ' and above from being deployed.')),
    h('fieldset', null, h('legend', null, 'Vulnerability scanning'),
      h('label', { for: 'cfg-autoscan', class: 'inline' }, scan, ' Automatically scan images on push'),
      h('p', { class: 'hint' }, 'Automatically scan images when they are pushed to the project registry.')),
    editor.element, msg, h('div', { class: 'actions' }, cancel, save));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(msg);
    const al = editor.value();
    if (al.error) { msg.append(alertBox('error', al.error)); return; }
    const body = {
      metadata: {
        public: String(pub.checked), prevent_vul: String(prevent.checked), severity: sev.value,
        auto_scan: String(scan.checked), reuse_sys_cve_allowlist: String(al.reuseSystem),
      },
      cve_allowlist: { items: al.items.map((id) => ({ cve_id: id })), expires_at: al.expiresAt },
    };
    save.disabled = true;
    try {
      await api('PUT', `/projects/${p.project_id}`, body);
      msg.append(alertBox('ok', 'Configuration has been successfully saved.'));
    } catch (ex) {
      msg.append(alertBox('error', ex.message));
    } finally { save.disabled = false; }
  });
  el.append(form);
}
