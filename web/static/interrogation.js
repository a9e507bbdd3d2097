// interrogation.js: Administration › Interrogation Services (system
// administrators), at Harbor's addresses: the Vulnerability tab (the
// vulnerability database's status and "UPDATE NOW", scan-all with its
// schedule, "SCAN NOW" and progress) and the Security Hub (totals by
// severity, the most dangerous CVEs and artifacts, the search by CVE).
import { api, ApiError } from './api.js';
import { h, clear, fmtTime, alertBox, actor, field, table, pager, shortDigest } from './dom.js';
import { link, navigate } from './app.js';

const TABS = [['vulnerability', 'Vulnerability'], ['security-hub', 'Security Hub']];
const POLL_MS = 1000;
const HUB_SEVERITIES = [['critical_cnt', 'Critical'], ['high_cnt', 'High'], ['medium_cnt', 'Medium'],
  ['low_cnt', 'Low'], ['unknown_cnt', 'Unknown'], ['none_cnt', 'None']];

export async function interrogationPage(el, tab) {
  if (!TABS.some(([k]) => k === tab)) tab = 'vulnerability';
  const tabs = h('div', { role: 'tablist', class: 'tabs', 'aria-label': 'Interrogation Services' },
    TABS.map(([k, label]) => h('a', {
      role: 'tab', href: `/harbor/interrogation-services/${k}`, 'data-nav': true,
      'aria-selected': k === tab ? 'true' : 'false', id: `tab-${k}`, tabindex: k === tab ? '0' : '-1',
    }, label)));
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
  el.append(h('h1', null, 'Interrogation Services'), tabs, panel);
  await (tab === 'security-hub' ? securityHub(panel) : vulnerability(panel));
}

