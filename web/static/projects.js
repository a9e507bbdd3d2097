// projects.js: the projects list (Harbor's columns), New Project, Delete.
import { api } from './api.js';
import { h, clear, fmtTime, alertBox, dialog, field, table, pager } from './dom.js';
import { link, state } from './app.js';

export const ROLES = { 1: 'Project Admin', 2: 'Developer', 3: 'Guest', 4: 'Maintainer', 5: 'Limited Guest' };
const PAGE_SIZE = 15;

export async function projectsPage(el) {
  let page = 1, filter = '';
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  const search = h('input', { type: 'search', placeholder: 'Filter projects', 'aria-label': 'Filter projects by name' });
  let timer = null;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { filter = search.value.trim(); page = 1; load(); }, 250);
  });
  el.append(h('h1', null, 'Projects'),
    h('div', { class: 'toolbar' },
      state.user ? h('button', { type: 'button', class: 'primary', onclick: () => newProject(load) }, '+ NEW PROJECT') : null,
      h('span', { class: 'spacer' }), search),
    msg, list);

  async function load() {
    const q = new URLSearchParams({ page, page_size: PAGE_SIZE, with_detail: 'true' });
    if (filter) q.set('name', filter);
    let res;
    try {
      res = await api('GET', '/projects?' + q);
    } catch (ex) {
      clear(msg).appendChild(alertBox('error', ex.message));
      return;
    }
    const rows = (res.data || []).map((p) => h('tr', null,
      h('td', null, link(`/harbor/projects/${p.project_id}/repositories`, p.name)),
      h('td', null, p.metadata && p.metadata.public === 'true' ? 'Public' : 'Private'),
      h('td', null, ROLES[p.current_user_role_id] || ''),
      h('td', null, 'Project'),
      h('td', { class: 'num' }, String(p.repo_count ?? 0)),
      h('td', null, fmtTime(p.creation_time)),
      h('td', null, state.user ? h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete project ${p.name}`, onclick: () => deleteProject(p, msg, load) }, 'Delete') : null)));
    clear(list).append(
      table('Projects', ['Project Name', 'Access Level', 'Role', 'Type', 'Repositories Count', 'Creation Time', ''], rows),
      rows.length ? '' : h('p', { class: 'empty' }, 'We couldn\'t find any projects!'),
      pager(page, PAGE_SIZE, res.total ?? rows.length, (p) => { page = p; load(); }));
  }
  await load();
}

async function deleteProject(p, msg, reload) {
  clear(msg);
  const yes = h('button', { type: 'button', class: 'danger' }, 'DELETE');
  const no = h('button', { type: 'button' }, 'CANCEL');
  const d = dialog('Confirm project deletion', h('p', null, `Do you want to delete project ${p.name}?`), [no, yes]);
  no.addEventListener('click', () => d.close());
  yes.addEventListener('click', async () => {
    d.close();
    try {
      await api('DELETE', `/projects/${p.project_id}`);
      msg.appendChild(alertBox('ok', `Project ${p.name} deleted.`));
      reload();
    } catch (ex) {
      msg.appendChild(alertBox('error', `Project ${p.name} cannot be deleted: ${ex.message}`));
    }
  });
}

function newProject(reload) {
  const [fn, name] = field('Project Name', { required: true, autocomplete: 'off' });
  const pub = h('input', { type: 'checkbox', id: 'np-public' });
  const [fq, quota] = field('Project quota limits', { type: 'number', value: '-1', min: '-1', step: '1' });
  const unit = h('select', { 'aria-label': 'Quota unit' }, ['MiB', 'GiB', 'TiB'].map((u) => h('option', { value: u, selected: u === 'GiB' }, u)));
  fq.appendChild(unit);
  const err = h('div', { 'aria-live': 'assertive' });
  const ok = h('button', { type: 'submit', class: 'primary' }, 'OK');
  const cancel = h('button', { type: 'button' }, 'CANCEL');
  const form = h('form', { id: 'new-project' }, fn,
    h('div', { class: 'field' }, h('span', { class: 'label' }, 'Access Level'),
      h('label', { for: 'np-public', class: 'inline' }, pub, ' Public')),
    fq, h('p', { class: 'hint' }, "The maximum logical space that can be used by the project. For unlimited quota enter '-1'."), err);
  const d = dialog('New Project', form, [cancel, ok]);
  ok.setAttribute('form', 'new-project');
  cancel.addEventListener('click', () => d.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(err);
    const q = Number(quota.value);
    const mult = { MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 }[unit.value];
    const body = { project_name: name.value.trim(), metadata: { public: pub.checked ? 'true' : 'false' } };
    if (q !== -1 && q > 0) body.storage_limit = Math.round(q * mult);
    try {
      await api('POST', '/projects', body);
      d.close();
      reload();
    } catch (ex) {
      err.appendChild(alertBox('error', ex.message));
    }
  });
  name.focus();
}
