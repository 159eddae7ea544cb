// Browser tests of the approvers' web page: playwright-core drives Debian's chromium
// (headless) against a real `airlock serve` on a temporary policy, a real SQLite target
// seeded from the quick start, and a real shell target. Agents submit over the HTTP API;
// approvers act only through the page.
//
// Run by tests/browser/run.sh (ctest: browser.ui). Needs AIRLOCK_BIN; writes screenshots to
// $AIRLOCK_ARTIFACTS_DIR or, by default, test-artifacts/ beside the binary (the build
// directory).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BIN = process.env.AIRLOCK_BIN;
if (!BIN) throw new Error('AIRLOCK_BIN must name the airlock binary');
const SRC = process.env.AIRLOCK_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ARTIFACTS = process.env.AIRLOCK_ARTIFACTS_DIR ||
  path.join(path.dirname(path.resolve(BIN)), 'test-artifacts');
const CHROMIUM = process.env.AIRLOCK_CHROMIUM || '/usr/bin/chromium';
const WAIT = 30_000;         // Playwright's auto-waiting limit for one step
const TEST_TIMEOUT = 240_000;

const T = fs.mkdtempSync(path.join(os.tmpdir(), 'airlock-ui-'));
const POLICY = path.join(T, 'airlock.yaml');

const token = (who) => `alk_test_${who}_${crypto.randomBytes(8).toString('hex')}`;
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const AGENT = token('agent');
const DBA = token('dba');
const SEC = token('sec');

let server = null;
let serverLog = '';
let base = '';
let browser = null;

// ---- fixtures ----------------------------------------------------------------------------

function writePolicy() {
  fs.writeFileSync(POLICY, `version: 1
mode: enforce
store: ./state/airlock.db
agents:
  - {name: support-bot, token_sha256: "${sha256(AGENT)}", scopes: [app-db, crm-db, repo]}
approvers:
  - {name: oncall-dba, token_sha256: "${sha256(DBA)}"}
  - {name: security-lead, token_sha256: "${sha256(SEC)}"}
targets:
  app-db: {kind: sqlite, path: ./prod.db, environment: production}
  crm-db: {kind: sqlite, path: ./crm.db}
  repo: {kind: shell, workspace: ./repo, timeout: 30s}
rules:
  - {match: {target: crm-db, op: update}, risk: high, reason: "customer rows: <b>a human</b> looks first"}
  - {match: {target: repo, deletes_gt: 0}, risk: high, reason: "the repo loses files"}
approvals: {low: 0, high: 1, critical: 2, timeout: 1h}
`);
}

function seed(db) {
  execFileSync('sqlite3', [path.join(T, db)], {
    input: fs.readFileSync(path.join(SRC, 'examples/quickstart/seed.sql')),
    stdio: ['pipe', 'ignore', 'inherit'],
  });
}

function sql(db, query) {
  return execFileSync('sqlite3', [path.join(T, db), query], { encoding: 'utf8' }).trim();
}

function makeRepo() {
  const repo = path.join(T, 'repo');
  fs.mkdirSync(path.join(repo, 'src'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'README.md'), '# demo\nfoo is here\n');
  fs.writeFileSync(path.join(repo, 'src/main.c'), 'int main(void) { return 0; }\n');
}

async function startServer() {
  server = spawn(BIN, ['--config', POLICY, 'serve', '--listen', '127.0.0.1:0'], {
    cwd: T,
    env: { ...process.env, AIRLOCK_CONFIG: POLICY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout.on('data', (d) => { serverLog += d; });
  base = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`airlock serve printed no address:\n${buf}`)), 60_000);
    server.stderr.on('data', (d) => {
      serverLog += d;
      buf += d;
      const m = /airlock: serving (http:\/\/127\.0\.0\.1:\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    server.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`airlock serve exited (${code ?? sig}) before serving:\n${buf}`));
    });
  });
}

