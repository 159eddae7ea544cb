// The approvers' web page: sign-in, the pending queue (live), history with rollback, and
// the audit view. Plain ES modules, no framework, no build step; docs/API.md is the
// contract with the server.

import { api, withQuery, getToken, setToken, clearToken, ApiError, describeError, EventStream } from './api.js';
import { h, clear, show, formatTime, timeAgo, expiryLabel, refreshTimes, actionText, actionLabel,
  riskRank, riskBadge, statusBadge, plural } from './dom.js';
import { renderEffect } from './effect.js';

const $ = (id) => document.getElementById(id);

const state = {
  me: null,              // {name, role} once signed in
  view: 'pending',
  pending: new Map(),    // id -> {sig, el}: cards kept across refreshes
  history: new Map(),
  knownAgents: new Set(),
  knownTargets: new Set(),
  auditAfter: 0,         // the highest seq shown in the audit list
  auditAction: '',
  refreshTimer: null,
  dirty: new Set(),      // views to refresh when the debounce fires
};

const stream = new EventStream({
  onEvent: (msg) => onLiveEvent(msg),
  onState: (s) => onStreamState(s),
});

// ---- messages ------------------------------------------------------------------------------

function showError(text) {
  $('banner-text').textContent = text;
  show($('banner'), true);
}

function clearError() {
  show($('banner'), false);
  $('banner-text').textContent = '';
}

let noticeTimer = null;
function showNotice(text) {
  const n = $('notice');
  n.textContent = text;
  show(n, true);
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => show(n, false), 8000);
}

// Every API failure goes through here: an unknown token ends the session, anything else is
// shown as the API's message.
function handleError(e, where) {
  if (e && e.name === 'AbortError') return;
  if (e instanceof ApiError && e.status === 401 && state.me) {
    signOut('Your session ended: airlock no longer accepts this token. Sign in again.');
    return;
  }
  showError(`${where}: ${describeError(e)}`);
}

// ---- sign-in -------------------------------------------------------------------------------

async function signIn(token, { quiet = false } = {}) {
  const errEl = $('signin-error');
  errEl.textContent = '';
  let me;
  try {
    me = await api('GET', '/v1/whoami', undefined, { token });
  } catch (e) {
    // A stored token airlock refuses is forgotten; one that merely met a network error is
    // kept, so a reload after a server restart signs in again.
    if (quiet && e instanceof ApiError && e.status === 401) clearToken();
    errEl.textContent = e instanceof ApiError && e.status === 401
      ? 'airlock does not know this token (unauthenticated).'
      : `Sign-in failed: ${describeError(e)}`;
    showSignedOut();
    return;
  }
  if (me.role !== 'approver') {
    // Agents may call the API, but this page is for the humans who decide.
    clearToken();
    errEl.textContent = `This token belongs to ${me.role || 'someone'} "${me.name || '?'}"; ` +
      'the page is for approvers. Sign in with an approver token.';
    showSignedOut();
    return;
  }
  setToken(token);
  state.me = { name: String(me.name || ''), role: me.role };
  $('token').value = '';
  $('whoami').textContent = state.me.name;
  show($('signin-view'), false);
  show($('tabs'), true);
  show($('session'), true);
  clearError();
  stream.start(token);
  route();
}

function signOut(message) {
  stream.stop();
  clearToken();
  state.me = null;
  state.pending.clear();
  state.history.clear();
  state.auditAfter = 0;
  clear($('pending-list'));
  clear($('history-list'));
  clear($('audit-rows'));
  showSignedOut();
  if (message) showError(message);
  else clearError();
}

function showSignedOut() {
  for (const v of ['pending', 'history', 'audit']) show($(`${v}-view`), false);
  show($('tabs'), false);
  show($('session'), false);
  show($('signin-view'), true);
  document.title = 'airlock · approvals';
  $('token').focus();
}

function onStreamState(s) {
  const live = $('live');
  const labels = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…',
    unauthorized: 'offline', stopped: 'offline' };
  live.textContent = labels[s] || s;
  live.className = `live live-${s}`;
  if (s === 'live') {
    // Whatever happened while the stream was down (or before it first opened) is fetched now.
    markDirty(['pending', 'history', 'audit']);
  }
  if (s === 'unauthorized' && state.me) {
    signOut('Your session ended: airlock no longer accepts this token. Sign in again.');
  }
}

