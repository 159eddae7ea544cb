// Building the page's DOM without HTML parsing.
//
// Everything the API returns was written or caused by an agent (SQL, commands, file names,
// diffs, subjects) and is untrusted. It reaches the page only as text nodes and property
// values set here; nothing is ever assigned to innerHTML, and the server's CSP forbids
// inline scripts and styles besides.

// Properties that would parse HTML or run code: h() refuses them, so no caller can pass
// data through them by mistake.
const FORBIDDEN = new Set(['innerHTML', 'outerHTML', 'srcdoc', 'style']);

// h('div', {class: 'x', onclick: fn}, 'text', child, [more]) — an element with properties,
// listeners and children (strings become text nodes; null/false are skipped).
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (FORBIDDEN.has(k)) throw new Error(`h(): property ${k} is not allowed`);
      if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k.startsWith('aria-') || k === 'role' || k === 'for' || k === 'list') el.setAttribute(k, String(v));
      else el[k] = v;
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function show(el, visible) {
  el.hidden = !visible;
}

const numberFormat = new Intl.NumberFormat('en-US');

// 1204 -> "1,204" (as the CLI prints counts).
export function count(n) {
  return typeof n === 'number' && Number.isFinite(n) ? numberFormat.format(n) : String(n);
}

export function plural(n, one, many) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// Local time "2025-01-31 14:05:09".
export function formatTime(ms) {
  if (typeof ms !== 'number' || ms <= 0) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A duration as "1h 05m", "4m 09s", "12s".
export function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d > 0) return `${d}d ${hh}h`;
  if (hh > 0) return `${hh}h ${pad(mm)}m`;
  if (mm > 0) return `${mm}m ${pad(ss)}s`;
  return `${ss}s`;
}

export function ago(ms, now = Date.now()) {
  if (typeof ms !== 'number' || ms <= 0) return '';
  const diff = now - ms;
  if (diff < 5000) return 'just now';
  return `${formatDuration(diff)} ago`;
}

// A <time> element whose text is kept fresh by the page's ticker (refreshTimes).
export function timeAgo(ms) {
  const el = h('time', { class: 'ago', dateTime: ms > 0 ? new Date(ms).toISOString() : '',
    title: formatTime(ms), dataset: { at: String(ms) } });
  el.textContent = `${formatTime(ms)} (${ago(ms)})`;
  return el;
}

// Time left before a pending action expires; the ticker updates it every second.
export function expiryLabel(expiresMs) {
  const el = h('span', { class: 'expiry', dataset: { expires: String(expiresMs) } });
  updateExpiry(el);
  return el;
}

function updateExpiry(el, now = Date.now()) {
  const at = Number(el.dataset.expires);
  if (!at) {
    el.textContent = 'no expiry';
    return;
  }
  const left = at - now;
  el.textContent = left > 0 ? `expires in ${formatDuration(left)}` : 'expired: denied without an answer';
  el.title = `expires at ${formatTime(at)}`;
  el.classList.toggle('soon', left > 0 && left < 5 * 60 * 1000);
  el.classList.toggle('past', left <= 0);
}

export function refreshTimes(root) {
  const now = Date.now();
  for (const el of root.querySelectorAll('span.expiry[data-expires]')) updateExpiry(el, now);
  for (const el of root.querySelectorAll('time.ago[data-at]')) {
    const at = Number(el.dataset.at);
    el.textContent = `${formatTime(at)} (${ago(at, now)})`;
  }
}

// A word as a POSIX shell would need it written: plain, or in single quotes (the CLI's
// ShellQuote), so the displayed command is exactly the argv that runs.
export function shellQuote(w) {
  if (w !== '' && /^[A-Za-z0-9@%+=:,./_-]+$/.test(w)) return w;
  return "'" + w.replace(/'/g, "'\\''") + "'";
}

// The exact action text: the SQL, or the command's argv joined for display.
export function actionText(a) {
  const args = a && a.args;
  if (args && typeof args.sql === 'string') return args.sql;
  if (a.kind === 'mcp' && args && typeof args.tool === 'string') {
    return `${args.tool} ${JSON.stringify(args.arguments === undefined ? {} : args.arguments, null, 2)}`;
  }
  const argv = args && (Array.isArray(args.argv) ? args.argv : Array.isArray(args.command) ? args.command : null);
  if (argv) return argv.map((w) => shellQuote(typeof w === 'string' ? w : JSON.stringify(w))).join(' ');
  return JSON.stringify(args === undefined ? null : args, null, 2);
}

export function actionLabel(a) {
  if (a.kind === 'sql') return 'SQL';
  if (a.kind === 'shell') return 'Command';
  if (a.kind === 'mcp') return 'Tool call';
  if (a.kind === 'smtp' || a.kind === 'mail') return 'Mail';
  return 'Action';
}

const RISKS = ['read', 'low', 'high', 'critical'];

export function riskRank(risk) {
  const i = RISKS.indexOf(risk);
  return i < 0 ? RISKS.length : i;  // unknown risks sort as the riskiest (fail closed)
}

export function riskBadge(risk) {
  const known = RISKS.includes(risk) ? risk : 'unknown';
  return h('span', { class: `badge risk risk-${known}` }, String(risk || 'unknown').toUpperCase());
}

const STATUSES = ['applied', 'pending', 'denied', 'expired', 'rejected', 'failed', 'rolled_back', 'effect_changed'];

export function statusBadge(status) {
  const known = STATUSES.includes(status) ? status : 'unknown';
  return h('span', { class: `badge status status-${known}` }, String(status || 'unknown').replace(/_/g, ' '));
}
