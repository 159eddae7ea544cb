// The effect preview of an action, as `airlock show` prints it (src/cli/render.cc) from the
// `effect` JSON (EffectToJson in src/core/types.cc): for SQL the schema changes, the
// per-table counts and a before/after table of rows; for a shell command the exit, the
// added/changed/deleted files and a coloured unified diff; for mail the recipients,
// subject and body. Every string here is untrusted and becomes text through h().

import { h, count, plural } from './dom.js';

const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const arr = (v) => (Array.isArray(v) ? v : []);
const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const str = (v) => (typeof v === 'string' ? v : '');

// An SQL value as the CLI shows it: NULL, x'..' for blobs, text as is, numbers as JSON.
export function valueText(v) {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.blob_hex === 'string') return `x'${v.blob_hex}'`;
  return JSON.stringify(v);
}

export function renderEffect(action) {
  const e = isObj(action.effect) ? action.effect : {};
  const box = h('div', { class: 'effect' });
  if (!e.kind) {
    box.append(h('p', { class: 'muted' }, action.status === 'failed'
      ? 'No effect observed: the dry-run did not finish.'
      : 'No effect recorded.'));
    return box;
  }
  const extra = isObj(e.extra) ? e.extra : {};
  if (e.kind === 'shell') renderShell(box, e, extra);
  else if (e.kind === 'mcp') renderToolCall(box, extra);
  else if (e.kind === 'http') renderHttp(box, extra);
  else if (Array.isArray(extra.recipients)) renderMail(box, action, extra);
  else renderSql(box, e, extra);
  if (Array.isArray(extra.changed_since_preview) && extra.changed_since_preview.length) {
    box.append(h('p', { class: 'warn' }, 'Changed since the preview: ',
      extra.changed_since_preview.map(valueText).join(', ')));
  }
  return box;
}

// ---- MCP tool call ---------------------------------------------------------------------
// A tool call cannot be previewed by running it: its effect is the exact call.

function renderToolCall(box, extra) {
  box.append(h('p', null, 'Calls the tool ', h('code', null, str(extra.tool)), ' on the MCP server ',
    h('code', null, str(extra.server)), '. It cannot be undone.'));
  box.append(h('pre', { class: 'args' }, JSON.stringify(isObj(extra.arguments) ? extra.arguments : {}, null, 2)));
  if (isObj(extra.annotations)) {
    box.append(h('p', { class: 'muted' }, 'The server\'s annotations (untrusted hints): ',
      JSON.stringify(extra.annotations)));
  }
}

// ---- HTTP request ----------------------------------------------------------------------
// A request cannot be previewed by sending it: its effect is the exact request. The values
// of the headers airlock adds are credentials and never reach this page: names only.

function renderHttp(box, extra) {
  const method = str(extra.method);
  const read = method === 'GET' || method === 'HEAD';
  box.append(h('p', null, 'Sends ', h('code', null, `${method} ${str(extra.url)}`),
    read ? '.' : '. It cannot be undone.'));
  const names = arr(extra.headers).map(valueText);
  if (names.length) {
    box.append(h('p', { class: 'muted' }, 'Headers airlock adds (values hidden): ', names.join(', ')));
  }
  if (extra.body !== undefined && extra.body !== null) {
    box.append(h('pre', { class: 'args' }, JSON.stringify(extra.body, null, 2)));
  }
}

// ---- SQL -------------------------------------------------------------------------------

function renderSql(box, e, extra) {
  const ddl = arr(e.ddl).filter(isObj);
  const tables = arr(e.tables).filter(isObj);
  const preview = arr(e.preview).filter(isObj);
  if (!ddl.length && !tables.length && !preview.length) {
    box.append(h('p', { class: 'muted' }, 'Reads only: no row or schema change.'));
  }
  if (ddl.length) {
    box.append(h('ul', { class: 'ddl' }, ddl.map((d) => h('li', null, ddlLine(d)))));
  }
  if (tables.length) box.append(tableSummary(tables));
  if (extra.not_executed !== undefined && extra.not_executed !== null && extra.not_executed !== '') {
    box.append(h('p', { class: 'warn' }, 'Not executed in the dry-run: ', valueText(extra.not_executed)));
  }
  if (preview.length) box.append(rowPreview(preview, num(e.preview_omitted)));
}

