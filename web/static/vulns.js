// vulns.js: the Vulnerabilities cell of an artifact (Harbor's states and the
// "N Total · M Fixable" summary with its hover card).
import { h, fmtTime } from './dom.js';

export const MIME = 'application/vnd.security.vulnerability.report; version=1.1';
export const SEVERITIES = ['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown', 'None'];

export function overviewOf(a) {
  const so = a && a.scan_overview;
  if (!so) return null;
  return so[MIME] || Object.values(so)[0] || null;
}

export function duration(o) {
  if (!o.start_time || !o.end_time) return '';
  const s = Math.max(0, Math.round((Date.parse(o.end_time) - Date.parse(o.start_time)) / 1000));
  return `${Math.floor(s / 60)} min ${s % 60} sec`;
}

/** The cell; `logHref` is the scan log's address (for Error). */
export function vulnCell(a, logHref) {
  const o = overviewOf(a);
  if (!o) return h('span', { class: 'state', 'data-state': 'none' }, a.type && a.type !== 'IMAGE' && !(a.references || []).length ? 'Unsupported' : 'Not Scanned');
  switch (o.scan_status) {
  case 'Pending': return h('span', { class: 'state', 'data-state': 'queued' }, 'Queued');
  case 'Running': return h('span', { class: 'state busy', 'data-state': 'scanning' }, 'Scanning');
  case 'Stopped': return h('span', { class: 'state', 'data-state': 'stopped' }, 'Scan stopped');
  case 'Error': return h('a', { href: logHref(o.report_id), target: '_blank', rel: 'noopener', class: 'state error', 'data-state': 'error' }, 'Error · View Log');
  case 'Success': break;
  default: return h('span', { class: 'state' }, o.scan_status || 'Not Scanned');
  }
  const sum = o.summary || {};
  const total = sum.total || 0;
  if (total === 0) return h('span', { class: 'state ok', 'data-state': 'clean' }, 'No vulnerability');
  const sev = o.severity || 'Unknown';
  const counts = sum.summary || {};
  const max = Math.max(1, ...Object.values(counts));
  const rows = SEVERITIES.filter((s) => s !== 'None').map((s) => {
    const n = counts[s] || 0;
    const bar = h('span', { class: `hbar sev-${s.toLowerCase()}` });
    bar.style.width = ((100 * n) / max).toFixed(1) + '%';
    return h('tr', null, h('th', { scope: 'row' }, s), h('td', { class: 'hbar-cell' }, bar), h('td', { class: 'num' }, String(n)));
  });
  const cardId = 'card-' + (a.digest || Math.random()).toString().replace(/[^a-z0-9]/gi, '').slice(-20);
  const card = h('div', { class: 'hovercard', role: 'tooltip', id: cardId, 'data-testid': 'vuln-card' },
    h('p', null, 'Vulnerability Severity: ', h('strong', null, sev)),
    h('table', { class: 'histogram' }, h('caption', { class: 'sr-only' }, 'Vulnerabilities by severity'), h('tbody', null, rows)),
    h('p', null, `Duration: ${duration(o)}`),
    h('p', null, `Scanned by: ${o.scanner ? `${o.scanner.name}@${o.scanner.version}` : ''}`),
    h('p', null, `Scan completed time: ${fmtTime(o.end_time)}`),
    (a.references || []).length ? h('p', null, `Scan completed percent: ${o.complete_percent ?? 100}%`) : null);
  return h('span', { class: 'vuln', tabindex: '0', 'aria-describedby': cardId, 'data-state': 'success' },
    h('span', { class: `sq sev-${sev.toLowerCase()}`, 'aria-hidden': 'true' }, sev[0]),
    h('span', { class: 'sr-only' }, `${sev}: `),
    h('span', { class: 'totals', 'data-testid': 'vuln-totals' }, `${total} Total · ${sum.fixable || 0} Fixable`),
    card);
}
