#!/usr/bin/env node
// A raw newline-delimited JSON-RPC driver (no SDK) for protocol-robustness tests of
// `airlock mcp stdio`: it writes the given lines verbatim, malformed ones included, and
// prints every line it reads back, as one JSON object on stdout.
//
//   node raw.mjs [OPTIONS] LINE...
//
// Whom it talks to: as client.mjs (default: `$AIRLOCK_BIN --config FILE mcp stdio --server
// NAME` with PATH, HOME, AIRLOCK_TOKEN and the --env pairs; --direct JSON: the upstream).
// Options: --bin, --config (--policy), --server, --token, --env K=V, --stderr FILE as in
// client.mjs, and
//   --no-init          do not do the initialize handshake first (by default an initialize
//                      request with id "init" and notifications/initialized are sent)
//   --wait MS          how long to wait for the reply to each line (default 10000; the
//                      initialize reply gets at least 60000)
// A LINE is sent as it is, followed by "\n", except:
//   @big:N             a ping request (id "big") padded to N bytes
//   @file:PATH         the contents of PATH (sent as they are; add the newline yourself)
// After each line the driver waits until a response (a message with "result" or "error")
// arrives or --wait passes; so a line that gets no answer (a notification) costs --wait.
// Output: {init, steps: [{sent, bytes, replies: [msg], texts: [line], other: [msg|{unparsed}],
//          timedOut}],
//          exit: {code, signal} | null, stderr}
// `replies` holds the responses read while waiting for that line, and `texts` their lines as
// they came, byte for byte (up to the newline); `other` holds what else
// came (notifications, server requests, lines that are not JSON).
// Exit status: 0 when every line was written, 1 otherwise, 2 on bad usage.
import { spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";

function usage(msg) {
  console.error(`raw.mjs: ${msg}\nusage: node raw.mjs [--direct JSON | --config FILE --server NAME] [--token T] [--no-init] [--wait MS] LINE...`);
  process.exit(2);
}

const opts = {
  bin: process.env.AIRLOCK_BIN,
  config: process.env.AIRLOCK_CONFIG,
  server: undefined,
  token: process.env.AIRLOCK_TOKEN,
  env: {},
  direct: undefined,
  stderr: undefined,
  init: true,
  wait: 10000,
};
const lines = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (lines.length === 0 && a.startsWith("--")) {
    switch (a) {
      case "--bin": opts.bin = val(); break;
      case "--config": case "--policy": opts.config = val(); break;
      case "--server": opts.server = val(); break;
      case "--token": opts.token = val(); break;
      case "--stderr": opts.stderr = val(); break;
      case "--no-init": opts.init = false; break;
      case "--wait": opts.wait = Number(val()); break;
      case "--direct": {
        try { opts.direct = JSON.parse(val()); } catch { usage("--direct needs a JSON array"); }
        if (!Array.isArray(opts.direct) || opts.direct.length === 0) usage("--direct needs a JSON array");
        break;
      }
      case "--env": {
        const kv = val();
        const eq = kv.indexOf("=");
        if (eq <= 0) usage(`--env needs K=V, not ${kv}`);
        opts.env[kv.slice(0, eq)] = kv.slice(eq + 1);
        break;
      }
      case "--": break;
      default: usage(`unknown option ${a}`);
    }
  } else {
    lines.push(a);
  }
}

function expand(line) {
  if (line.startsWith("@big:")) {
    const n = Number(line.slice(5));
    const head = '{"jsonrpc":"2.0","id":"big","method":"ping","params":{"pad":"';
    const tail = '"}}';
    return head + "x".repeat(Math.max(0, n - head.length - tail.length)) + tail + "\n";
  }
  if (line.startsWith("@file:")) return readFileSync(line.slice(6), "utf8");
  return line + "\n";
}