function ddlLine(d) {
  const parts = [];
  if (typeof d.rows === 'number' && d.rows >= 0) parts.push(plural(d.rows, 'row', 'rows'));
  const indexes = arr(d.indexes).map(valueText);
  if (indexes.length) parts.push(`${plural(indexes.length, 'index', 'indexes')}: ${indexes.join(', ')}`);
  const triggers = arr(d.triggers).map(valueText);
  if (triggers.length) parts.push(`${plural(triggers.length, 'trigger', 'triggers')}: ${triggers.join(', ')}`);
  if (str(d.detail)) parts.push(d.detail);
  const op = str(d.op);
  const destructive = /^(drop|delete|alter)/i.test(op);
  return [
    h('strong', { class: destructive ? 'op-destructive' : 'op' }, op),
    ' ',
    h('code', { class: 'object' }, str(d.object)),
    str(d.table) && d.table !== d.object ? [' on ', h('code', null, d.table)] : null,
    parts.length ? h('span', { class: 'ddl-detail' }, ` (${parts.join('; ')})`) : null,
  ];
}

function tableSummary(tables) {
  // rows_after is -1 where the connector did not count the rows.
  const withAfter = tables.some((t) => typeof t.rows_after === 'number' && t.rows_after >= 0);
  const head = ['table', 'inserted', 'updated', 'deleted', withAfter ? 'rows after' : null, ''].filter((c) => c !== null);
  const rows = tables.map((t) => {
    let note = '';
    if (t.all_rows_deleted) note = 'every row deleted';
    if (t.all_rows_updated) note = 'every row updated';
    if (t.has_primary_key === false) note = 'no PRIMARY KEY: not reversible';
    return h('tr', null,
      h('td', null, h('code', null, str(t.table))),
      h('td', { class: 'num' + (num(t.inserted) ? ' ins' : '') }, count(num(t.inserted))),
      h('td', { class: 'num' + (num(t.updated) ? ' upd' : '') }, count(num(t.updated))),
      h('td', { class: 'num' + (num(t.deleted) ? ' del' : '') }, count(num(t.deleted))),
      withAfter ? h('td', { class: 'num' }, typeof t.rows_after === 'number' && t.rows_after >= 0 ? count(t.rows_after) : '') : null,
      h('td', { class: note ? 'warn' : '' }, note));
  });
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'grid summary' },
      h('thead', null, h('tr', null, head.map((c) => h('th', null, c)))),
      h('tbody', null, rows)));
}

// One table per changed table, columns in first-seen order; an updated cell shows the old
// value struck through and the new one beside it.
function rowPreview(preview, omitted) {
  const wrap = h('div', { class: 'preview' });
  const order = [];
  for (const r of preview) if (!order.includes(str(r.table))) order.push(str(r.table));
  wrap.append(h('p', { class: 'preview-title' },
    `Rows (${plural(preview.length, 'row', 'rows')} shown` +
    (omitted > 0 ? `, ${count(omitted)} more not shown` : '') + ')'));
  for (const table of order) {
    const rows = preview.filter((r) => str(r.table) === table);
    const cols = [];
    for (const r of rows) {
      for (const obj of [r.before, r.after]) {
        if (isObj(obj)) for (const k of Object.keys(obj)) if (!cols.includes(k)) cols.push(k);
      }
    }
    const body = rows.map((r) => {
      const op = str(r.op);
      return h('tr', { class: `row-${op.replace(/[^a-z]/gi, '') || 'op'}` },
        h('td', { class: 'op' }, op),
        cols.map((c) => h('td', null, cell(r, c))));
    });
    wrap.append(h('div', { class: 'preview-table' },
      h('p', { class: 'table-name' }, h('code', null, table)),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'grid rows' },
          h('thead', null, h('tr', null, h('th', null, 'op'), cols.map((c) => h('th', null, c)))),
          h('tbody', null, body)))));
  }
  return wrap;
}

