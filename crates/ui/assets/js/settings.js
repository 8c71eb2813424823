// Tenant and credentials, kept in localStorage and sent with every API call
// (see api.js). Kiln reads the tenant from `X-Scope-OrgID` when
// multitenancy is on; `Authorization` is passed through for servers (or
// proxies in front of Kiln) that require it.

import { h } from './dom.js';

const KEY = 'kiln.settings';

export const EMPTY_SETTINGS = Object.freeze({ tenant: '', authType: 'none', token: '', username: '', password: '' });

/** The saved settings (defaults when none or unreadable). */
export function loadSettings() {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    return { ...EMPTY_SETTINGS, ...(raw ? JSON.parse(raw) : {}) };
  } catch {
    return { ...EMPTY_SETTINGS };
  }
}

/** Saves the settings. */
export function saveSettings(s) {
  globalThis.localStorage?.setItem(KEY, JSON.stringify({ ...EMPTY_SETTINGS, ...s }));
}

/** The headers the settings add to a request. */
export function authHeaders(s) {
  const out = {};
  if (s.tenant && s.tenant.trim()) out['X-Scope-OrgID'] = s.tenant.trim();
  if (s.authType === 'bearer' && s.token) out.Authorization = `Bearer ${s.token}`;
  if (s.authType === 'basic' && (s.username || s.password)) {
    const bytes = new TextEncoder().encode(`${s.username}:${s.password}`);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    out.Authorization = `Basic ${btoa(bin)}`;
  }
  return out;
}

/** Opens the settings dialog; `onSave` runs after the user saves. */
export function openSettingsDialog(onSave) {
  const s = loadSettings();
  const tenant = h('input', { name: 'tenant', value: s.tenant, placeholder: 'anonymous', 'data-testid': 'settings-tenant', autocomplete: 'off' });
  const authType = h('select', { name: 'authType', 'data-testid': 'settings-auth' },
    h('option', { value: 'none' }, 'None'),
    h('option', { value: 'bearer' }, 'Bearer token'),
    h('option', { value: 'basic' }, 'Basic (user and password)'));
  authType.value = s.authType;
  const token = h('input', { name: 'token', type: 'password', value: s.token, autocomplete: 'off', 'data-testid': 'settings-token' });
  const username = h('input', { name: 'username', value: s.username, autocomplete: 'off' });
  const password = h('input', { name: 'password', type: 'password', value: s.password, autocomplete: 'off' });
  const tokenRow = h('label', {}, 'Token', token);
  const basicRows = h('div', { style: { display: 'flex', flexDirection: 'column', gap: '10px' } },
    h('label', {}, 'User', username), h('label', {}, 'Password', password));
  const sync = () => {
    tokenRow.hidden = authType.value !== 'bearer';
    basicRows.hidden = authType.value !== 'basic';
  };
  authType.addEventListener('change', sync);
  sync();
  const dialog = h('dialog', { 'data-testid': 'settings-dialog', 'aria-label': 'Settings' },
    h('form', { method: 'dialog' },
      h('h3', { style: { margin: 0 } }, 'Settings'),
      h('label', {}, 'Tenant (X-Scope-OrgID)', tenant,
        h('span', { class: 'muted' }, 'Leave empty when multitenancy is off. Several tenants: a|b.')),
      h('label', {}, 'Authorization', authType),
      tokenRow,
      basicRows,
      h('p', { class: 'muted', style: { margin: 0, fontSize: '12px' } }, 'Stored in this browser only (localStorage).'),
      h('div', { class: 'buttons' },
        h('button', { value: 'cancel', type: 'submit' }, 'Cancel'),
        h('button', { value: 'save', type: 'submit', class: 'primary', 'data-testid': 'settings-save' }, 'Save'))));
  dialog.addEventListener('close', () => {
    if (dialog.returnValue === 'save') {
      saveSettings({ tenant: tenant.value, authType: authType.value, token: token.value, username: username.value, password: password.value });
      onSave?.();
    }
    dialog.remove();
  });
  document.body.append(dialog);
  dialog.showModal();
}