/** Calls fn every POLL_MS while `el` is on the page and fn answers true. */
function poll(el, fn) {
  const tick = async () => {
    if (!el.isConnected) return;
    let again = false;
    try { again = await fn(); } catch { again = true; }
    if (again && el.isConnected) setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}

function dl(pairs) {
  return h('dl', { class: 'summary' }, pairs.filter(Boolean).map(([k, v, id]) => [h('dt', null, k), h('dd', { 'data-testid': id }, v)]));
}

function every(seconds) {
  if (!seconds) return 'Off (only when asked: scan.db_update_interval is 0)';
  if (seconds % 86400 === 0) return `Every ${seconds / 86400} day(s)`;
  if (seconds % 3600 === 0) return `Every ${seconds / 3600} hour(s)`;
  return `Every ${seconds} seconds`;
}

// ---- Vulnerability: the database and scan-all ----

async function vulnerability(el) {
  const db = h('section', { 'aria-labelledby': 'vdb-title' });
  const all = h('section', { 'aria-labelledby': 'scanall-title' });
  el.append(db, all);
  await Promise.all([vulnDatabase(db), scanAll(all)]);
}

async function vulnDatabase(el) {
  const msg = h('div', { 'aria-live': 'polite' });
  const body = h('div');
  const btn = h('button', { type: 'button', class: 'primary', onclick: updateNow }, 'UPDATE NOW');
  el.append(h('h2', { id: 'vdb-title' }, 'Vulnerability database'),
    h('div', { class: 'toolbar' }, btn), msg, body);
  let watching = false;
  function busy(u) { return u.status === 'Pending' || u.status === 'Running'; }
  function lastUpdate(u) {
    if (busy(u)) return h('span', { class: 'state busy', 'data-state': u.status.toLowerCase() }, u.status === 'Pending' ? 'Queued' : 'Updating');
    if (!u.status) return h('span', { class: 'state' }, 'None since the server started');
    return h('span', null,
      h('span', { class: 'state ' + (u.status === 'Success' ? 'ok' : 'error'), 'data-state': u.status.toLowerCase() }, u.status),
      ` · ${u.trigger === 'Manual' ? 'Manual' : 'Scheduled'} · ${fmtTime(u.end_time)}`,
      u.message ? h('span', { class: 'hint' }, ' — ', u.message) : null);
  }
  async function load() {
    const { data: s } = await api('GET', '/vulndb/status');
    const u = s.update;
    btn.disabled = busy(u);
    const rows = s.sources.map((x) => h('tr', null, h('td', null, x.name), h('td', { class: 'num' }, String(x.files)),
      h('td', { class: 'num' }, String(x.records)), h('td', null, fmtTime(x.imported_at))));
    clear(body).append(h('div', null,
      s.present ? null : alertBox('warn', 'There is no vulnerability database yet: images cannot be scanned until an update or `wharf vulndb import` loads one.'),
      dl([
        ['Database updated on', s.updated_at ? fmtTime(s.updated_at) : 'Never', 'vdb-updated'],
        ['Advisories', String(s.advisories), 'vdb-advisories'],
        ['NVD records', String(s.nvd_records), 'vdb-nvd'],
        ['Automatic update', every(u.interval_seconds), 'vdb-interval'],
        u.next_scheduled_time ? ['Next update', fmtTime(u.next_scheduled_time), 'vdb-next'] : null,
        ['Last update', lastUpdate(u), 'vdb-last'],
      ]),
      h('h3', null, 'Sources'),
      rows.length ? table('Vulnerability database sources', ['Source', 'Files', 'Records', 'Imported'], rows)
        : h('p', { class: 'empty' }, 'No source imported yet.'),
      h('details', { class: 'feeds' },
        h('summary', null, `Feeds an update reads (${s.feeds.length}, ${s.feeds_from === 'built-in' ? 'the built-in list' : 'from ' + s.feeds_from})`),
        h('ul', { class: 'links' }, s.feeds.map((f) => h('li', null, h('code', null, f)))))));
    return u;
  }
  function watch() {
    if (watching) return;
    watching = true;
    poll(el, async () => {
      const u = await load();
      if (busy(u)) return true;
      watching = false;
      clear(msg).append(u.status === 'Success'
        ? alertBox('ok', `The vulnerability database was updated: ${u.message}.`)
        : alertBox('error', `The update failed: ${u.message}`));
      return false;
    });
  }
  async function updateNow() {
    clear(msg);
    btn.disabled = true;
    try {
      await api('POST', '/vulndb/update');
      msg.append(alertBox('info', 'The update is running in the background.'));
    } catch (ex) {
      msg.append(alertBox('error', ex.message));
      if (!(ex instanceof ApiError && ex.status === 409)) { btn.disabled = false; return; }
    }
    await load();
    watch();
  }
  const u = await load();
  if (busy(u)) watch();
}

const SCHEDULES = ['None', 'Hourly', 'Daily', 'Weekly', 'Custom'];

async function scanAll(el) {
  const msg = h('div', { 'aria-live': 'polite' });
  const progress = h('div', { 'data-testid': 'scanall-progress' });
  const scanNow = h('button', { type: 'button', class: 'primary', onclick: start }, 'SCAN NOW');
  const stop = h('button', { type: 'button', onclick: stopRun }, 'STOP SCAN');
  const type = h('select', { id: 'scanall-type' }, SCHEDULES.map((t) => h('option', { value: t }, t)));
  const [cronField, cron] = field('Cron (seconds minutes hours day month weekday, UTC)', { placeholder: '0 0 2 * * *', autocomplete: 'off', spellcheck: 'false' });
  const next = h('p', { class: 'hint', 'data-testid': 'scanall-next' });
  const save = h('button', { type: 'submit' }, 'SAVE');
  const form = h('form', { class: 'config', 'aria-label': 'Scan all schedule' },
    h('fieldset', null, h('legend', null, 'Schedule to scan all'),
      h('div', { class: 'row' }, h('label', { for: 'scanall-type' }, 'Schedule'), type),
      cronField, next, h('div', { class: 'actions' }, save)));
  el.append(h('h2', { id: 'scanall-title' }, 'Scan all'),
    h('p', { class: 'hint' }, 'Scans every image of every project with the built-in scanner.'),
    h('div', { class: 'toolbar' }, scanNow, stop), msg, progress, form);
  const syncCron = () => { cronField.hidden = type.value !== 'Custom'; };
  type.addEventListener('change', syncCron);
  let watching = false;

  async function loadSchedule() {
    const { data } = await api('GET', '/system/scanAll/schedule');
    const s = data && data.schedule;
    type.value = s && SCHEDULES.includes(s.type) ? s.type : (s ? 'Custom' : 'None');
    cron.value = s ? s.cron || '' : '';
    next.textContent = s && s.next_scheduled_time ? `Next scheduled time: ${fmtTime(s.next_scheduled_time)}` : 'No schedule: scan all runs only when started here.';
    syncCron();
  }
  async function loadRun() {
    const { data: m } = await api('GET', '/scans/all/metrics');
    const ongoing = !!(m && m.ongoing);
    scanNow.disabled = ongoing;
    stop.disabled = !ongoing;
    if (!m || m.total === undefined) {
      clear(progress).append(h('p', { class: 'empty' }, 'Scan all has not run yet.'));
      return m;
    }
    const counts = m.metrics || {};
    const pct = m.total ? Math.round((100 * m.completed) / m.total) : 100;
    const bar = h('progress', { max: String(m.total || 1), value: String(m.total ? m.completed : 1), 'aria-labelledby': 'scanall-state' });
    clear(progress).append(
      h('p', { id: 'scanall-state', 'data-testid': 'scanall-state', 'data-ongoing': String(ongoing) },
        `${ongoing ? 'Running' : 'Last run'} (${m.trigger === 'Manual' ? 'Manual' : 'Scheduled'}): ${m.completed} of ${m.total} completed (${pct}%)`),
      bar,
      h('ul', { class: 'counts', 'aria-label': 'Scans by status' },
        ['Pending', 'Running', 'Success', 'Error', 'Stopped'].map((k) => h('li', { 'data-status': k }, `${k}: ${counts[k] || 0}`))));
    return m;
  }
  function watch() {
    if (watching) return;
    watching = true;
    poll(el, async () => {
      const m = await loadRun();
      if (m && m.ongoing) return true;
      watching = false;
      return false;
    });
  }
  const act = actor(msg, async () => {
    const m = await loadRun();
    if (m && m.ongoing) watch();
  });
  function start() {
    scanNow.disabled = true;
    return act(() => api('POST', '/system/scanAll/schedule', { schedule: { type: 'Manual' } }), 'Scan all started.');
  }
  function stopRun() {
    stop.disabled = true;
    return act(() => api('POST', '/system/scanAll/stop'), 'Scan all stopped.');
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(msg);
    const body = { schedule: { type: type.value } };
    if (type.value === 'Custom') body.schedule.cron = cron.value.trim();
    try {
      await api('PUT', '/system/scanAll/schedule', body);
      await loadSchedule();
      msg.append(alertBox('ok', 'The scan all schedule has been saved.'));
    } catch (ex) { msg.append(alertBox('error', ex.message)); }
  });
  await Promise.all([loadSchedule(), loadRun().then((m) => { if (m && m.ongoing) watch(); })]);
}

