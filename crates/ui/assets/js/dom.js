// Small DOM helpers shared by the views.

/**
 * Creates an element: `h('button', {class: 'x', onclick: fn, 'data-testid': 't'}, 'text', child)`.
 * Attributes starting with `on` become event listeners; `false`, `null`
 * and `undefined` attributes are left out.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Removes every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let t = null;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

/** Offers `data` (Blob, string or bytes) as a download named `filename`. */
export function download(filename, data, type = 'application/octet-stream') {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

let statusTimer = null;
/** Shows a short message at the bottom of the page (errors stay longer). */
export function setStatus(text, kind = 'info') {
  const el = document.getElementById('status');
  if (!el) return;
  el.textContent = text || '';
  el.className = kind === 'error' ? 'error' : '';
  clearTimeout(statusTimer);
  if (text) statusTimer = setTimeout(() => { el.textContent = ''; }, kind === 'error' ? 10_000 : 3_000);
}

/** The current theme: 'light' or 'dark'. */
export function currentTheme() {
  return document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light';
}

/** Places the shared tooltip element near (x, y), kept inside the window. */
export function showTooltip(content, x, y) {
  const tip = document.getElementById('tooltip');
  if (!tip) return;
  clear(tip).append(content);
  tip.hidden = false;
  const r = tip.getBoundingClientRect();
  let left = x + 14;
  let top = y + 16;
  if (left + r.width > window.innerWidth - 8) left = Math.max(8, x - r.width - 14);
  if (top + r.height > window.innerHeight - 8) top = Math.max(8, y - r.height - 12);
  tip.style.left = `${left}px`;
  tip.style.top = `${top}px`;
}

/** Hides the shared tooltip. */
export function hideTooltip() {
  const tip = document.getElementById('tooltip');
  if (tip) tip.hidden = true;
}

/** A file name part made safe: letters, digits, `._-`. */
export function safeFileName(s) {
  return String(s || 'profile').replace(/[^\w.-]+/g, '_').slice(0, 80) || 'profile';
}