// ---- live updates --------------------------------------------------------------------------

function onLiveEvent(msg) {
  // Any event may change what the page shows: a new pending action, a vote, an expiry, a
  // rollback. The affected views are refreshed once the burst is over (debounced).
  let data = null;
  try {
    data = JSON.parse(msg.data);
  } catch {
    data = null;
  }
  const views = ['audit'];
  if (!data || data.action_id) views.push('pending', 'history');
  markDirty(views);
}

function markDirty(views) {
  for (const v of views) state.dirty.add(v);
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(flushDirty, 250);
}

function flushDirty() {
  if (!state.me) return;
  const dirty = state.dirty;
  state.dirty = new Set();
  // The pending queue is always kept fresh (its count shows in the tab); the others only
  // while they are on screen, and in full when opened.
  if (dirty.has('pending')) loadPending();
  if (dirty.has('history') && state.view === 'history') loadHistory();
  if (dirty.has('audit') && state.view === 'audit') loadAuditEvents({ incremental: true });
}

// ---- routing ---------------------------------------------------------------------------------

function route() {
  if (!state.me) return;
  const v = (location.hash || '#pending').slice(1);
  state.view = ['pending', 'history', 'audit'].includes(v) ? v : 'pending';
  for (const name of ['pending', 'history', 'audit']) {
    show($(`${name}-view`), name === state.view);
    const tab = document.querySelector(`#tabs a[data-view="${name}"]`);
    if (name === state.view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  if (state.view === 'pending') loadPending();
  if (state.view === 'history') loadHistory();
  if (state.view === 'audit') {
    loadVerify();
    loadAuditEvents({ incremental: false });
  }
}

// ---- one action ------------------------------------------------------------------------------

// What changes when an action changes; a card is rebuilt only when this does, so a reason
// being typed is not lost to a refresh caused by someone else's action.
function signature(a) {
  return JSON.stringify([a.status, a.updated_ms, Array.isArray(a.votes) ? a.votes.length : 0, a.quorum]);
}

function votesSummary(a) {
  const quorum = typeof a.quorum === 'number' ? a.quorum : 0;
  const votes = Array.isArray(a.votes) ? a.votes : [];
  const approvals = typeof a.approvals === 'number' ? a.approvals : votes.filter((v) => v.vote === 'approve').length;
  const needed = Math.max(0, quorum - approvals);
  let text = `${approvals} of ${plural(quorum, 'approval', 'approvals')}`;
  if (a.status === 'pending') text += needed > 0 ? ` · ${needed} more needed` : ' · quorum reached';
  return h('div', { class: 'votes' },
    h('p', { class: 'votes-count' }, text),
    votes.length ? h('ul', { class: 'vote-list' }, votes.map((v) => h('li', { class: `vote vote-${v.vote === 'approve' ? 'approve' : 'reject'}` },
      `${v.vote === 'approve' ? 'approved' : 'rejected'} by `, h('strong', null, String(v.approver || '?')),
      ` at ${formatTime(v.at_ms)}`, v.reason ? [': ', h('q', null, String(v.reason))] : null))) : null);
}

// The body every view shares: who, what, why, the effect, the votes, the result.
function actionDetails(a) {
  const reasons = Array.isArray(a.reasons) ? a.reasons : [];
  const parts = [
    h('dl', { class: 'fields' },
      h('dt', null, 'Agent'), h('dd', { class: 'agent' }, String(a.agent || '')),
      h('dt', null, 'Target'), h('dd', { class: 'target' }, String(a.target || ''), a.kind ? h('span', { class: 'muted' }, ` (${a.kind})`) : null),
      h('dt', null, 'Created'), h('dd', null, timeAgo(a.created_ms)),
      a.status === 'pending' && a.expires_ms > 0 ? [h('dt', null, 'Expires'), h('dd', null, expiryLabel(a.expires_ms))] : null,
      a.reversible === false ? [h('dt', null, 'Undo'), h('dd', { class: 'warn' }, 'not reversible')] : null,
      a.dry_run ? [h('dt', null, 'Mode'), h('dd', null, `dry-run (would be ${a.would_status || '?'})`)] : null,
      a.effect_hash ? [h('dt', null, 'Effect'), h('dd', null, h('code', { title: String(a.effect_hash) }, String(a.effect_hash).slice(0, 16)))] : null),
    reasons.length ? h('div', { class: 'reasons' }, h('p', { class: 'label' }, 'Why this risk'),
      h('ul', null, reasons.map((r) => h('li', null, String(r))))) : null,
    a.error ? h('p', { class: 'error-text action-error' }, String(a.error), a.error_code ? ` (${a.error_code})` : '') : null,
    h('div', { class: 'action-text-wrap' }, h('p', { class: 'label' }, actionLabel(a)),
      h('pre', { class: 'action-text' }, actionText(a))),
    h('div', { class: 'effect-wrap' }, h('p', { class: 'label' }, 'Effect (dry-run)'), renderEffect(a)),
    (a.quorum > 0 || (Array.isArray(a.votes) && a.votes.length)) ? votesSummary(a) : null,
    resultBlock(a.result),
  ];
  return parts;
}

function resultBlock(result) {
  if (!result || typeof result !== 'object') return null;
  if (Array.isArray(result.columns)) {
    const rows = Array.isArray(result.rows) ? result.rows : [];
    return h('div', { class: 'result' }, h('p', { class: 'label' }, `Result (${plural(rows.length, 'row', 'rows')}${result.truncated ? ', more not shown' : ''})`),
      h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
        h('thead', null, h('tr', null, result.columns.map((c) => h('th', null, String(c))))),
        h('tbody', null, rows.map((r) => h('tr', null, (Array.isArray(r) ? r : []).map((v) => h('td', null, v === null ? 'NULL' : typeof v === 'string' ? v : JSON.stringify(v)))))))));
  }
  if (typeof result.exit_code === 'number' || result.stdout || result.stderr) {
    return h('div', { class: 'result' }, h('p', { class: 'label' }, `Result (exit ${result.exit_code})`),
      result.stdout ? h('pre', { class: 'text' }, String(result.stdout)) : null,
      result.stderr ? h('pre', { class: 'text stderr' }, String(result.stderr)) : null);
  }
  return null;
}

