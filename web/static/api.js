// api.js: the REST API at /api/v2.0 with the session cookie. The server
// sends the session's CSRF token in X-Harbor-CSRF-Token on every answer; it
// goes back on every request that changes something.

let csrf = null;
let onUnauthorized = null;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }
export function forgetSession() { csrf = null; }

/** Repository names travel URL-encoded twice in paths (Harbor's rule). */
export function repoPath(project, repo) {
  return `/projects/${encodeURIComponent(project)}/repositories/${encodeURIComponent(encodeURIComponent(repo))}`;
}

export async function api(method, path, body, opts = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-Harbor-CSRF-Token'] = csrf;
  const r = await fetch('/api/v2.0' + path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const token = r.headers.get('X-Harbor-CSRF-Token');
  if (token) csrf = token;
  let data = null;
  const ct = r.headers.get('Content-Type') || '';
  if (ct.includes('json')) {
    try { data = await r.json(); } catch { data = null; }
  }
  if (!r.ok) {
    const msg = data && data.errors && data.errors[0] ? data.errors[0].message : `${r.status} ${r.statusText}`;
    if (r.status === 401 && onUnauthorized && !opts.quiet) onUnauthorized();
    throw new ApiError(r.status, msg);
  }
  const total = r.headers.get('X-Total-Count');
  return { data, total: total === null ? null : Number(total) };
}

export async function signIn(principal, password) {
  const r = await fetch('/c/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ principal, password }).toString(),
  });
  if (!r.ok) {
    let msg = 'Invalid user name or password.';
    try { const d = await r.json(); msg = d.errors[0].message; } catch { /* keep */ }
    throw new ApiError(r.status, msg);
  }
  csrf = r.headers.get('X-Harbor-CSRF-Token');
}

export async function signOut() {
  await fetch('/c/log_out', { credentials: 'same-origin' });
  csrf = null;
}
