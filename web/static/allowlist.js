// allowlist.js: the CVE allowlist editor of a project's Configuration tab
// (system or project allowlist) and of the system's security settings.
import { h, clear } from './dom.js';

function toDateInput(sec) {
  const d = new Date(sec * 1000);
  return d.toISOString().slice(0, 10);
}

export function allowlistEditor({ scope, list, system, reuseSystem }) {
  const items = (list.items || []).map((i) => i.cve_id);
  const expires = list.expires_at ?? null;
  const rSys = h('input', { type: 'radio', name: 'al-scope', id: 'al-system', checked: scope === 'project' && reuseSystem });
  const rProj = h('input', { type: 'radio', name: 'al-scope', id: 'al-project', checked: scope === 'project' && !reuseSystem });
  const ul = h('ul', { class: 'cves', 'aria-label': 'Allowlisted CVE IDs', 'data-testid': 'allowlist-items' });
  const sysView = h('ul', { class: 'cves readonly', 'aria-label': 'System allowlist' },
    (system && system.items || []).map((i) => h('li', null, i.cve_id)));
  const input = h('textarea', { id: 'al-add', rows: 2, placeholder: 'CVE-2023-45853, CVE-2024-0001' });
  const addBtn = h('button', { type: 'button' }, 'ADD');
  const copyBtn = scope === 'project' ? h('button', { type: 'button' }, 'COPY FROM SYSTEM') : null;
  const never = h('input', { type: 'checkbox', id: 'al-never', checked: expires === null || expires === -1 });
  const date = h('input', { type: 'date', id: 'al-expires', 'aria-label': 'Expires at' });
  if (!never.checked) date.value = toDateInput(expires);
  const warn = h('div', { 'aria-live': 'polite' });

  function render() {
    clear(ul);
    for (const id of items) {
      ul.append(h('li', null, id, h('button', {
        type: 'button', class: 'icon', 'aria-label': `Remove ${id}`,
        onclick: () => { items.splice(items.indexOf(id), 1); render(); },
      }, '×')));
    }
    date.disabled = never.checked;
    clear(warn);
    const exp = value().expiresAt;
    if (exp !== null && exp * 1000 < Date.now()) {
      warn.append(h('div', { class: 'alert warn', role: 'status' },
        `The ${scope} CVE allowlist has expired. You can enable the allowlist by extending the expiration date.`));
    }
    const useSys = scope === 'project' && rSys.checked;
    projBox.hidden = useSys;
    sysBox.hidden = !useSys;
  }
  function addIds(text) {
    for (const id of text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean)) {
      if (!items.includes(id)) items.push(id);
    }
    render();
  }
  addBtn.addEventListener('click', () => { addIds(input.value); input.value = ''; input.focus(); });
  if (copyBtn) copyBtn.addEventListener('click', () => addIds((system.items || []).map((i) => i.cve_id).join(',')));
  for (const x of [never, date, rSys, rProj]) x.addEventListener('change', render);

  const projBox = h('div', null,
    h('label', { for: 'al-add' }, 'Enter CVE ID(s)'), input,
    h('p', { class: 'hint' }, 'Separator: commas or newline characters'),
    h('div', { class: 'row' }, addBtn, copyBtn),
    copyBtn ? h('p', { class: 'hint' }, "Add individual CVE IDs before clicking 'COPY FROM SYSTEM' to add system allowlist as well.") : null,
    ul,
    h('div', { class: 'row' },
      h('label', { for: 'al-expires' }, 'Expires at '), date,
      h('label', { for: 'al-never', class: 'inline' }, never, ' Never expires')),
    warn);
  const sysBox = h('div', null, h('p', { class: 'hint' }, 'The system allowlist applies:'), sysView);
  const element = h('fieldset', { class: 'allowlist' }, h('legend', null, 'CVE allowlist'),
    h('p', { class: 'hint' }, scope === 'project'
      ? 'Project allowlist allows vulnerabilities in this list to be ignored in this project when pushing and pulling images.'
      : 'System allowlist allows vulnerabilities in this list to be ignored when calculating the vulnerability of an image.'),
    scope === 'project' ? h('div', { class: 'row', role: 'radiogroup', 'aria-label': 'Which allowlist' },
      h('label', { for: 'al-system', class: 'inline' }, rSys, ' System allowlist'),
      h('label', { for: 'al-project', class: 'inline' }, rProj, ' Project allowlist')) : null,
    projBox, sysBox);

  function value() {
    let expiresAt = null;
    if (!never.checked && date.value) expiresAt = Math.floor(new Date(date.value + 'T23:59:59Z').getTime() / 1000);
    const error = !never.checked && !date.value ? 'Choose an expiry date or "Never expires".' : null;
    return { items: [...items], expiresAt, reuseSystem: scope === 'project' && rSys.checked, error };
  }
  render();
  return { element, value };
}