function cell(r, c) {
  const had = isObj(r.before) && Object.hasOwn(r.before, c);
  const has = isObj(r.after) && Object.hasOwn(r.after, c);
  const before = had ? valueText(r.before[c]) : '';
  const after = has ? valueText(r.after[c]) : '';
  if (had && has && before !== after) {
    return [h('del', { class: 'before' }, before), ' → ', h('ins', { class: 'after' }, after)];
  }
  return has ? after : before;
}

// ---- shell -----------------------------------------------------------------------------

const MAX_DIFF_LINES = 2000;  // in the page; the JSON has every line

function renderShell(box, e, extra) {
  const facts = [];
  const exit = `${num(extra.exit_code)}${num(extra.signal) ? ` (signal ${num(extra.signal)})` : ''}`;
  facts.push(['exit', exit]);
  if (str(extra.killed_by)) facts.push(['limit', `killed by the ${extra.killed_by} limit`]);
  if (str(extra.upper_full)) {
    facts.push(['limit', `the sandbox's ${extra.upper_full === 'files' ? 'file-count' : 'size'} cap was reached`]);
  }
  if (extra.network_attempt === true) facts.push(['network', `tried and blocked: ${str(extra.network_detail)}`]);
  const changed = num(e.files_changed);
  facts.push(['files', changed === 0 ? 'no file change'
    : `${plural(changed, 'path', 'paths')}: ${count(num(extra.added))} added, ` +
      `${count(num(extra.changed))} changed, ${count(num(extra.deleted))} deleted`]);
  for (const [key, label] of [['protected', 'protected'], ['outside_symlinks', 'symlink out'], ['refused', 'refused']]) {
    if (num(extra[`${key}_count`]) > 0) {
      for (const p of arr(extra[key])) facts.push([label, valueText(p)]);
    }
  }
  box.append(h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));

  const files = arr(e.files).filter(isObj);
  if (files.length) {
    const groups = [['added', 'Added', '+'], ['changed', 'Changed', '~'], ['deleted', 'Deleted', '−']];
    const lists = h('div', { class: 'file-groups' });
    for (const [op, title, mark] of groups) {
      const of = files.filter((f) => f.op === op);
      if (!of.length) continue;
      lists.append(h('div', { class: `file-group files-${op}` },
        h('p', { class: 'group-title' }, `${title} (${count(of.length)})`),
        h('ul', { class: 'files' }, of.map((f) => h('li', { class: `file file-${op}` },
          h('span', { class: 'mark', 'aria-hidden': 'true' }, mark), ' ',
          h('code', { class: 'path' }, str(f.path)), ' ',
          h('span', { class: 'muted' }, `(${fileDetails(f)})`))))));
    }
    const other = files.filter((f) => !['added', 'changed', 'deleted'].includes(f.op));
    if (other.length) {
      lists.append(h('ul', { class: 'files' }, other.map((f) => h('li', null,
        `${str(f.op)} `, h('code', { class: 'path' }, str(f.path))))));
    }
    box.append(lists);
    const omitted = num(e.preview_omitted);
    if (omitted > 0) {
      box.append(h('p', { class: 'muted' },
        `… ${count(omitted)} more not shown (the first ${count(files.length)} of ${count(changed)} are listed)`));
    }
  }

  // Diffs of added and changed files; a deleted file's diff is its whole pre-image, and the
  // list above already says it goes.
  const diffs = files.filter((f) => str(f.diff) && f.op !== 'deleted');
  if (diffs.length) {
    const wrap = h('div', { class: 'diffs' });
    let budget = MAX_DIFF_LINES;
    let skipped = 0;
    for (const f of diffs) {
      if (budget <= 0) {
        skipped++;
        continue;
      }
      const lines = f.diff.replace(/\n$/, '').split('\n');
      const shown = lines.slice(0, budget);
      budget -= shown.length;
      wrap.append(h('div', { class: 'diff-file' },
        h('p', { class: 'diff-name' }, h('code', null, str(f.path))),
        diffBlock(shown, lines.length - shown.length)));
    }
    if (skipped) wrap.append(h('p', { class: 'muted' }, `… diffs of ${plural(skipped, 'more file', 'more files')} not shown`));
    box.append(wrap);
  }

  for (const [key, label] of [['stdout_head', 'stdout'], ['stderr_head', 'stderr']]) {
    const text = str(extra[key]);
    if (text) {
      box.append(h('div', { class: 'output' }, h('p', { class: 'group-title' }, `${label} (in the sandbox)`),
        h('pre', { class: 'text' }, text)));
    }
  }
}

