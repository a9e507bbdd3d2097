// artifact.js: one artifact: its header, tags, the vulnerability list
// (filter, sort, each CVE opening onto its description and links, "Listed
// In CVE Allowlist") and the build history.
import { api, repoPath } from './api.js';
import { h, clear, fmtTime, fmtSize, copyButton, alertBox, table } from './dom.js';
import { link } from './app.js';
import { MIME, SEVERITIES, vulnCell, overviewOf } from './vulns.js';

const SEV_RANK = Object.fromEntries(SEVERITIES.map((s, i) => [s, SEVERITIES.length - i]));

export async function artifactPage(el, projectId, repo, digest) {
  const { data: p } = await api('GET', `/projects/${projectId}`);
  const base = repoPath(p.name, repo);
  const { data: a } = await api('GET', `${base}/artifacts/${encodeURIComponent(digest)}?with_tag=true&with_scan_overview=true&with_label=true`);
  const msg = h('div', { 'aria-live': 'polite' });
  const logHref = (rid) => `/api/v2.0${base}/artifacts/${a.digest}/scan/${rid}/log`;
  const ann = a.annotations || {};
  el.append(
    h('p', { class: 'crumbs' }, link('/harbor/projects', 'Projects'), ' / ',
      link(`/harbor/projects/${projectId}/repositories`, p.name), ' / ',
      link(`/harbor/projects/${projectId}/repositories/${encodeURIComponent(repo)}/artifacts-tab`, repo), ' / '),
    h('h1', { class: 'digest' }, h('code', null, a.digest), copyButton(a.digest, 'Copy digest')),
    h('dl', { class: 'summary' },
      h('dt', null, 'Media type'), h('dd', null, a.manifest_media_type || a.media_type || ''),
      h('dt', null, 'Size'), h('dd', null, fmtSize(a.size)),
      h('dt', null, 'Created'), h('dd', null, fmtTime((a.extra_attrs || {}).created)),
      h('dt', null, 'OS/ARCH'), h('dd', null, (a.extra_attrs || {}).os ? `${a.extra_attrs.os}/${a.extra_attrs.architecture}` : ''),
      h('dt', null, 'Vulnerabilities'), h('dd', null, vulnCell(a, logHref)),
      Object.keys(ann).length ? [h('dt', null, 'Annotations'), h('dd', null, h('ul', { class: 'plain' }, Object.entries(ann).map(([k, v]) => h('li', null, h('code', null, k), ': ', String(v)))))] : null),
    h('h2', null, 'Tags'),
    table('Tags', ['Name', 'Pull Time', 'Push Time'], (a.tags || []).map((t) => h('tr', null, h('td', null, t.name), h('td', null, fmtTime(t.pull_time)), h('td', null, fmtTime(t.push_time))))),
    msg);
  const vulnSection = h('section', { 'aria-labelledby': 'vh' });
  const histSection = h('section', { 'aria-labelledby': 'bh' });
  el.append(vulnSection, histSection);
  await Promise.all([vulnerabilities(vulnSection, p, base, a, msg), buildHistory(histSection, base, a)]);
}

async function effectiveAllowlist(p) {
  const m = p.metadata || {};
  const reuse = m.reuse_sys_cve_allowlist === undefined || m.reuse_sys_cve_allowlist === 'true';
  let list = p.cve_allowlist || { items: [] };
  if (reuse) {
    try { list = (await api('GET', '/system/CVEAllowlist', undefined, { quiet: true })).data; } catch { list = { items: [] }; }
  }
  const exp = list.expires_at;
  if (exp && exp > 0 && exp * 1000 < Date.now()) return new Set();
  return new Set((list.items || []).map((i) => i.cve_id));
}

