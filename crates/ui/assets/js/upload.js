// Upload a profile file to look at it without an agent. The file is
// ingested through Kiln's own `/ingest` API into a dedicated service
// (default `kiln-upload`) with the label `upload=<file name>`, stamped with
// the current time, so every view (table, sandwich, diff against another
// upload, exports) works on it as on agent data. Formats: pprof (gzip or
// not), JFR, speedscope JSON and folded text.

import { ingestFile, querier } from './api.js';
import { h, safeFileName, setStatus } from './dom.js';
import { formatMatchers, selectorOf } from './state.js';

/** The `/ingest` format of a file, from its name and first bytes. */
export function detectFormat(name, head) {
  const n = String(name).toLowerCase();
  const b = head || new Uint8Array();
  if (n.endsWith('.jfr') || n.endsWith('.jfr.gz') || (b[0] === 0x46 && b[1] === 0x4c && b[2] === 0x52 && b[3] === 0)) return 'jfr';
  if (n.endsWith('.json') || b[0] === 0x7b) return 'speedscope';
  if (/\.(pb|pprof|prof)(\.gz)?$/.test(n) || n.endsWith('.gz') || (b[0] === 0x1f && b[1] === 0x8b)) return 'pprof';
  // A pprof starts with field 1 (sample_type, wire type 2): 0x0a.
  if (b[0] === 0x0a && b.length > 1 && !/\.(txt|folded|collapsed)$/.test(n)) return 'pprof';
  return 'folded';
}

/** The `/ingest` query parameters for a file. */
export function ingestParams(service, fileName, format, nowSec) {
  const label = safeFileName(fileName);
  // Folded text carries no type: the `.cpu` suffix makes it CPU samples at 100 Hz.
  const app = format === 'folded' ? `${service}.cpu` : service;
  return { name: `${app}{upload=${label}}`, format, from: String(nowSec), until: String(nowSec), spyName: 'upload' };
}

export function openUploadDialog(store, bar) {
  const file = h('input', { type: 'file', name: 'file', required: true, 'data-testid': 'upload-file' });
  const service = h('input', { name: 'service', value: 'kiln-upload', pattern: '[A-Za-z0-9_.\\/\\-]+', required: true, 'data-testid': 'upload-service' });
  const status = h('div', { class: 'muted', 'data-testid': 'upload-status' });
  const submit = h('button', { type: 'submit', class: 'primary', 'data-testid': 'upload-submit' }, 'Upload and view');
  const dialog = h('dialog', { 'data-testid': 'upload-dialog', 'aria-label': 'Upload a profile' },
    h('form', { method: 'dialog' },
      h('h3', { style: { margin: 0 } }, 'View a profile file'),
      h('p', { class: 'muted', style: { margin: 0 } }, 'pprof (.pb, .pb.gz), JFR (.jfr), speedscope (.json) or folded text. The file is stored in Kiln under the service below, labelled upload=<file name>, at the current time.'),
      h('label', {}, 'File', file),
      h('label', {}, 'Service name', service),
      status,
      h('div', { class: 'buttons' }, h('button', { type: 'button', onclick: () => dialog.close() }, 'Cancel'), submit)));
  dialog.querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files && file.files[0];
    if (!f) return;
    submit.disabled = true;
    try {
      const data = new Uint8Array(await f.arrayBuffer());
      const format = detectFormat(f.name, data.subarray(0, 8));
      const now = Date.now();
      const params = ingestParams(service.value.trim(), f.name, format, Math.floor(now / 1000));
      status.textContent = `Uploading as ${format}…`;
      await ingestFile(params, data);
      const filters = formatMatchers([{ name: 'upload', op: '=', value: safeFileName(f.name) }]);
      const from = now - 5 * 60_000;
      const until = now + 60_000;
      const resp = await querier('Series', { matchers: [selectorOf(service.value.trim(), filters)], labelNames: ['__profile_type__'], start: from, end: until });
      const types = [...new Set((resp.labelsSet || []).flatMap((l) => l.labels.filter((p) => p.name === '__profile_type__').map((p) => p.value)))];
      const type = types.find((t) => t.includes(':cpu:')) || types[0] || '';
      dialog.close();
      bar.cache.clear();
      store.go('single', { service: service.value.trim(), type, filters, from: String(from), until: String(until), focus: '', search: '', sandwich: '', view: 'both' });
      setStatus(`Uploaded ${f.name}`);
    } catch (err) {
      status.textContent = `Upload failed: ${err.message}`;
      status.className = 'error';
      submit.disabled = false;
    }
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