function cardHead(a) {
  return h('header', { class: 'card-head' },
    riskBadge(a.risk),
    a.status !== 'pending' ? statusBadge(a.status) : null,
    h('code', { class: 'action-id' }, String(a.id)),
    h('span', { class: 'route' }, h('strong', null, String(a.agent || '?')), ' → ', h('strong', null, String(a.target || '?'))));
}

// ---- pending queue -------------------------------------------------------------------------

let pendingSeq = 0;
async function loadPending() {
  const seq = ++pendingSeq;
  let res;
  try {
    res = await api('GET', withQuery('/v1/actions', { status: 'pending', limit: 1000 }));
  } catch (e) {
    handleError(e, 'Loading the pending queue failed');
    return;
  }
  if (seq !== pendingSeq || !state.me) return;  // a newer load has started
  const actions = (Array.isArray(res.actions) ? res.actions : []).filter((a) => a && a.status === 'pending');
  actions.sort((x, y) => riskRank(y.risk) - riskRank(x.risk) || (x.created_ms || 0) - (y.created_ms || 0));
  for (const a of actions) noteKnown(a);
  syncList($('pending-list'), state.pending, actions, pendingCard);
  show($('pending-empty'), actions.length === 0);
  $('pending-count').textContent = actions.length ? String(actions.length) : '';
  document.title = actions.length ? `(${actions.length}) airlock · approvals` : 'airlock · approvals';
}

// Keeps the container's children in the order of `items`, reusing elements whose action did
// not change; a rebuilt element keeps the text typed into its inputs and which <details>
// were open.
function syncList(container, cache, items, build) {
  const seen = new Set();
  let prev = null;
  for (const a of items) {
    const id = String(a.id);
    seen.add(id);
    const sig = signature(a);
    let entry = cache.get(id);
    if (!entry || entry.sig !== sig) {
      const el = build(a);
      if (entry) carryOver(entry.el, el);
      if (entry) entry.el.replaceWith(el);
      entry = { sig, el };
      cache.set(id, entry);
    }
    const want = prev ? prev.nextSibling : container.firstChild;
    if (want !== entry.el) container.insertBefore(entry.el, want);
    prev = entry.el;
  }
  for (const [id, entry] of cache) {
    if (!seen.has(id)) {
      entry.el.remove();
      cache.delete(id);
    }
  }
}

