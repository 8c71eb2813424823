// The UI's state lives in the URL: page path plus query parameters. These
// functions convert between the two and build label selectors. Pure, so
// they are unit-tested with node --test.

/** The pages and their paths (relative to the base path). */
export const PAGES = { single: '', comparison: 'comparison', diff: 'diff', explore: 'explore' };

/** Every state key with its default; only non-default values go in the URL. */
export const DEFAULTS = Object.freeze({
  service: '',
  type: '',
  filters: '', // matchers without braces: env="dev",pod=~"api-.*"
  from: 'now-1h',
  until: 'now',
  view: 'both', // flame | table | both | sandwich
  search: '',
  focus: '', // frame names from the root, joined by ';'
  sandwich: '', // function of the sandwich view
  palette: 'package', // package | value
  maxNodes: '', // empty: the server's default
  leftFrom: '',
  leftUntil: '',
  rightFrom: '',
  rightUntil: '',
  diffPalette: 'default', // default | colorblind
  clamp: '100',
  groupBy: '',
  groupValue: '',
});

const KEYS = Object.keys(DEFAULTS);

/** The page of a path relative to the base (`''`, `'diff'`, ...). */
export function pageOfPath(relPath) {
  const p = String(relPath || '').replace(/^\/+|\/+$/g, '');
  for (const [page, path] of Object.entries(PAGES)) if (path === p) return page;
  return 'single';
}

/** State from a query string (`?a=b&...` or `a=b&...`). Unknown keys are ignored. */
export function parseQuery(search) {
  const params = new URLSearchParams(String(search || '').replace(/^\?/, ''));
  const state = { ...DEFAULTS };
  for (const key of KEYS) {
    const v = params.get(key);
    if (v !== null) state[key] = v;
  }
  return state;
}

/** The relative URL (`diff?service=...`) of a page and state. */
export function buildUrl(page, state) {
  const params = new URLSearchParams();
  for (const key of KEYS) {
    const v = state[key];
    if (v !== undefined && v !== null && String(v) !== DEFAULTS[key]) params.set(key, String(v));
  }
  const q = params.toString();
  const path = PAGES[page] || './';
  return q ? `${path}?${q}` : path;
}

// ---- matchers -------------------------------------------------------------

const OPS = ['=~', '!~', '!=', '='];

function skipSpaces(s, i) {
  while (i < s.length && /\s/.test(s[i])) i++;
  return i;
}

/**
 * Parses `name="v",other!~"x.*"` (braces optional) into
 * `[{name, op, value}]`. Throws an Error naming the position on bad input.
 */
export function parseMatchers(text) {
  let s = String(text || '').trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1);
  const out = [];
  let i = skipSpaces(s, 0);
  while (i < s.length) {
    const name = /^[A-Za-z_][\w.]*/.exec(s.slice(i));
    if (!name) throw new Error(`expected a label name at ${i + 1}`);
    i = skipSpaces(s, i + name[0].length);
    const op = OPS.find((o) => s.startsWith(o, i));
    if (!op) throw new Error(`expected =, !=, =~ or !~ after ${name[0]}`);
    i = skipSpaces(s, i + op.length);
    if (s[i] !== '"') throw new Error(`expected a quoted value for ${name[0]}`);
    i++;
    let value = '';
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\' && i + 1 < s.length) {
        value += s[i + 1];
        i += 2;
      } else {
        value += s[i++];
      }
    }
    if (s[i] !== '"') throw new Error(`unterminated value for ${name[0]}`);
    i = skipSpaces(s, i + 1);
    out.push({ name: name[0], op, value });
    if (i < s.length) {
      if (s[i] !== ',') throw new Error(`expected , at ${i + 1}`);
      i = skipSpaces(s, i + 1);
    }
  }
  return out;
}

/** Quotes a label value (backslashes and double quotes escaped). */
export function quoteValue(v) {
  return `"${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** `[{name, op, value}]` back to `name="v",...` (no braces). */
export function formatMatchers(list) {
  return list.map((m) => `${m.name}${m.op}${quoteValue(m.value)}`).join(',');
}

/** The label selector of a service and extra matchers: `{service_name="svc",env="dev"}`. */
export function selectorOf(service, filters) {
  const parts = [];
  if (service) parts.push(`service_name=${quoteValue(service)}`);
  const extra = typeof filters === 'string' ? parseMatchers(filters) : filters || [];
  for (const m of extra) if (m.name !== 'service_name' || !service) parts.push(`${m.name}${m.op}${quoteValue(m.value)}`);
  return `{${parts.join(',')}}`;
}

/** Adds or replaces the matcher of a label. */
export function withMatcher(filters, matcher) {
  const list = parseMatchers(filters).filter((m) => !(m.name === matcher.name && m.op === matcher.op));
  list.push(matcher);
  return formatMatchers(list);
}
