// The HTTP API as the page uses it (docs/API.md).
//
// The approver's token lives in sessionStorage (this tab only, gone when it closes) and leaves
// the page only in the Authorization header: never in a URL, where it would end up in logs,
// history and Referer headers, and never in a cookie, which the browser would attach to
// cross-site requests (CSRF). Requests carry no credentials of the browser's own.

const TOKEN_KEY = 'airlock.token';

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// An error the page can show: the API's {"error": {"code", "message"}}, or what went wrong
// on the way (network, a reply that is not JSON). `body` is the whole parsed reply, if any
// (a rollback conflict carries report.conflicts there).
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
  // "message (code)", the form every error is shown in.
  describe() {
    return this.code ? `${this.message} (${this.code})` : this.message;
  }
}

export function describeError(e) {
  if (e instanceof ApiError) return e.describe();
  return e && e.message ? e.message : String(e);
}

function authHeaders(token) {
  return { Authorization: 'Bearer ' + token };
}

// One request. Resolves to the parsed JSON reply; rejects with ApiError.
export async function api(method, path, body, options = {}) {
  const token = options.token !== undefined ? options.token : getToken();
  const headers = authHeaders(token);
  const init = { method, headers, cache: 'no-store', credentials: 'omit', signal: options.signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'cannot reach airlock: ' + describeError(e));
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = data && typeof data === 'object' && data.error && typeof data.error === 'object'
      ? data.error : null;
    const code = err && typeof err.code === 'string' ? err.code : 'http_' + res.status;
    const message = err && typeof err.message === 'string' && err.message
      ? err.message : `HTTP ${res.status} ${res.statusText}`.trim();
    throw new ApiError(res.status, code, message, data);
  }
  if (data === null || typeof data !== 'object') {
    throw new ApiError(res.status, 'bad_response', 'airlock answered with something that is not a JSON object');
  }
  return data;
}

// Builds "path?k=v&..." from the parameters that are set.
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// The live feed GET /v1/events, read with fetch() and a stream reader because EventSource
// cannot send the Authorization header. Reconnects with backoff and resumes after the last
// event seen (Last-Event-ID), so no event is lost across a dropped connection.
export class EventStream {
  // onEvent({id, event, data}) for every message; onState('connecting' | 'live' |
  // 'reconnecting' | 'unauthorized' | 'stopped').
  constructor({ onEvent, onState }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastEventId = '';
    this.controller = null;
    this.stopped = true;
  }

  start(token) {
    this.stop();
    this.token = token;
    this.stopped = false;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async run(signal) {
    let backoff = 1000;
    while (!signal.aborted) {
      this.onState('connecting');
      try {
        const headers = authHeaders(this.token);
        headers.Accept = 'text/event-stream';
        if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
        const res = await fetch('/v1/events', { headers, signal, cache: 'no-store', credentials: 'omit' });
        if (res.status === 401) {
          this.onState('unauthorized');
          return;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        this.onState('live');
        backoff = 1000;
        await this.read(res.body, signal);
      } catch (e) {
        if (signal.aborted) break;
      }
      if (signal.aborted) break;
      this.onState('reconnecting');
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
    this.onState('stopped');
  }

  // The text/event-stream format (HTML standard, "Server-sent events"): lines of
  // "field: value", a blank line ends a message, lines starting with ':' are comments.
  async read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let msg = { id: null, event: '', data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || signal.aborted) return;
        buf += value;
        for (;;) {
          const m = /\r\n|\n|\r/.exec(buf);
          // A lone '\r' at the end may be the first half of "\r\n": wait for more.
          if (!m || (m[0] === '\r' && m.index === buf.length - 1)) break;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (line === '') {
            if (msg.id !== null) this.lastEventId = msg.id;
            if (msg.data.length) {
              this.onEvent({ id: this.lastEventId, event: msg.event || 'message', data: msg.data.join('\n') });
            }
            msg = { id: null, event: '', data: [] };
            continue;
          }
          if (line[0] === ':') continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val[0] === ' ') val = val.slice(1);
          if (field === 'data') msg.data.push(val);
          else if (field === 'event') msg.event = val;
          else if (field === 'id' && !val.includes('\0')) msg.id = val;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