function carryOver(oldEl, newEl) {
  for (const input of oldEl.querySelectorAll('input[name]')) {
    const twin = newEl.querySelector(`input[name="${input.name}"]`);
    if (twin && input.value) twin.value = input.value;
  }
  if (oldEl.matches('details') && newEl.matches('details')) newEl.open = oldEl.open;
}

function pendingCard(a) {
  const myVote = Array.isArray(a.votes) && state.me
    ? a.votes.find((v) => v.approver === state.me.name) : null;
  const errorEl = h('p', { class: 'error-text card-error', role: 'alert' });
  const reason = h('input', { type: 'text', name: 'reason', class: 'reason', placeholder: 'Reason (optional)',
    maxLength: 2000, 'aria-label': 'Reason (optional)', spellcheck: true });
  const approve = h('button', { type: 'button', class: 'approve' }, 'Approve');
  const reject = h('button', { type: 'button', class: 'reject' }, 'Reject');
  const buttons = [approve, reject];
  if (myVote) {
    for (const b of buttons) b.disabled = true;
    reason.disabled = true;
  }
  const vote = async (kind) => {
    errorEl.textContent = '';
    for (const b of buttons) b.disabled = true;
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      const after = await api('POST', `/v1/actions/${encodeURIComponent(a.id)}/${kind}`, body);
      showNotice(`${kind === 'approve' ? 'Approved' : 'Rejected'} ${a.id}: now ${String(after.status).replace(/_/g, ' ')}` +
        (after.status === 'pending' ? ` (${Math.max(0, (after.quorum || 0) - (after.approvals || 0))} more approval(s) needed)` : '') + '.');
      if (after.status === 'failed' || after.status === 'effect_changed') {
        showError(`${a.id} ${String(after.status).replace(/_/g, ' ')}: ${after.error || 'nothing was applied'}`);
      }
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        handleError(e, 'Vote');
      } else {
        // On the card, and in the banner too: the refresh below may remove the card (the
        // action was decided meanwhile), and the approver must still learn why.
        errorEl.textContent = `${kind === 'approve' ? 'Approve' : 'Reject'} failed: ${describeError(e)}`;
        showError(`${kind === 'approve' ? 'Approving' : 'Rejecting'} ${a.id} failed: ${describeError(e)}`);
      }
      for (const b of buttons) b.disabled = false;
    }
    loadPending();
  };
  approve.addEventListener('click', () => vote('approve'));
  reject.addEventListener('click', () => vote('reject'));

  return h('article', { class: `card risk-border-${String(a.risk)}`, dataset: { id: String(a.id) } },
    cardHead(a),
    actionDetails(a),
    h('div', { class: 'decide' },
      myVote ? h('p', { class: 'muted' }, `You ${myVote.vote === 'approve' ? 'approved' : 'rejected'} this; waiting for others.`) : null,
      reason,
      h('div', { class: 'decide-buttons' }, buttons),
      errorEl));
}

// ---- history -------------------------------------------------------------------------------

function noteKnown(a) {
  if (a.agent && !state.knownAgents.has(a.agent)) {
    state.knownAgents.add(a.agent);
    $('known-agents').append(h('option', { value: String(a.agent) }));
  }
  if (a.target && !state.knownTargets.has(a.target)) {
    state.knownTargets.add(a.target);
    $('known-targets').append(h('option', { value: String(a.target) }));
  }
}

function historyFilters() {
  return {
    status: $('filter-status').value,
    agent: $('filter-agent').value.trim(),
    target: $('filter-target').value.trim(),
    limit: $('filter-limit').value,
  };
}

let historySeq = 0;
async function loadHistory() {
  const seq = ++historySeq;
  const f = historyFilters();
  let res;
  try {
    res = await api('GET', withQuery('/v1/actions', f));
  } catch (e) {
    handleError(e, 'Loading the history failed');
    return;
  }
  if (seq !== historySeq || !state.me) return;
  const actions = Array.isArray(res.actions) ? res.actions.filter((a) => a && a.id) : [];
  for (const a of actions) noteKnown(a);
  syncList($('history-list'), state.history, actions, historyEntry);
  const what = [f.status && `status ${f.status.replace(/_/g, ' ')}`, f.agent && `agent ${f.agent}`,
    f.target && `target ${f.target}`].filter(Boolean).join(', ');
  $('history-summary').textContent = actions.length
    ? `${plural(actions.length, 'action', 'actions')}${what ? ` (${what})` : ''}, newest first.`
    : `No actions${what ? ` match ${what}` : ' yet'}.`;
}

