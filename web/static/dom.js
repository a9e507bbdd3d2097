// dom.js: building elements without ever parsing markup. Every string given
// here becomes a text node or an attribute value: names, tags, descriptions
// and links that come from the registry cannot turn into script.

/** h('tag', {attr: value, onclick: fn, class: 'x'}, child, [children], 'text') */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'href') el.setAttribute('href', safeHref(v));
      else if (k === 'value') el.value = v;
      else if (k === 'checked') el.checked = !!v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Only links within the portal, or to http(s) pages, are ever made. */
export function safeHref(v) {
  const s = String(v);
  if (s.startsWith('/') && !s.startsWith('//')) return s;
  if (/^https?:\/\//i.test(s)) return s;
  return '#';
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtTime(s) {
  if (!s || s.startsWith('0001-')) return '';
  const d = new Date(s);
  if (isNaN(d)) return '';
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function fmtSize(n) {
  if (n === undefined || n === null || n < 0) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0, v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)) + ' ' + u[i];
}

export function shortDigest(d) {
  return d ? d.replace(/^sha256:/, 'sha256:').slice(0, 15) : '';
}

/** A copy-to-clipboard button; `label` names what it copies for screen readers. */
export function copyButton(text, label) {
  const b = h('button', { type: 'button', class: 'icon copy', title: 'Copy', 'aria-label': label || 'Copy' }, 'Copy');
  b.addEventListener('click', async (e) => {
    e.stopPropagation();
    try {
      await navigator.clipboard.writeText(text);
      b.textContent = 'Copied';
    } catch {
      // clipboard refused (no permission, plain http): select the text instead
      window.prompt('Copy:', text);
    }
    setTimeout(() => { b.textContent = 'Copy'; }, 1500);
  });
  return b;
}

/** A message box; kind: 'error' | 'info' | 'warn' | 'ok'. */
export function alertBox(kind, text) {
  return h('div', { class: 'alert ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Runs a list's actions: clears msg, runs the action, reloads the list, and only then
 * tells how it went, so the message never announces a state the list does not show yet. */
export function actor(msg, reload) {
  return async (fn, ok) => {
    clear(msg);
    let note = null;
    try { await fn(); if (ok) note = alertBox('ok', ok); } catch (ex) { note = alertBox('error', ex.message); }
    try { await reload(); } finally { if (note) msg.append(note); }
  };
}

/** A modal dialog (the native <dialog>: focus trapped, Escape closes). */
export function dialog(title, body, actions) {
  const d = h('dialog', { class: 'modal', 'aria-labelledby': 'dlg-title' },
    h('h2', { id: 'dlg-title' }, title), body,
    h('div', { class: 'actions' }, actions));
  d.addEventListener('close', () => d.remove());
  document.body.appendChild(d);
  d.showModal();
  return d;
}

/** A labelled input: returns [wrapper, input]. */
export function field(label, attrs) {
  const id = 'f-' + Math.random().toString(36).slice(2);
  const input = h(attrs && attrs.tag === 'textarea' ? 'textarea' : 'input', { id, ...attrs, tag: undefined });
  return [h('div', { class: 'field' }, h('label', { for: id }, label), input), input];
}

/** A table with a caption (for screen readers) and header cells. */
export function table(caption, headers, rows) {
  return h('table', { class: 'grid' },
    h('caption', { class: 'sr-only' }, caption),
    h('thead', null, h('tr', null, headers.map((x) => (x instanceof Node ? h('th', { scope: 'col' }, x) : h('th', { scope: 'col' }, x))))),
    h('tbody', null, rows));
}

/** Pagination under a list: calls go(page). */
export function pager(page, pageSize, total, go) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  const first = total === 0 ? 0 : (page - 1) * pageSize + 1;
  const last = Math.min(total, page * pageSize);
  return h('nav', { class: 'pager', 'aria-label': 'Pagination' },
    h('span', null, `${first} - ${last} of ${total} items`),
    h('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1), 'aria-label': 'Previous page' }, '‹'),
    h('span', null, `${page} / ${pages}`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1), 'aria-label': 'Next page' }, '›'));
}
