// artifacts.js: a repository's artifacts (Harbor's artifacts-tab): digest,
// tags, OS/ARCH, size, vulnerabilities, push and pull times; scan, stop,
// copy digest and delete; an index opens onto its children. One API call
// per page (with_tag, with_scan_overview), none per row.
import { api, repoPath } from './api.js';
import { h, clear, fmtTime, fmtSize, shortDigest, copyButton, alertBox, actor, dialog, table, pager } from './dom.js';
import { link } from './app.js';
import { vulnCell, overviewOf } from './vulns.js';

const PAGE_SIZE = 15;

/** Harbor's Signed column: a cosign or notation signature among the artifact's accessories. */
function signedCell(a) {
  const sigs = (a.accessories || []).filter((x) => String(x.type).startsWith('signature.'));
  const kinds = [...new Set(sigs.map((x) => x.type.slice('signature.'.length)))].join(', ');
  return h('td', { 'data-signed': String(sigs.length > 0) },
    sigs.length ? h('span', { class: 'state ok' }, `Yes (${kinds})`) : h('span', { class: 'state' }, 'No'));
}

export async function artifactsPage(el, projectId, repo) {
  const { data: p } = await api('GET', `/projects/${projectId}`);
  const base = repoPath(p.name, repo);
  const full = `${p.name}/${repo}`;
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  let page = 1, filter = '', timer = null;
  const search = h('input', { type: 'search', placeholder: 'Filter by tag', 'aria-label': 'Filter artifacts by tag' });
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { filter = search.value.trim(); page = 1; load(); }, 250); });
  el.append(
    h('p', { class: 'crumbs' }, link('/harbor/projects', 'Projects'), ' / ',
      link(`/harbor/projects/${projectId}/repositories`, p.name), ' / '),
    h('h1', null, full),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => load() }, 'Refresh'), h('span', { class: 'spacer' }), search),
    msg, list);

  const logHref = (digest) => (rid) => `/api/v2.0${base}/artifacts/${digest}/scan/${rid}/log`;
  const detail = (digest) => `/harbor/projects/${projectId}/repositories/${encodeURIComponent(repo)}/artifacts-tab/artifacts/${digest}`;

  const act = actor(msg, load);

  function actions(a) {
    const o = overviewOf(a);
    const busy = o && (o.scan_status === 'Pending' || o.scan_status === 'Running');
    return h('td', { class: 'actions' },
      busy ? h('button', { type: 'button', class: 'link', 'aria-label': `Stop scan of ${shortDigest(a.digest)}`, onclick: () => act(() => api('POST', `${base}/artifacts/${a.digest}/scan/stop`), 'Scan stopped.') }, 'Stop scan')
        : h('button', { type: 'button', class: 'link', 'aria-label': `Scan ${shortDigest(a.digest)}`, onclick: () => act(() => api('POST', `${base}/artifacts/${a.digest}/scan`), 'Scan requested.') }, 'Scan'),
      copyButton(a.digest, `Copy digest ${a.digest}`),
      h('button', { type: 'button', class: 'link danger', 'aria-label': `Delete ${shortDigest(a.digest)}`, onclick: () => confirmDelete(a) }, 'Delete'));
  }

  function confirmDelete(a) {
    const yes = h('button', { type: 'button', class: 'danger' }, 'DELETE');
    const no = h('button', { type: 'button' }, 'CANCEL');
    const d = dialog('Confirm deletion', h('p', null, `Do you want to delete artifact ${a.digest}?`), [no, yes]);
    no.addEventListener('click', () => d.close());
    yes.addEventListener('click', () => { d.close(); act(() => api('DELETE', `${base}/artifacts/${a.digest}`), 'Artifact deleted.'); });
    no.focus();
  }

  function row(a, child) {
    const ea = a.extra_attrs || {};
    const refs = a.references || [];
    const tr = h('tr', { class: child ? 'child' : null, 'data-digest': a.digest });
    const expand = refs.length && !child ? h('button', { type: 'button', class: 'icon', 'aria-expanded': 'false', 'aria-label': `Show the ${refs.length} images of ${shortDigest(a.digest)}` }, '▸') : null;
    const osArch = ea.os ? `${ea.os}/${ea.architecture || ''}` : refs.map((r) => r.platform ? `${r.platform.os}/${r.platform.architecture}` : '').filter(Boolean).join(', ');
    tr.append(
      h('td', null, expand, link(detail(a.digest), h('code', null, shortDigest(a.digest))), copyButton(a.digest, `Copy digest ${a.digest}`)),
      h('td', null, (a.tags || []).map((t) => h('span', { class: 'tag' }, t.name))),
      h('td', null, (a.labels || []).map((l) => h('span', { class: 'label', title: l.description || '' }, l.name))),
      h('td', null, osArch),
      h('td', { class: 'num' }, fmtSize(a.size)),
      signedCell(a),
      h('td', null, vulnCell(a, logHref(a.digest))),
      h('td', null, fmtTime(a.push_time)),
      h('td', null, fmtTime(a.pull_time)),
      actions(a));
    if (expand) {
      let kids = null;
      expand.addEventListener('click', async () => {
        const open = expand.getAttribute('aria-expanded') === 'true';
        expand.setAttribute('aria-expanded', String(!open));
        expand.textContent = open ? '▸' : '▾';
        if (open) { (kids || []).forEach((k) => k.remove()); kids = null; return; }
        // the children of this one index, asked for when it is opened
        const children = await Promise.all(refs.map((r) => api('GET', `${base}/artifacts/${r.child_digest}?with_tag=true&with_scan_overview=true&with_accessory=true`).then((x) => x.data, () => null)));
        kids = children.filter(Boolean).map((c) => row(c, true));
        tr.after(...kids);
      });
    }
    return tr;
  }

  async function load() {
    const q = new URLSearchParams({ page, page_size: PAGE_SIZE, with_tag: 'true', with_scan_overview: 'true', with_label: 'true', with_accessory: 'true' });
    if (filter) q.set('q', `tags=~${filter}`);
    let res;
    try { res = await api('GET', `${base}/artifacts?${q}`); } catch (ex) { clear(list).append(alertBox('error', ex.message)); return; }
    const rows = res.data.map((a) => row(a, false));
    clear(list).append(
      table('Artifacts', ['Artifacts', 'Tags', 'Labels', 'OS/ARCH', 'Size', 'Signed', 'Vulnerabilities', 'Push Time', 'Pull Time', 'Actions'], rows),
      rows.length ? '' : h('p', { class: 'empty' }, 'We couldn\'t find any artifacts!'),
      pager(page, PAGE_SIZE, res.total ?? rows.length, (n) => { page = n; load(); }));
    // while a scan runs, the page follows it
    const running = res.data.some((a) => { const o = overviewOf(a); return o && (o.scan_status === 'Pending' || o.scan_status === 'Running'); });
    if (running && el.isConnected) setTimeout(() => { if (el.isConnected) load(); }, 2000);
  }
  await load();
}