async function stopServer() {
  if (!server || server.exitCode !== null) return;
  const exited = new Promise((resolve) => server.once('exit', resolve));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

// A call to the API as an agent or approver (the test's side, not the page's).
async function call(tok, method, p, body) {
  const res = await fetch(base + p, {
    method,
    headers: { Authorization: `Bearer ${tok}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { raw: text };
  }
  return { status: res.status, json };
}

async function submitPending(body, risk) {
  const r = await call(AGENT, 'POST', '/v1/actions', body);
  assert.equal(r.status, 202, `submission should wait for approval: ${JSON.stringify(r.json)}`);
  assert.equal(r.json.status, 'pending');
  assert.equal(r.json.risk, risk);
  return r.json;
}

async function actionStatus(id) {
  const r = await call(DBA, 'GET', `/v1/actions/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.status;
}

// The seq of the audit chain's last event.
async function auditHead() {
  let after = 0;
  for (;;) {
    const r = await call(DBA, 'GET', `/v1/audit?after=${after}&limit=10000`);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    if (r.json.next_after === after) return after;
    after = r.json.next_after;
  }
}

// Polls fn until it returns something truthy (Playwright's waits cannot look back at what
// already happened).
async function until(fn, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

// ---- the page ------------------------------------------------------------------------------

// A fresh browser context (its own sessionStorage) watching for anything that would mean
// script ran or the page broke: dialogs, uncaught errors, CSP violations.
async function openPage(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const watch = { dialogs: [], errors: [], csp: [], requests: [] };
  page.on('dialog', (d) => {
    watch.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => watch.errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) watch.csp.push(m.text());
  });
  page.on('request', (r) => watch.requests.push({ url: r.url(), headers: r.headers() }));
  return { context, page, watch };
}

async function signIn(page, tok, name) {
  await page.goto(base + '/');
  await page.fill('#token', tok);
  await page.click('#signin-button');
  await page.waitForFunction((n) => document.getElementById('whoami')?.textContent === n, name);
}

const card = (page, id) => page.locator(`#pending-list article.card[data-id="${id}"]`);
const entry = (page, id) => page.locator(`#history-list details.entry[data-id="${id}"]`);

function assertClean(watch) {
  assert.deepEqual(watch.dialogs, [], 'no dialog may open');
  assert.deepEqual(watch.errors, [], 'no uncaught error in the page');
  assert.deepEqual(watch.csp, [], 'no Content-Security-Policy violation');
}

async function shot(locator, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  await locator.screenshot({ path: file });
  assert.ok(fs.statSync(file).size > 1000, `${file} holds an image`);
}

// ---- set-up ----------------------------------------------------------------------------------

before(async () => {
  writePolicy();
  seed('prod.db');
  seed('crm.db');
  makeRepo();
  await startServer();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  if (browser) await browser.close();
  await stopServer();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, 'ui-server.log'), serverLog);
  fs.rmSync(T, { recursive: true, force: true });
});

// ---- tests -----------------------------------------------------------------------------------

test('sign-in: bad and agent tokens are refused, the token stays in a header, sign-out forgets it', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page, watch } = await openPage();
  const res = await page.goto(base + '/');
  // The page must work under the server's strict CSP (no inline script or style, no eval).
  assert.match(res.headers()['content-security-policy'] || '', /script-src 'self'/);
  await page.fill('#token', 'alk_test_nobody_0000');
  await page.click('#signin-button');
  await page.locator('#signin-error', { hasText: 'does not know this token' }).waitFor();

  await page.fill('#token', AGENT);
  await page.click('#signin-button');
  await page.locator('#signin-error', { hasText: 'for approvers' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'an agent token is not kept');

  await signIn(page, DBA, 'oncall-dba');
  // Nothing submitted yet: the empty state.
  await page.locator('#pending-empty', { hasText: 'Nothing waits for approval' }).waitFor();
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('airlock.token')), DBA);
  const api = watch.requests.filter((r) => r.url.includes('/v1/'));
  assert.ok(api.length >= 2, 'the page called the API');
  for (const r of watch.requests) assert.ok(!r.url.includes(DBA) && !r.url.includes(AGENT), `no token in ${r.url}`);
  for (const r of api) assert.match(r.headers.authorization || '', /^Bearer alk_test_/, `${r.url} carries the bearer header`);

  // A reload keeps the session (sessionStorage); signing out forgets the token.
  await page.reload();
  await page.waitForFunction(() => document.getElementById('whoami')?.textContent === 'oncall-dba');
  await page.click('#sign-out');
  await page.locator('#signin-form').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('airlock.token')), null);
  assertClean(watch);
  await context.close();
});