// ---- Security Hub ----

function artifactHref(projectId, repositoryName, digest) {
  const short = repositoryName.slice(repositoryName.indexOf('/') + 1);
  return `/harbor/projects/${projectId}/repositories/${encodeURIComponent(short)}/artifacts-tab/artifacts/${digest}`;
}

function sevPill(s) {
  const name = String(s || 'Unknown');
  return h('span', { class: `pill sev-${name.toLowerCase()}` }, name);
}

async function securityHub(el) {
  const { data: s } = await api('GET', '/security/summary?with_dangerous_cve=true&with_dangerous_artifact=true');
  const notScanned = Math.max(0, s.total_artifact - s.scanned_cnt);
  const totals = h('ul', { class: 'sevtotals', 'aria-label': 'Vulnerabilities by severity', 'data-testid': 'hub-totals' },
    HUB_SEVERITIES.map(([k, label]) => h('li', { class: `sev-${label.toLowerCase()}`, 'data-severity': label },
      h('span', { class: 'sq', 'aria-hidden': 'true' }, label[0]), h('span', { class: 'n' }, String(s[k] || 0)), ` ${label}`)));
  el.append(h('h2', null, 'Vulnerability summary'),
    h('p', { 'data-testid': 'hub-artifacts' }, `${s.total_artifact} artifact(s): ${s.scanned_cnt} scanned, ${notScanned} not scanned`),
    h('p', { 'data-testid': 'hub-vulns' }, `${s.total_vuls} vulnerabilities in total, ${s.fixable_cnt} fixable`),
    totals);
  const cves = (s.dangerous_cves || []).map((v) => h('tr', null,
    h('td', { class: 'cve' }, h('button', { type: 'button', class: 'link', 'aria-label': `Search ${v.cve_id}`, onclick: () => { search.cve.value = v.cve_id; search.run(); } }, v.cve_id)),
    h('td', null, sevPill(v.severity)), h('td', { class: 'num' }, v.cvss_score_v3 ? Number(v.cvss_score_v3).toFixed(1) : ''),
    h('td', null, v.package), h('td', null, v.version)));
  const arts = (s.dangerous_artifacts || []).map((a) => h('tr', null,
    h('td', null, a.repository_name),
    h('td', null, link(artifactHref(a.project_id, a.repository_name, a.digest), h('code', null, shortDigest(a.digest)))),
    h('td', { class: 'num' }, String(a.critical_cnt)), h('td', { class: 'num' }, String(a.high_cnt)), h('td', { class: 'num' }, String(a.medium_cnt))));
  el.append(h('div', { class: 'hub-tops' },
    h('section', { 'aria-labelledby': 'top-cves' }, h('h2', { id: 'top-cves' }, 'Top 5 Most Dangerous CVEs'),
      cves.length ? table('Top 5 Most Dangerous CVEs', ['CVE ID', 'Severity', 'CVSS3', 'Package', 'Current version'], cves)
        : h('p', { class: 'empty' }, 'No vulnerability found.')),
    h('section', { 'aria-labelledby': 'top-arts' }, h('h2', { id: 'top-arts' }, 'Top 5 Most Dangerous Artifacts'),
      arts.length ? table('Top 5 Most Dangerous Artifacts', ['Repository', 'Digest', 'Critical', 'High', 'Medium'], arts)
        : h('p', { class: 'empty' }, 'No vulnerable artifact.'))));
  const search = vulnSearch();
  el.append(search.element);
  await search.run();
}

