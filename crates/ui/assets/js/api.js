// Every request of the UI goes through `apiFetch`, which resolves the path
// against the page's base (so the UI works under a sub-path) and adds the
// tenant and credentials from the settings (settings.js).

import { authHeaders, loadSettings } from './settings.js';

/** An API failure with the server's Connect-style code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The base URL requests are resolved against. */
function baseUrl() {
  return globalThis.document?.baseURI ?? 'http://localhost/';
}

/**
 * The one function that talks to the server. `path` is relative to the
 * base (no leading slash). Options: `json` (sent as the JSON body), `body`
 * and `contentType` (raw body), `method` (default POST), `responseType`
 * ('json', 'text', 'arrayBuffer', 'blob'), `signal`.
 */
export async function apiFetch(path, opts = {}) {
  const url = new URL(String(path).replace(/^\/+/, ''), baseUrl());
  const headers = new Headers(authHeaders(loadSettings()));
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers.set('Content-Type', 'application/json');
  } else if (opts.contentType) {
    headers.set('Content-Type', opts.contentType);
  }
  const res = await fetch(url, { method: opts.method || (body === undefined ? 'GET' : 'POST'), headers, body, signal: opts.signal });
  if (!res.ok) {
    const text = await res.text();
    let code = '';
    let message = text || res.statusText;
    try {
      const j = JSON.parse(text);
      code = j.code || '';
      message = j.message || message;
    } catch {
      // not JSON: keep the text
    }
    if (res.status === 401 || res.status === 403) message += ' — set the tenant or credentials in Settings (⚙)';
    throw new ApiError(res.status, code, message);
  }
  switch (opts.responseType || 'json') {
    case 'text': return res.text();
    case 'arrayBuffer': return res.arrayBuffer();
    case 'blob': return res.blob();
    default: return res.json();
  }
}

/** A `querier.v1.QuerierService` method over Connect JSON. */
export function querier(method, request, opts = {}) {
  return apiFetch(`querier.v1.QuerierService/${method}`, { ...opts, json: request });
}

/** A Kiln UI helper method (`kiln.ui.v1/<Method>`, JSON). */
export function kilnUi(method, request, opts = {}) {
  return apiFetch(`kiln.ui.v1/${method}`, { ...opts, json: request });
}

function varint(out, v) {
  let n = Math.max(0, Math.floor(v));
  while (n >= 128) {
    out.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

function stringField(out, tag, s) {
  const bytes = new TextEncoder().encode(s);
  out.push(tag);
  varint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/**
 * The protobuf encoding of a `querier.v1.SelectMergeProfileRequest`
 * (profile_typeID = 1, label_selector = 2, start = 3, end = 4, max_nodes = 5).
 */
export function encodeSelectMergeProfile({ profileTypeID, labelSelector, start, end, maxNodes }) {
  const out = [];
  stringField(out, 0x0a, profileTypeID);
  stringField(out, 0x12, labelSelector);
  out.push(0x18);
  varint(out, start);
  out.push(0x20);
  varint(out, end);
  if (maxNodes) {
    out.push(0x28);
    varint(out, maxNodes);
  }
  return new Uint8Array(out);
}

/** The merged profile as pprof bytes (`SelectMergeProfile`, Connect protobuf). */
export function mergedPprof(request) {
  return apiFetch('querier.v1.QuerierService/SelectMergeProfile', {
    body: encodeSelectMergeProfile(request),
    contentType: 'application/proto',
    responseType: 'arrayBuffer',
  });
}

/** Sends a file to `/ingest` with query parameters `params`. */
export function ingestFile(params, data) {
  const q = new URLSearchParams(params).toString();
  return apiFetch(`ingest?${q}`, { body: data, contentType: 'application/octet-stream', responseType: 'text' });
}