test('live stream: a dropped /v1/events is reopened with Last-Event-ID and updates keep coming', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page, watch } = await openPage();
  const requests = [];
  page.on('request', (r) => requests.push(r));
  // The dropped stream's last event is the chain's real head: the reopened stream resumes
  // after it (a resume point past the head would be moved back to it by the server).
  const head = await auditHead();
  let dropped = false;
  await page.route('**/v1/events*', async (route) => {
    if (dropped) {
      await route.continue();
      return;
    }
    dropped = true;
    // The first stream delivers one event and ends, as a dropped connection would.
    await route.fulfill({
      status: 200,
      headers: { 'Content-Type': 'text/event-stream' },
      body: `: keep-alive\n\nid: ${head}\nevent: pending\ndata: {"seq":${head},"event":"pending"}\n\n`,
    });
  });
  const resumed = page.waitForRequest((r) => r.url().endsWith('/v1/events') && r.headers()['last-event-id'] === String(head));
  await signIn(page, DBA, 'oncall-dba');
  const req = await resumed;
  assert.equal(req.headers().authorization, `Bearer ${DBA}`);
  await page.locator('#live.live-live').waitFor();
  // Once live again, the page reloads the queue (for what it missed while down). The action
  // is submitted after that reload has its answer, so only the stream can bring it.
  const reload = await until(() => requests.slice(requests.indexOf(req) + 1)
    .find((r) => r.url().includes('/v1/actions?status=pending')), 'the queue is reloaded once live');
  assert.ok(await reload.response(), 'the reload was answered');

  const action = await submitPending({ target: 'crm-db', sql: 'UPDATE users SET balance_cents = 5 WHERE id=5' }, 'high');
  const c = card(page, action.id);
  await c.waitFor();
  await c.locator('button.reject').click();
  await c.waitFor({ state: 'detached' });
  assert.equal(await actionStatus(action.id), 'rejected');
  assertClean(watch);
  await context.close();
});

test('API errors are shown: a vote on an action decided elsewhere reports the server\'s conflict', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page, watch } = await openPage();
  // Without the live stream the page cannot learn of the other decision before the click.
  await page.route('**/v1/events*', (route) => route.abort());
  const action = await submitPending({ target: 'crm-db', sql: 'UPDATE users SET balance_cents = 1 WHERE id=3' }, 'high');
  await signIn(page, DBA, 'oncall-dba');
  const c = card(page, action.id);
  await c.waitFor();
  const other = await call(SEC, 'POST', `/v1/actions/${action.id}/reject`, { reason: 'not today' });
  assert.equal(other.status, 200, JSON.stringify(other.json));

  await c.locator('button.approve').click();
  await page.locator('#banner', { hasText: `Approving ${action.id} failed:` }).waitFor();
  const shown = await page.locator('#banner-text').textContent();
  const again = await call(DBA, 'POST', `/v1/actions/${action.id}/approve`, {});
  assert.equal(again.status, 409);
  assert.ok(shown.includes(again.json.error.message), `the API's message is shown: ${shown}`);
  assert.match(shown, /\(conflict\)$/);
  // The refresh after the failed vote drops the decided action from the queue.
  await c.waitFor({ state: 'detached' });
  assertClean(watch);
  await context.close();
});