async function vulnerabilities(el, p, base, a, msg) {
  el.append(h('h2', { id: 'vh' }, 'Vulnerabilities'));
  const o = overviewOf(a);
  const scanBtn = h('button', { type: 'button', class: 'primary' }, 'SCAN VULNERABILITY');
  scanBtn.addEventListener('click', async () => {
    clear(msg);
    try { await api('POST', `${base}/artifacts/${a.digest}/scan`); msg.append(alertBox('ok', 'Scan requested.')); } catch (ex) { msg.append(alertBox('error', ex.message)); }
  });
  if (!o || o.scan_status !== 'Success') {
    el.append(h('div', { class: 'toolbar' }, scanBtn), h('p', { class: 'empty' }, "We couldn't find any scanning results!"));
    return;
  }
  const [{ data: rep }, allow] = await Promise.all([
    api('GET', `${base}/artifacts/${a.digest}/additions/vulnerabilities`), effectiveAllowlist(p)]);
  const report = rep[MIME] || Object.values(rep)[0] || { vulnerabilities: [] };
  const vulns = report.vulnerabilities || [];
  const scanner = report.scanner ? `${report.scanner.name}@${report.scanner.version}` : '';
  const filter = h('input', { type: 'search', placeholder: 'Filter Vulnerabilities', 'aria-label': 'Filter Vulnerabilities' });
  const sevSel = h('select', { 'aria-label': 'Severity' }, h('option', { value: '' }, 'All severities'), SEVERITIES.map((s) => h('option', { value: s }, s)));
  const count = h('span', { class: 'count', 'aria-live': 'polite' });
  const body = h('tbody');
  let sortKey = 'severity', desc = true;
  const cols = [['id', 'Vulnerability'], ['severity', 'Severity'], ['cvss', 'CVSS3'], ['status', 'Status'], ['package', 'Package'], ['version', 'Current version'], ['fix_version', 'Fixed in version'], ['allow', 'Listed In CVE Allowlist']];
  const key = (v, k) => {
    switch (k) {
    case 'severity': return SEV_RANK[v.severity] || 0;
    case 'cvss': return (v.preferred_cvss && v.preferred_cvss.score_v3) ?? -1;
    case 'allow': return allow.has(v.id) ? 1 : 0;
    default: return String(v[k] || '');
    }
  };
  const heads = cols.map(([k, label]) => {
    const b = h('button', { type: 'button', class: 'sort' }, label);
    const th = h('th', { scope: 'col', 'aria-sort': k === sortKey ? (desc ? 'descending' : 'ascending') : 'none' }, b);
    b.addEventListener('click', () => {
      if (sortKey === k) desc = !desc; else { sortKey = k; desc = k === 'severity' || k === 'cvss'; }
      for (const x of heads) x.setAttribute('aria-sort', 'none');
      th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
      render();
    });
    return th;
  });
  function render() {
    const f = filter.value.trim().toLowerCase();
    const sv = sevSel.value;
    const shown = vulns.filter((v) => (!sv || v.severity === sv) &&
      (!f || [v.id, v.package, v.version, v.fix_version, v.description].some((x) => x && String(x).toLowerCase().includes(f))));
    shown.sort((x, y) => {
      const a1 = key(x, sortKey), b1 = key(y, sortKey);
      const c = a1 < b1 ? -1 : a1 > b1 ? 1 : String(x.id).localeCompare(String(y.id));
      return desc ? -c : c;
    });
    clear(body);
    count.textContent = `${shown.length} of ${vulns.length}`;
    shown.forEach((v, i) => {
      const detailId = `cve-detail-${i}`;
      const toggle = h('button', { type: 'button', class: 'icon', 'aria-expanded': 'false', 'aria-controls': detailId, 'aria-label': `Details of ${v.id}` }, '▸');
      const tr = h('tr', { 'data-cve': v.id },
        h('td', null, toggle, ' ', v.id),
        h('td', null, h('span', { class: `pill sev-${String(v.severity).toLowerCase()}` }, v.severity)),
        h('td', { class: 'num' }, v.preferred_cvss && v.preferred_cvss.score_v3 != null ? String(v.preferred_cvss.score_v3) : ''),
        h('td', null, v.status || ''),
        h('td', null, v.package), h('td', null, v.version), h('td', null, v.fix_version || ''),
        h('td', null, allow.has(v.id) ? 'Yes' : 'No'));
      const links = (v.links || []).filter((u) => /^https?:\/\//i.test(u));
      const detail = h('tr', { id: detailId, class: 'detail', hidden: true },
        h('td', { colspan: cols.length },
          h('h3', null, 'Description'),
          h('p', { class: 'description' }, v.description || v.title || ''),
          v.preferred_cvss && v.preferred_cvss.vector_v3 ? h('p', null, 'CVSS3 vector: ', h('code', null, v.preferred_cvss.vector_v3)) : null,
          links.length ? h('ul', { class: 'links' }, links.map((u) => h('li', null, h('a', { href: u, target: '_blank', rel: 'noopener noreferrer' }, u)))) : null));
      toggle.addEventListener('click', () => {
        const open = toggle.getAttribute('aria-expanded') === 'true';
        toggle.setAttribute('aria-expanded', String(!open));
        toggle.textContent = open ? '▸' : '▾';
        detail.hidden = open;
      });
      body.append(tr, detail);
    });
  }
  filter.addEventListener('input', render);
  sevSel.addEventListener('change', render);
  el.append(
    h('div', { class: 'toolbar' }, scanBtn, h('span', { class: 'reported' }, `Reported by ${scanner}`), h('span', { class: 'spacer' }), sevSel, filter, count),
    h('table', { class: 'grid vulns' }, h('caption', { class: 'sr-only' }, 'Vulnerabilities'), h('thead', null, h('tr', null, heads)), body),
    vulns.length ? '' : h('p', { class: 'empty' }, 'No vulnerability'));
  render();
}

async function buildHistory(el, base, a) {
  el.append(h('h2', { id: 'bh' }, 'Build History'));
  if (!a.addition_links || !a.addition_links.build_history) { el.append(h('p', { class: 'empty' }, 'No build history.')); return; }
  try {
    const { data } = await api('GET', `${base}/artifacts/${a.digest}/additions/build_history`);
    el.append(table('Build History', ['Created', 'Created by'], (data || []).map((x) => h('tr', null, h('td', null, fmtTime(x.created)), h('td', null, h('code', null, x.created_by || ''))))));
  } catch (ex) {
    el.append(alertBox('error', ex.message));
  }
}