function sizeText(bytes) {
  if (typeof bytes !== 'number' || bytes < 0) return '';
  if (bytes < 10 * 1024) return plural(bytes, 'byte', 'bytes');
  if (bytes < 10 * 1024 * 1024) return `${count(Math.floor(bytes / 1024))} KiB`;
  return `${count(Math.floor(bytes / (1024 * 1024)))} MiB`;
}

function modeText(mode) {
  return typeof mode === 'number' && mode >= 0 ? (mode & 0o7777).toString(8).padStart(4, '0') : '';
}

function fileDetails(f) {
  const type = str(f.type);
  const parts = [str(f.type_before) && f.type_before !== type ? `${f.type_before} → ${type}` : type];
  if (type === 'symlink' && str(f.link_target) && f.op !== 'deleted') parts.push(`→ ${f.link_target}`);
  if (f.op === 'changed' && f.size_before >= 0 && f.size_after >= 0 && f.size_before !== f.size_after) {
    parts.push(`${sizeText(f.size_before)} → ${sizeText(f.size_after)}`);
  } else if (type === 'file') {
    parts.push(sizeText(f.op === 'deleted' ? f.size_before : f.size_after));
  }
  if (f.op === 'changed' && f.mode_before >= 0 && f.mode_after >= 0 && f.mode_before !== f.mode_after) {
    parts.push(`mode ${modeText(f.mode_before)} → ${modeText(f.mode_after)}`);
  }
  if (f.binary === true) parts.push('binary');
  return parts.filter(Boolean).join(', ');
}

function diffBlock(lines, more) {
  const pre = h('pre', { class: 'diff' });
  for (const line of lines) {
    let cls = 'ctx';
    if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ') ||
        line.startsWith('Binary') || line.startsWith('\\')) cls = 'meta';
    else if (line.startsWith('@@')) cls = 'hunk';
    else if (line.startsWith('+')) cls = 'add';
    else if (line.startsWith('-')) cls = 'del';
    pre.append(h('span', { class: `line ${cls}` }, line + '\n'));
  }
  if (more > 0) pre.append(h('span', { class: 'line meta' }, `… ${plural(more, 'more line', 'more lines')}\n`));
  return pre;
}

// ---- mail ------------------------------------------------------------------------------

function renderMail(box, action, extra) {
  const args = isObj(action.args) ? action.args : {};
  // The smtp connector lists {address, field: to|cc|bcc}; Bcc recipients are shown (and
  // counted) like the others, since the approver decides who receives the message.
  const recipients = arr(extra.recipients).map((r) => (isObj(r) && typeof r.address === 'string'
    ? (typeof r.field === 'string' ? `${r.field}: ${r.address}` : r.address)
    : valueText(r)));
  const subject = str(extra.subject) || str(args.subject);
  const body = str(extra.body) || str(args.body);
  box.append(h('dl', { class: 'facts' },
    h('dt', null, 'from'), h('dd', null, str(extra.from) || '—'),
    h('dt', null, 'to'), h('dd', null, `${plural(recipients.length, 'recipient', 'recipients')}`),
    h('dt', null, 'subject'), h('dd', { class: 'subject' }, subject)));
  box.append(h('ul', { class: 'recipients' }, recipients.map((r) => h('li', null, h('code', null, r)))));
  if (body) box.append(h('pre', { class: 'text mail-body' }, body + (extra.body_truncated === true ? '\n…' : '')));
  const attachments = arr(extra.attachments).filter(isObj);
  if (attachments.length > 0) {
    box.append(h('ul', { class: 'attachments' }, attachments.map((a) =>
      h('li', null, h('code', null, str(a.name)), ` ${valueText(a.size)} bytes, sha256 ${str(a.sha256).slice(0, 16)}`))));
  }
}
