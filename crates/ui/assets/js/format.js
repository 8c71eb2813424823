// Formatting of values, percentages and times. Pure functions (no DOM), so
// they are unit-tested with `node --test`.

/** Splits a profile type ID `name:sample_type:sample_unit:period_type:period_unit`. */
export function parseProfileType(id) {
  const [name = '', sampleType = '', sampleUnit = '', periodType = '', periodUnit = ''] = String(id || '').split(':');
  return { id: id || '', name, sampleType, sampleUnit, periodType, periodUnit };
}

/** A short human name of a profile type: `cpu (nanoseconds)` → `process_cpu · cpu`. */
export function profileTypeLabel(id) {
  const t = parseProfileType(id);
  if (!t.sampleType) return id || '';
  return t.name === t.sampleType ? t.name : `${t.name} · ${t.sampleType}`;
}

/** What kind of quantity a unit measures: 'time', 'bytes', 'objects' or 'count'. */
export function unitKind(unit) {
  switch (unit) {
    case 'nanoseconds': case 'microseconds': case 'milliseconds': case 'seconds':
      return 'time';
    case 'bytes':
      return 'bytes';
    case 'objects':
      return 'objects';
    default:
      return 'count';
  }
}

const NS_PER = { nanoseconds: 1, microseconds: 1e3, milliseconds: 1e6, seconds: 1e9 };

function fixed(v) {
  const abs = Math.abs(v);
  if (abs >= 100) return v.toFixed(0);
  if (abs >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A duration in nanoseconds: `850 ns`, `1.20 ms`, `3.50 s`, `2.00 min`, `1.50 h`, `3.0 days`. */
export function formatDurationNs(ns) {
  const abs = Math.abs(ns);
  if (abs < 1e3) return `${Math.round(ns)} ns`;
  if (abs < 1e6) return `${fixed(ns / 1e3)} µs`;
  if (abs < 1e9) return `${fixed(ns / 1e6)} ms`;
  if (abs < 60e9) return `${fixed(ns / 1e9)} s`;
  if (abs < 3600e9) return `${fixed(ns / 60e9)} min`;
  if (abs < 86400e9) return `${fixed(ns / 3600e9)} h`;
  return `${fixed(ns / 86400e9)} days`;
}

/** Bytes in powers of 1024: `512 B`, `1.50 KiB`, `20.0 MiB`. */
export function formatBytes(b) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = b;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(v)} B` : `${fixed(v)} ${units[i]}`;
}

/** Counts in powers of 1000: `999`, `1.20 K`, `3.40 M`, `5.00 G`. */
export function formatCount(n) {
  const units = ['', ' K', ' M', ' G', ' T'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? String(Math.round(v)) : `${fixed(v)}${units[i]}`;
}

/** A sample value in the profile's unit. */
export function formatValue(v, unit) {
  switch (unitKind(unit)) {
    case 'time':
      return formatDurationNs(v * (NS_PER[unit] || 1));
    case 'bytes':
      return formatBytes(v);
    case 'objects':
      return `${formatCount(v)} objects`;
    default:
      return formatCount(v);
  }
}

/** The tooltip and table label of a value in a unit. */
export function valueName(unit, sampleType) {
  switch (unitKind(unit)) {
    case 'time':
      return sampleType === 'wall' ? 'Wall time' : 'CPU time';
    case 'bytes':
      return 'Memory';
    case 'objects':
      return 'Objects';
    default:
      return sampleType ? sampleType[0].toUpperCase() + sampleType.slice(1) : 'Samples';
  }
}

/** A ratio as a percentage with two decimals (`0.1234` → `12.34 %`). */
export function formatPercent(ratio) {
  if (!Number.isFinite(ratio)) return '–';
  const p = ratio * 100;
  if (p !== 0 && Math.abs(p) < 0.01) return p > 0 ? '< 0.01 %' : '> -0.01 %';
  return `${p.toFixed(2)} %`;
}

/** A signed percentage of change (`+12.50 %`, `-3.00 %`). */
export function formatChange(percent) {
  if (!Number.isFinite(percent)) return '–';
  const s = percent > 0 ? '+' : '';
  return `${s}${percent.toFixed(2)} %`;
}

// ---- time expressions ---------------------------------------------------

const UNIT_MS = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 };

/**
 * Parses a time expression to milliseconds since the epoch: `now`,
 * `now-15m`, `now-2h`, `now-7d`, or absolute milliseconds (digits).
 * Returns NaN when it cannot.
 */
export function parseTime(expr, nowMs) {
  const s = String(expr ?? '').trim();
  if (s === '' || s === 'now') return nowMs;
  const rel = /^now-(\d+)([smhdw])$/.exec(s);
  if (rel) return nowMs - Number(rel[1]) * UNIT_MS[rel[2]];
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    // Seconds (10 digits) are accepted too, as Pyroscope does.
    return s.length <= 10 ? n * 1000 : n;
  }
  return NaN;
}

/** The duration in ms of a relative expression such as `now-1h`, or NaN. */
export function relativeSpanMs(expr) {
  const rel = /^now-(\d+)([smhdw])$/.exec(String(expr ?? '').trim());
  return rel ? Number(rel[1]) * UNIT_MS[rel[2]] : NaN;
}

const PRESET_NAMES = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' };

/** A range as words: `Last 1 hour`, or the absolute dates. */
export function describeRange(from, until, nowMs, toLocal = localDateTime) {
  const rel = /^now-(\d+)([smhdw])$/.exec(String(from));
  if (rel && (until === 'now' || until === '' || until == null)) {
    const n = Number(rel[1]);
    return `Last ${n} ${PRESET_NAMES[rel[2]]}${n === 1 ? '' : 's'}`;
  }
  return `${toLocal(parseTime(from, nowMs))} → ${toLocal(parseTime(until, nowMs))}`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DD HH:MM:SS` in local time. */
export function localDateTime(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A step in seconds giving about `points` points over a range. */
export function stepSeconds(startMs, endMs, points = 240) {
  const span = Math.max(1, endMs - startMs) / 1000;
  const raw = span / points;
  const nice = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  for (const n of nice) if (n >= raw) return n;
  return Math.ceil(raw / 86400) * 86400;
}