function canRollBack(a) {
  return a.status === 'applied' && a.reversible !== false && !a.dry_run;
}

function historyEntry(a) {
  const body = h('div', { class: 'entry-body' }, actionDetails(a));
  if (canRollBack(a)) body.append(rollbackControls(a));
  const text = actionText(a);
  return h('details', { class: 'entry', dataset: { id: String(a.id) } },
    h('summary', null,
      statusBadge(a.status), riskBadge(a.risk),
      h('code', { class: 'action-id' }, String(a.id)),
      h('span', { class: 'route' }, String(a.agent || '?'), ' → ', String(a.target || '?')),
      h('span', { class: 'summary-text' }, text.length > 160 ? text.slice(0, 160) + '…' : text),
      h('span', { class: 'summary-time' }, formatTime(a.created_ms))),
    body);
}

// Rollback asks once more: it changes the real system again.
function rollbackControls(a) {
  const errorEl = h('p', { class: 'error-text', role: 'alert' });
  const reason = h('input', { type: 'text', name: 'rollback-reason', class: 'reason',
    placeholder: 'Reason (optional)', 'aria-label': 'Rollback reason (optional)', maxLength: 2000 });
  const confirm = h('button', { type: 'button', class: 'reject confirm-rollback' }, 'Confirm rollback');
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const confirmBox = h('div', { class: 'confirm', hidden: true },
    h('p', null, `Undo ${a.id} on ${a.target}? The previous state is restored if nothing changed it since.`),
    reason, h('div', { class: 'decide-buttons' }, confirm, cancel));
  const start = h('button', { type: 'button', class: 'secondary rollback' }, 'Rollback');
  start.addEventListener('click', () => { show(confirmBox, true); show(start, false); reason.focus(); });
  cancel.addEventListener('click', () => { show(confirmBox, false); show(start, true); });
  confirm.addEventListener('click', async () => {
    errorEl.textContent = '';
    confirm.disabled = true;
    cancel.disabled = true;
    try {
      const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
      const after = await api('POST', `/v1/actions/${encodeURIComponent(a.id)}/rollback`, body);
      showNotice(`Rolled back ${a.id}: now ${String(after.status).replace(/_/g, ' ')}.`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        handleError(e, 'Rollback');
        return;
      }
      let text = `Rollback failed: ${describeError(e)}`;
      const conflicts = e instanceof ApiError && e.body && e.body.report && e.body.report.conflicts;
      if (Array.isArray(conflicts) && conflicts.length) {
        text += ` — ${plural(conflicts.length, 'conflict', 'conflicts')}: ` +
          conflicts.slice(0, 10).map((c) => (typeof c === 'string' ? c : JSON.stringify(c))).join('; ');
      }
      errorEl.textContent = text;
      confirm.disabled = false;
      cancel.disabled = false;
    }
    loadHistory();
    loadPending();
  });
  return h('div', { class: 'rollback-box' }, start, confirmBox, errorEl);
}

// ---- audit ---------------------------------------------------------------------------------

async function loadVerify() {
  const box = $('verify-result');
  box.className = 'verify-result';
  box.textContent = 'Verifying the chain…';
  let v;
  try {
    v = await api('GET', '/v1/audit/verify');
  } catch (e) {
    box.textContent = `Verification failed to run: ${describeError(e)}`;
    box.classList.add('bad');
    handleError(e, 'Verifying the audit chain failed');
    return null;
  }
  const when = formatTime(Date.now());
  if (v.ok) {
    box.classList.add('good');
    box.replaceChildren(h('strong', null, 'Chain intact'),
      `: ${plural(Number(v.events) || 0, 'event', 'events')} verified (checked ${when}).`);
  } else {
    box.classList.add('bad');
    box.replaceChildren(h('strong', null, `Chain BROKEN at event ${v.first_bad_seq}`),
      v.problem ? `: ${v.problem}` : '', ` (checked ${when}).`);
  }
  return v;
}