test('DROP TABLE users: two approvers approve in the page, it is applied, then rolled back from History', { timeout: TEST_TIMEOUT }, async () => {
  const one = await openPage({ viewport: { width: 1280, height: 900 } });
  await signIn(one.page, DBA, 'oncall-dba');

  const action = await submitPending({ target: 'app-db', sql: 'DROP TABLE users' }, 'critical');
  const c1 = card(one.page, action.id);
  // The queue updates live: the card appears without a reload.
  await c1.waitFor();
  assert.equal(await c1.locator('.action-text').textContent(), 'DROP TABLE users');
  assert.equal(await c1.locator('.badge.risk').first().textContent(), 'CRITICAL');
  assert.equal(await c1.locator('.agent').textContent(), 'support-bot');
  assert.match(await c1.locator('.target').textContent(), /^app-db/);
  assert.ok(await c1.locator('.reasons li').count() >= 1, 'the reasons for the risk are listed');
  const effect = await c1.locator('.effect').innerText();
  assert.match(effect, /drop_table users/, effect);
  assert.match(effect, /\busers\b/, effect);
  assert.match(effect, /1,204 rows/, effect);
  assert.match(await c1.locator('.votes-count').textContent(), /0 of 2 approvals · 2 more needed/);
  assert.match(await c1.locator('.expiry').textContent(), /expires in \d/);

  await shot(one.page.locator('#pending-view'), 'ui-pending-queue.png');
  await shot(c1.locator('.effect-wrap'), 'ui-effect-preview-drop-table.png');

  await c1.locator('input.reason').fill('checked with the team');
  await c1.locator('button.approve').click();
  await c1.locator('.votes-count', { hasText: '1 of 2 approvals · 1 more needed' }).waitFor();
  assert.ok(await c1.locator('button.approve').isDisabled(), 'one approver votes once');
  assert.equal(await actionStatus(action.id), 'pending');

  const two = await openPage();
  await signIn(two.page, SEC, 'security-lead');
  const c2 = card(two.page, action.id);
  await c2.locator('.vote-list', { hasText: 'approved by oncall-dba' }).waitFor();
  await c2.locator('button.approve').click();
  await two.page.locator('#notice', { hasText: `Approved ${action.id}: now applied` }).waitFor();
  await c2.waitFor({ state: 'detached' });
  // The first approver's page learns of it over /v1/events.
  await c1.waitFor({ state: 'detached' });

  assert.equal(await actionStatus(action.id), 'applied');
  assert.equal(sql('prod.db', "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='users'"), '0');

  // History, filtered by status, agent and target; roll back from there.
  await one.page.click('#tabs a[data-view="history"]');
  await one.page.selectOption('#filter-status', 'applied');
  await one.page.fill('#filter-agent', 'support-bot');
  await one.page.fill('#filter-target', 'app-db');
  await one.page.click('#history-filters button[type="submit"]');
  const e1 = entry(one.page, action.id);
  await e1.locator('summary').click();
  await e1.locator('.action-text', { hasText: 'DROP TABLE users' }).waitFor();
  await e1.locator('button.rollback').click();
  await e1.locator('input[name="rollback-reason"]').fill('restore the table');
  await e1.locator('button.confirm-rollback').click();
  await one.page.locator('#notice', { hasText: `Rolled back ${action.id}: now rolled back` }).waitFor();

  assert.equal(await actionStatus(action.id), 'rolled_back');
  assert.equal(sql('prod.db', 'SELECT count(*) FROM users'), '1204');

  await one.page.selectOption('#filter-status', 'rolled_back');
  await e1.locator('.badge.status', { hasText: 'rolled back' }).waitFor();
  assert.equal(await e1.locator('button.rollback').count(), 0, 'a rolled-back action offers no rollback');
  await shot(one.page.locator('body'), 'ui-history.png');

  assertClean(one.watch);
  assertClean(two.watch);
  await one.context.close();
  await two.context.close();
});