function vulnSearch() {
  let page = 1;
  const size = 15;
  const [fc, cve] = field('CVE ID', { type: 'search', placeholder: 'CVE-2023-45853', autocomplete: 'off', spellcheck: 'false' });
  const [fp, pkg] = field('Package', { type: 'search', autocomplete: 'off' });
  const [fr, repo] = field('Repository', { type: 'search', placeholder: 'project/repository', autocomplete: 'off' });
  const sev = h('select', { id: 'hub-sev' }, h('option', { value: '' }, 'Any'),
    ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown'].map((s) => h('option', { value: s }, s)));
  const go = h('button', { type: 'submit', class: 'primary' }, 'SEARCH');
  const form = h('form', { class: 'search row', role: 'search', 'aria-label': 'Search vulnerabilities' },
    fc, fp, fr, h('div', { class: 'field' }, h('label', { for: 'hub-sev' }, 'Severity'), sev), go);
  const msg = h('div', { 'aria-live': 'polite' });
  const list = h('div');
  form.addEventListener('submit', (e) => { e.preventDefault(); page = 1; run(); });
  async function run() {
    clear(msg);
    const terms = [];
    if (cve.value.trim()) terms.push(`cve_id=${cve.value.trim()}`);
    if (pkg.value.trim()) terms.push(`package=${pkg.value.trim()}`);
    if (repo.value.trim()) terms.push(`repository_name=${repo.value.trim()}`);
    if (sev.value) terms.push(`severity=${sev.value}`);
    const q = terms.length ? `&q=${encodeURIComponent(terms.join(','))}` : '';
    let res;
    try {
      res = await api('GET', `/security/vul?page=${page}&page_size=${size}&with_tag=true${q}`);
    } catch (ex) {
      clear(list);
      msg.append(alertBox('error', ex.message));
      return;
    }
    const rows = res.data.map((v) => h('tr', null,
      h('td', { class: 'cve' }, h('a', { href: (v.links || [])[0] || `https://nvd.nist.gov/vuln/detail/${v.cve_id}`, target: '_blank', rel: 'noopener noreferrer' }, v.cve_id)),
      h('td', null, v.repository_name),
      h('td', null, link(artifactHref(v.project_id, v.repository_name, v.digest), h('code', null, shortDigest(v.digest)))),
      h('td', null, (v.tags || []).map((t) => h('span', { class: 'tag' }, t))),
      h('td', { class: 'num' }, v.cvss_v3_score ? Number(v.cvss_v3_score).toFixed(1) : ''),
      h('td', null, sevPill(v.severity)), h('td', null, v.package), h('td', null, v.version),
      h('td', null, v.fixed_version || '')));
    clear(list).append(rows.length
      ? table('Vulnerabilities', ['CVE ID', 'Repository', 'Digest', 'Tags', 'CVSS3', 'Severity', 'Package', 'Current version', 'Fixed in version'], rows)
      : h('p', { class: 'empty', 'data-testid': 'hub-empty' }, terms.length ? 'No vulnerability matches the search.' : 'No vulnerability found.'),
    pager(page, size, res.total ?? rows.length, (n) => { page = n; run(); }));
  }
  return {
    element: h('section', { 'aria-labelledby': 'hub-search' }, h('h2', { id: 'hub-search' }, 'Vulnerabilities'), form, msg, list),
    cve, run,
  };
}