let auditSeq = 0;
async function loadAuditEvents({ incremental }) {
  const seq = ++auditSeq;
  const action = state.auditAction;
  try {
    if (incremental && state.auditAfter > 0 && !action) {
      const res = await api('GET', withQuery('/v1/audit', { after: state.auditAfter, limit: 1000 }));
      if (seq !== auditSeq) return;
      addAuditRows(res.events, true);
      return;
    }
    let after = 0;
    const limit = action ? 10000 : 100;
    if (!action) {
      // The latest 100 events: the chain's length from verify tells where they start.
      const v = await api('GET', '/v1/audit/verify');
      after = Math.max(0, (Number(v.events) || 0) - limit);
    }
    const res = await api('GET', withQuery('/v1/audit', { after, limit, action }));
    if (seq !== auditSeq) return;
    clear($('audit-rows'));
    state.auditAfter = 0;
    addAuditRows(res.events, false);
  } catch (e) {
    handleError(e, 'Loading the audit log failed');
  }
}

function addAuditRows(events, prepend) {
  const list = Array.isArray(events) ? events : [];
  const tbody = $('audit-rows');
  // Newest first.
  const rows = [];
  for (const ev of list) {
    if (!ev || typeof ev !== 'object') continue;
    if (Number(ev.seq) <= state.auditAfter && prepend) continue;
    state.auditAfter = Math.max(state.auditAfter, Number(ev.seq) || 0);
    rows.unshift(auditRow(ev));
  }
  if (prepend) tbody.prepend(...rows);
  else tbody.append(...rows);
  const n = tbody.children.length;
  $('audit-summary').textContent = state.auditAction
    ? `${plural(n, 'event', 'events')} of ${state.auditAction}, newest first.`
    : `The latest ${plural(n, 'event', 'events')}, newest first.`;
}

function auditRow(ev) {
  const payload = ev.payload && typeof ev.payload === 'object' ? ev.payload : null;
  const actionId = String(ev.action_id || '');
  const actionCell = actionId
    ? h('button', { type: 'button', class: 'link', title: 'Show this action\'s events',
      onclick: () => { $('audit-action').value = actionId; state.auditAction = actionId; loadAuditEvents({ incremental: false }); } },
    actionId)
    : '';
  return h('tr', { class: `ev-${String(ev.event || '').replace(/[^a-z_]/gi, '')}` },
    h('td', { class: 'num' }, String(ev.seq)),
    h('td', { class: 'nowrap' }, formatTime(ev.at_ms)),
    h('td', null, h('strong', null, String(ev.event || ''))),
    h('td', null, String(ev.principal || '')),
    h('td', null, actionCell),
    h('td', null, payload && Object.keys(payload).length
      ? h('details', { class: 'payload' }, h('summary', null, payloadSummary(payload), ' · hash ', h('code', null, String(ev.hash || '').slice(0, 12))),
        h('pre', { class: 'text' }, JSON.stringify(payload, null, 2)))
      : h('span', { class: 'muted' }, 'hash ', h('code', null, String(ev.hash || '').slice(0, 12)))));
}

function payloadSummary(p) {
  const parts = [];
  for (const k of ['status', 'risk', 'target', 'agent', 'reason']) {
    if (typeof p[k] === 'string' && p[k]) parts.push(`${k} ${p[k]}`);
  }
  return parts.length ? parts.join(', ') : `${Object.keys(p).length} fields`;
}

// ---- start -----------------------------------------------------------------------------------

function init() {
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (token) signIn(token);
  });
  $('sign-out').addEventListener('click', () => signOut());
  $('banner-close').addEventListener('click', clearError);
  $('history-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    loadHistory();
  });
  $('filter-status').addEventListener('change', () => loadHistory());
  $('filter-clear').addEventListener('click', () => {
    $('history-filters').reset();
    loadHistory();
  });
  $('audit-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.auditAction = $('audit-action').value.trim();
    loadAuditEvents({ incremental: false });
  });
  $('audit-clear').addEventListener('click', () => {
    $('audit-action').value = '';
    state.auditAction = '';
    loadAuditEvents({ incremental: false });
  });
  $('verify-button').addEventListener('click', () => loadVerify());
  window.addEventListener('hashchange', route);
  setInterval(() => refreshTimes(document.querySelector('main')), 1000);

  const token = getToken();
  if (token) signIn(token, { quiet: true });
  else showSignedOut();
}

init();