test('agent-written HTML in SQL, file names, diffs and reasons renders as text and never runs', { timeout: TEST_TIMEOUT }, async () => {
  const IMG = '<img src=x onerror=alert(1)>';
  const SCRIPT_FILE = '<script>alert(1)</script>.txt';
  const update = `UPDATE users SET name='${IMG}' WHERE id=1`;
  const sqlAction = await submitPending({ target: 'crm-db', sql: update }, 'high');
  // The name holds a '/', so its first part is a directory: the file's path is exactly
  // SCRIPT_FILE. Its content is HTML too (it shows in the diff), and removing README.md
  // makes the action high (the policy's deletes_gt rule), so it waits.
  const shellAction = await submitPending({
    target: 'repo',
    command: ['sh', '-c', `mkdir -p '<script>alert(1)<' && printf '%s\\n' '<img src=x onerror=alert(3)>' > '${SCRIPT_FILE}' && rm README.md`],
  }, 'high');

  const { context, page, watch } = await openPage({ viewport: { width: 1280, height: 900 } });
  await signIn(page, DBA, 'oncall-dba');

  const cs = card(page, sqlAction.id);
  await cs.waitFor();
  assert.equal(await cs.locator('.action-text').textContent(), update);
  await cs.locator('ins.after', { hasText: IMG }).waitFor();
  assert.equal(await cs.locator('ins.after').first().textContent(), IMG);
  await cs.locator('.reasons li', { hasText: 'customer rows: <b>a human</b> looks first' }).waitFor();
  await shot(cs.locator('.effect-wrap'), 'ui-effect-preview-sql-rows.png');

  const ck = card(page, shellAction.id);
  await ck.waitFor();
  assert.match(await ck.locator('.action-text').textContent(), /<script>alert\(1\)<\/script>\.txt/);
  const added = ck.locator('.files-added code.path', { hasText: SCRIPT_FILE });
  await added.waitFor();
  assert.equal(await added.textContent(), SCRIPT_FILE);
  await ck.locator('.files-deleted code.path', { hasText: 'README.md' }).waitFor();
  await ck.locator('pre.diff .add', { hasText: '+<img src=x onerror=alert(3)>' }).waitFor();
  await ck.locator('.diff-name code', { hasText: SCRIPT_FILE }).waitFor();
  assert.ok(await page.getByText(SCRIPT_FILE, { exact: true }).first().isVisible());
  await shot(ck.locator('.effect-wrap'), 'ui-effect-preview-shell.png');

  const checkNoInjection = async () => {
    assert.equal(await page.locator('img').count(), 0, 'no <img> element exists');
    assert.equal(await page.locator('img[src=x]').count(), 0);
    assert.equal(await page.locator('main script, main b').count(), 0, 'no injected element');
    const scripts = await page.evaluate(() => [...document.scripts].map((s) => s.getAttribute('src')));
    assert.deepEqual(scripts, ['/ui/app.js'], 'the page\'s own module is the only script');
  };
  await checkNoInjection();

  // Reject the shell action with a reason: nothing reaches the workspace.
  await ck.locator('input.reason').fill('<i>no</i> thanks');
  await ck.locator('button.reject').click();
  await ck.waitFor({ state: 'detached' });
  assert.equal(await actionStatus(shellAction.id), 'rejected');
  assert.ok(fs.existsSync(path.join(T, 'repo/README.md')), 'README.md is still there');
  assert.ok(!fs.existsSync(path.join(T, 'repo', SCRIPT_FILE)), 'the file was not created');

  // Approve the SQL one; History shows the stored value as text too.
  await cs.locator('button.approve').click();
  await cs.waitFor({ state: 'detached' });
  assert.equal(await actionStatus(sqlAction.id), 'applied');
  assert.equal(sql('crm.db', 'SELECT name FROM users WHERE id=1'), IMG);
  await page.click('#tabs a[data-view="history"]');
  const e = entry(page, sqlAction.id);
  await e.locator('summary').click();
  await e.locator('ins.after', { hasText: IMG }).waitFor();
  const rejected = entry(page, shellAction.id);
  await rejected.locator('summary').click();
  await rejected.locator('.vote-list q', { hasText: '<i>no</i> thanks' }).waitFor();
  await checkNoInjection();
  assert.equal(await page.locator('main i').count(), 0);

  assertClean(watch);
  await context.close();
});