// ---- the child -----------------------------------------------------------------------------
const env = { ...opts.env };
if (process.env.PATH) env.PATH = process.env.PATH;
if (process.env.HOME) env.HOME = process.env.HOME;
let command, args;
if (opts.direct) {
  [command, ...args] = opts.direct;
} else {
  if (!opts.bin) usage("no airlock binary (--bin or AIRLOCK_BIN)");
  if (!opts.server) usage("--server NAME is required (or --direct)");
  if (opts.token !== undefined) env.AIRLOCK_TOKEN = opts.token;
  command = opts.bin;
  args = [];
  if (opts.config) args.push("--config", opts.config);
  args.push("mcp", "stdio", "--server", opts.server);
}
const child = spawn(command, args, {
  env,
  stdio: ["pipe", "pipe", opts.stderr ? openSync(opts.stderr, "a") : "pipe"],
});
let stderr = "";
if (!opts.stderr) child.stderr.on("data", (d) => { if (stderr.length < 65536) stderr += d; });
let exited = null;
const exitPromise = new Promise((resolve) => {
  child.on("exit", (code, signal) => { exited = { code, signal }; resolve(); });
  child.on("error", (e) => { exited = { code: null, signal: null, error: e.message }; resolve(); });
});
child.stdin.on("error", () => {});  // EPIPE when the child is gone: reported via `exit`

// Every line read, in order; `waiters` are woken on each.
const inbox = [];
let waiter = null;
let buf = "";
child.stdout.setEncoding("utf8");
child.stdout.on("data", (d) => {
  buf += d;
  let nl;
  while ((nl = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, nl).replace(/\r$/, "");
    buf = buf.slice(nl + 1);
    if (line === "") continue;
    let msg;
    try { msg = JSON.parse(line); } catch { msg = { unparsed: line.slice(0, 2000) }; }
    inbox.push({ msg, text: line });
    if (waiter) waiter();
  }
});
child.stdout.on("end", () => { if (waiter) waiter(); });

const isResponse = (m) => m && typeof m === "object" && !Array.isArray(m) && !("method" in m) &&
  ("result" in m || "error" in m);
const isArrayReply = (m) => Array.isArray(m);

// Waits for a response (or an array, a batch reply) or the deadline; returns what came.
async function collect(waitMs) {
  const got = { replies: [], texts: [], other: [], timedOut: false };
  const deadline = Date.now() + waitMs;
  for (;;) {
    while (inbox.length) {
      const { msg: m, text } = inbox.shift();
      if (isResponse(m) || isArrayReply(m)) {
        got.replies.push(m);
        got.texts.push(text);
        return got;
      }
      got.other.push(m);
    }
    if (exited || child.stdout.readableEnded) {
      got.timedOut = false;
      got.closed = true;
      return got;
    }
    const left = deadline - Date.now();
    if (left <= 0) { got.timedOut = true; return got; }
    await new Promise((resolve) => {
      const t = setTimeout(resolve, left);
      waiter = () => { clearTimeout(t); waiter = null; resolve(); };
    });
  }
}

function write(text) {
  return new Promise((resolve) => {
    if (exited || child.stdin.destroyed) return resolve(false);
    child.stdin.write(text, (err) => resolve(!err));
  });
}

const out = { via: opts.direct ? "direct" : "airlock", steps: [] };
let allWritten = true;
if (opts.init) {
  await write(JSON.stringify({
    jsonrpc: "2.0", id: "init", method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {},
              clientInfo: { name: "airlock-raw-test", version: "1.0.0" } },
  }) + "\n");
  const r = await collect(Math.max(opts.wait, 60000));  // start-up may be slow
  out.init = r.replies[0] ?? null;
  if (r.other.length) out.initOther = r.other;
  await write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) + "\n");
}
for (const line of lines) {
  const text = expand(line);
  const ok = await write(text);
  if (!ok) allWritten = false;
  const r = await collect(opts.wait);
  out.steps.push({
    sent: text.length > 300 ? text.slice(0, 300) + "..." : text.replace(/\n$/, ""),
    bytes: Buffer.byteLength(text),
    written: ok,
    ...r,
  });
}
// Anything left over arrives within a moment; then close stdin and let the child end.
await new Promise((r) => setTimeout(r, 100));
out.trailing = inbox.splice(0).map((e) => e.msg);
child.stdin.end();
const t = setTimeout(() => child.kill("SIGTERM"), 5000);
await exitPromise;
clearTimeout(t);
out.exit = exited;
if (!opts.stderr) out.stderr = stderr.slice(-4000);
console.log(JSON.stringify(out));
process.exit(allWritten ? 0 : 1);
