// admin.js: Administration (system administrators): users, system robot
// accounts, the system CVE allowlist, the audit log.
import { api } from './api.js';
import { h, clear, fmtTime, alertBox, actor, dialog, field, table, pager } from './dom.js';
import { robotGrid, logGrid } from './project.js';
import { allowlistEditor } from './allowlist.js';

export async function usersPage(el) {
  let page = 1;
  const size = 15;
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  el.append(h('h1', null, 'Users'), h('div', { class: 'toolbar' }, h('button', { type: 'button', class: 'primary', onclick: create }, '+ NEW USER')), msg, list);
  const act = actor(msg, load);
  async function load() {
    const res = await api('GET', `/users?page=${page}&page_size=${size}`);
    const rows = res.data.map((u) => h('tr', null,
      h('td', null, u.username), h('td', null, u.sysadmin_flag ? 'Yes' : 'No'), h('td', null, u.email || ''),
      h('td', null, fmtTime(u.creation_time)),
      h('td', { class: 'actions' },
        h('button', { type: 'button', class: 'link', 'aria-label': `${u.sysadmin_flag ? 'Revoke admin from' : 'Set as admin'} ${u.username}`, onclick: () => act(() => api('PUT', `/users/${u.user_id}/sysadmin`, { sysadmin_flag: !u.sysadmin_flag }), `${u.username} updated.`) }, u.sysadmin_flag ? 'Revoke admin' : 'Set as admin'),
        h('button', { type: 'button', class: 'link', 'aria-label': `Reset the password of ${u.username}`, onclick: () => reset(u) }, 'Reset password'),
        h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete ${u.username}`, onclick: () => act(() => api('DELETE', `/users/${u.user_id}`), `${u.username} deleted.`) }, 'Delete'))));
    clear(list).append(table('Users', ['Name', 'Administrator', 'Email', 'Registration time', ''], rows),
      pager(page, size, res.total ?? rows.length, (n) => { page = n; load(); }));
  }
  function form(title, fields, submit) {
    const err = h('div', { 'aria-live': 'assertive' });
    const f = h('form', { id: 'user-form' }, fields.map((x) => x[0]), err);
    const cancel = h('button', { type: 'button' }, 'CANCEL');
    const d = dialog(title, f, [cancel, h('button', { type: 'submit', class: 'primary', form: 'user-form' }, 'OK')]);
    cancel.addEventListener('click', () => d.close());
    f.addEventListener('submit', async (e) => {
      e.preventDefault();
      try { await submit(); d.close(); await load(); } catch (ex) { clear(err).append(alertBox('error', ex.message)); }
    });
    fields[0][1].focus();
  }
  function create() {
    const n = field('Username', { required: true, autocomplete: 'off' });
    const e = field('Email', { type: 'email', autocomplete: 'off' });
    const r = field('Full name', { autocomplete: 'off' });
    const pw = field('Password', { type: 'password', required: true, autocomplete: 'new-password' });
    form('New User', [n, e, r, pw], () => api('POST', '/users', { username: n[1].value.trim(), email: e[1].value.trim(), realname: r[1].value, password: pw[1].value }));
  }
  function reset(u) {
    const pw = field('New password', { type: 'password', required: true, autocomplete: 'new-password' });
    form(`Reset the password of ${u.username}`, [pw], () => api('PUT', `/users/${u.user_id}/password`, { new_password: pw[1].value }));
  }
  await load();
}

export async function systemRobotsPage(el) {
  el.append(h('h1', null, 'Robot Accounts'));
  await robotGrid(el, {
    level: 'system',
    query: 'q=' + encodeURIComponent('Level=system'),
    permissions: (access) => [{ kind: 'project', namespace: '*', access }],
  });
}

export async function securityPage(el) {
  el.append(h('h1', null, 'Configuration'), h('h2', null, 'Security'));
  const { data } = await api('GET', '/system/CVEAllowlist');
  const editor = allowlistEditor({ scope: 'system', list: data || { items: [] }, system: data, reuseSystem: false });
  const msg = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'primary' }, 'SAVE');
  const f = h('form', { class: 'config', 'aria-label': 'System CVE allowlist' }, editor.element, msg, h('div', { class: 'actions' }, save));
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(msg);
    const v = editor.value();
    if (v.error) { msg.append(alertBox('error', v.error)); return; }
    try {
      await api('PUT', '/system/CVEAllowlist', { items: v.items.map((id) => ({ cve_id: id })), expires_at: v.expiresAt });
      msg.append(alertBox('ok', 'Configuration has been successfully saved.'));
    } catch (ex) { msg.append(alertBox('error', ex.message)); }
  });
  el.append(f);
}

export async function auditPage(el) {
  el.append(h('h1', null, 'Logs'));
  await logGrid(el, '/audit-logs');
}