test('phone screen: the queue fits and Approve is visible and usable', { timeout: TEST_TIMEOUT }, async () => {
  const action = await submitPending({ target: 'crm-db', sql: "UPDATE users SET balance_cents = 0 WHERE id=2" }, 'high');
  const { context, page, watch } = await openPage({
    viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
  });
  await signIn(page, SEC, 'security-lead');
  const c = card(page, action.id);
  await c.waitFor();
  const approve = c.locator('button.approve');
  await approve.scrollIntoViewIfNeeded();
  assert.ok(await approve.isVisible());
  const box = await approve.boundingBox();
  assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `Approve is inside the screen: ${JSON.stringify(box)}`);
  assert.ok(box.height >= 40, `Approve is big enough to tap: ${JSON.stringify(box)}`);
  const rejectBox = await c.locator('button.reject').boundingBox();
  assert.ok(rejectBox.x + rejectBox.width <= 390, 'Reject is inside the screen');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the page does not scroll sideways (scrollWidth ${width})`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'ui-phone-queue.png') });

  await approve.tap();
  await c.waitFor({ state: 'detached' });
  assert.equal(await actionStatus(action.id), 'applied');
  await page.locator('#pending-empty').waitFor();
  assertClean(watch);
  await context.close();
});

test('audit view: the chain verifies and the latest events are listed, also per action', { timeout: TEST_TIMEOUT }, async () => {
  const r = await call(AGENT, 'POST', '/v1/actions', { target: 'crm-db', sql: "INSERT INTO payments(user_id, amount_cents, state) VALUES (3, 100, 'new')" });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.status, 'applied');

  const { context, page, watch } = await openPage();
  await signIn(page, DBA, 'oncall-dba');
  await page.click('#tabs a[data-view="audit"]');
  await page.locator('#verify-result.good', { hasText: 'Chain intact' }).waitFor();
  await page.locator('#audit-rows tr', { hasText: r.json.id }).first().waitFor();
  assert.ok(await page.locator('#audit-rows tr').count() > 5, 'several events are listed');

  await page.fill('#audit-action', r.json.id);
  await page.click('#audit-filters button[type="submit"]');
  await page.locator('#audit-summary', { hasText: `of ${r.json.id}` }).waitFor();
  const events = await page.locator('#audit-rows tr td:nth-child(3)').allTextContents();
  assert.ok(events.includes('applied'), `the action's events include applied: ${events}`);
  const actions = await page.locator('#audit-rows tr td:nth-child(5)').allTextContents();
  assert.ok(actions.every((a) => a === r.json.id), 'only that action\'s events');
  await shot(page.locator('body'), 'ui-audit.png');

  // A new event reaches the open audit view live.
  await page.click('#audit-clear');
  const r2 = await call(AGENT, 'POST', '/v1/actions', { target: 'crm-db', sql: "INSERT INTO payments(user_id, amount_cents, state) VALUES (4, 200, 'new')" });
  assert.equal(r2.json.status, 'applied');
  await page.locator('#audit-rows tr', { hasText: r2.json.id }).first().waitFor();
  assertClean(watch);
  await context.close();
});

// Hostile recipients, subject and body are fed to the page's own renderer by hand (the smtp
// connector refuses such addresses before any effect exists), to prove that they show as
// text; plain strings as recipients are accepted too, besides the connector's
// {address, field} objects.
test('mail effect: recipients, subject and body render as text (the renderer, fed by hand)', { timeout: TEST_TIMEOUT }, async () => {
  const { context, page, watch } = await openPage();
  await page.goto(base + '/');
  const out = await page.evaluate(async () => {
    const { renderEffect } = await import('/ui/effect.js');
    const el = renderEffect({
      status: 'pending',
      kind: 'smtp',
      args: {},
      effect: {
        kind: 'smtp',
        extra: {
          from: 'support@example.com',
          recipients: ['a@example.com', '<img src=x onerror=alert(1)>@example.com'],
          subject: '<script>alert(2)</script> your invoice',
          body: 'Hello <b>there</b>\nline two',
        },
      },
    });
    document.querySelector('main').append(el);
    return {
      recipients: [...el.querySelectorAll('.recipients li')].map((li) => li.textContent),
      subject: el.querySelector('.subject').textContent,
      body: el.querySelector('.mail-body').textContent,
      text: el.innerText,
      injected: el.querySelectorAll('img, script, b').length,
    };
  });
  assert.deepEqual(out.recipients, ['a@example.com', '<img src=x onerror=alert(1)>@example.com']);
  assert.equal(out.subject, '<script>alert(2)</script> your invoice');
  assert.equal(out.body, 'Hello <b>there</b>\nline two');
  assert.match(out.text, /2 recipients/);
  assert.equal(out.injected, 0);
  assert.equal(await page.locator('img').count(), 0);
  assertClean(watch);
  await context.close();
});
