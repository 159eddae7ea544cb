#!/usr/bin/env node
// An MCP client driver (the official TypeScript SDK's Client over stdio) for the end-to-end
// tests of `airlock mcp stdio` (tests/blackbox/mcp_test.sh) and for benchmarks. It runs one
// scenario and prints one JSON object on stdout; the shell test makes the assertions.
//
//   node client.mjs [OPTIONS] SCENARIO [ARGS...]
//
// Whom it talks to:
//   (default)          spawns `$AIRLOCK_BIN --config FILE mcp stdio --server NAME` with an
//                      environment of PATH, HOME, AIRLOCK_TOKEN and the --env pairs only
//   --direct JSON      spawns the upstream itself instead, e.g.
//                      --direct '["node","tests/mcp/mail_server.mjs"]' (no airlock in between)
//   --url URL          streamable HTTP instead of stdio: `airlock serve`'s
//                      http://HOST:PORT/mcp/NAME, with --token as the bearer token
// Options:
//   --bin PATH         the airlock binary (default $AIRLOCK_BIN)
//   --config FILE      the policy file (alias --policy; default $AIRLOCK_CONFIG)
//   --server NAME      the MCP server's name in the policy
//   --token T          AIRLOCK_TOKEN for airlock (default $AIRLOCK_TOKEN)
//   --env K=V          one more environment variable for the spawned process (repeatable)
//   --timeout MS       per-request timeout (default 120000)
//   --stderr FILE      append the spawned process's stderr to FILE (default: inherit)
//   --list             do a tools/list first, whatever the scenario: `tools` and `toolsFull`
//                      in the output (as the `list` scenario)
// Scenarios:
//   list                              tools/list: {tools: [names], toolsFull: [...]}
//   ping                              {ping: {ok}}
//   call TOOL [ARGS_JSON] [--progress]   one tools/call: {call: STEP}
//   calls TOOL ARGS_JSON [TOOL ARGS_JSON ...]   several calls in one session: {calls: [STEP]}
//   loop N TOOL ARGS_JSON             N calls of one tool in one session; "{i}" in ARGS_JSON
//                                     is replaced by the call's number (1..N): {loop: [STEP]}
//   everything                        server-everything pass-through in one session: ping,
//                                     prompts, resources, echo, progress, sampling,
//                                     elicitation, roots, completion: {steps: {NAME: STEP}}
//   bench N [TOOL ARGS_JSON]          N sequential calls (default echo {"message":"hi"}),
//                                     latency percentiles in microseconds: {bench: {...}}
// STEP = {ok: true, result, ms, progress: [...]} or {ok: false, error: {code, message, data}, ms}.
// The output also has `serverRequests` (sampling/elicitation/roots requests the client got),
// `notifications` (every other notification) and `initialize` (server info, capabilities).
// Exit status: 0 when the scenario ran (whatever the calls answered), 1 when the session could
// not be set up, 2 on bad usage.
import { performance } from "node:perf_hooks";
import { openSync } from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

export const SAMPLING_REPLY = "airlock test model says hello";
export const ELICIT_NAME = "Airlock Tester";
export const ROOT_URI = "file:///tmp/airlock-mcp-test-root";

function usage(msg) {
  console.error(`client.mjs: ${msg}\nusage: node client.mjs [--direct JSON | --config FILE --server NAME] [--token T] [--env K=V]... SCENARIO [ARGS...]`);
  process.exit(2);
}

// ---- arguments -----------------------------------------------------------------------------
const opts = {
  bin: process.env.AIRLOCK_BIN,
  config: process.env.AIRLOCK_CONFIG,
  server: undefined,
  token: process.env.AIRLOCK_TOKEN,
  env: {},
  timeout: 120000,
  direct: undefined,
  url: undefined,
  stderr: undefined,
  list: false,
};
const rest = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (rest.length === 0 && a.startsWith("--") && a !== "--progress") {
    switch (a) {
      case "--bin": opts.bin = val(); break;
      case "--config": case "--policy": opts.config = val(); break;
      case "--server": opts.server = val(); break;
      case "--token": opts.token = val(); break;
      case "--timeout": opts.timeout = Number(val()); break;
      case "--stderr": opts.stderr = val(); break;
      case "--list": opts.list = true; break;
      case "--url": opts.url = val(); break;
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
      default: usage(`unknown option ${a}`);
    }
  } else {
    rest.push(a);
  }
}
const [scenario, ...sargs] = rest;
if (!scenario) usage("no scenario");

function parseJsonArg(s, what) {
  if (s === undefined) return {};
  try { return JSON.parse(s); } catch (e) { usage(`${what} is not JSON: ${e.message}`); }
}

// ---- the session ---------------------------------------------------------------------------
const out = { scenario, via: opts.direct ? "direct" : opts.url ? "http" : "airlock" };
const serverRequests = [];
const notifications = [];

function transportParams() {
  const stderr = opts.stderr ? openSync(opts.stderr, "a") : "inherit";
  // Only what we list here reaches the child (and the SDK's default PATH, HOME, LOGNAME,
  // SHELL, TERM, USER): the tests check what airlock passes on to the upstream.
  const env = { ...opts.env };
  if (process.env.PATH) env.PATH = process.env.PATH;
  if (process.env.HOME) env.HOME = process.env.HOME;
  if (opts.direct) {
    return { command: opts.direct[0], args: opts.direct.slice(1), env, stderr };
  }
  if (!opts.bin) usage("no airlock binary (--bin or AIRLOCK_BIN)");
  if (!opts.server) usage("--server NAME is required (or --direct)");
  if (opts.token !== undefined) env.AIRLOCK_TOKEN = opts.token;
  const args = [];
  if (opts.config) args.push("--config", opts.config);
  args.push("mcp", "stdio", "--server", opts.server);
  return { command: opts.bin, args, env, stderr };
}

const client = new Client(
  { name: "airlock-test-client", version: "1.0.0" },
  {
    capabilities: {
      sampling: {},
      elicitation: {},
      roots: { listChanged: true },
    },
  },
);
client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
  serverRequests.push({ method: req.method, params: req.params });
  return {
    role: "assistant",
    content: { type: "text", text: SAMPLING_REPLY },
    model: "airlock-test-model",
    stopReason: "endTurn",
  };
});
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  serverRequests.push({ method: req.method, params: req.params });
  return { action: "accept", content: { name: ELICIT_NAME, check: true } };
});
client.setRequestHandler(ListRootsRequestSchema, async (req) => {
  serverRequests.push({ method: req.method, params: req.params ?? null });
  return { roots: [{ uri: ROOT_URI, name: "airlock-test-root" }] };
});
client.fallbackNotificationHandler = async (n) => {
  notifications.push({ method: n.method, params: n.params ?? null });
};

function errorJson(e) {
  const err = { message: String(e?.message ?? e) };
  if (typeof e?.code === "number") err.code = e.code;
  if (e?.data !== undefined) err.data = e.data;
  return err;
}

// Runs one request; never throws. `progress` collects the progress notifications of it.
async function step(fn, { progress = false } = {}) {
  const rec = { ok: false, ms: 0 };
  const prog = [];
  const reqOpts = { timeout: opts.timeout, maxTotalTimeout: opts.timeout };
  if (progress) {
    reqOpts.onprogress = (p) => prog.push(p);
    reqOpts.resetTimeoutOnProgress = true;
  }
  const t0 = performance.now();
  try {
    rec.result = await fn(reqOpts);
    rec.ok = true;
  } catch (e) {
    rec.error = errorJson(e);
  }
  rec.ms = Math.round((performance.now() - t0) * 1000) / 1000;
  if (progress) rec.progress = prog;
  return rec;
}

// A tool call's record: the whole CallToolResult plus `text` (its text parts joined).
async function callTool(name, args, { progress = false } = {}) {
  const rec = await step((o) => client.callTool({ name, arguments: args }, undefined, o), { progress });
  rec.tool = name;
  if (rec.ok) {
    rec.isError = rec.result.isError === true;
    rec.text = (rec.result.content ?? [])
      .filter((c) => c.type === "text")
      .map((c) => c.text)
      .join("\n");
  }
  return rec;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function everything() {
  const steps = {};
  steps.ping = await step((o) => client.ping(o));
  steps.prompts_list = await step((o) => client.listPrompts({}, o));
  steps.prompts_get = await step((o) => client.getPrompt({ name: "simple-prompt" }, o));
  steps.prompts_get_args = await step((o) =>
    client.getPrompt({ name: "args-prompt", arguments: { city: "Paris", state: "TX" } }, o));
  steps.complete = await step((o) =>
    client.complete({ ref: { type: "ref/prompt", name: "completable-prompt" },
                      argument: { name: "department", value: "E" } }, o));
  steps.resources_list = await step((o) => client.listResources({}, o));
  const first = steps.resources_list.ok ? steps.resources_list.result.resources?.[0] : undefined;
  steps.resources_read = first
    ? await step((o) => client.readResource({ uri: first.uri }, o))
    : { ok: false, error: { message: "resources/list gave no resource" }, ms: 0 };
  if (first) steps.resources_read.uri = first.uri;
  steps.resource_templates = await step((o) => client.listResourceTemplates({}, o));
  steps.resources_read_template = await step((o) =>
    client.readResource({ uri: "demo://resource/dynamic/text/1" }, o));
  steps.tools_list = await step((o) => client.listTools({}, o));
  steps.echo = await callTool("echo", { message: "hello through airlock" });
  steps.progress = await callTool("trigger-long-running-operation", { duration: 1.5, steps: 3 }, { progress: true });
  steps.sampling = await callTool("trigger-sampling-request", { prompt: "say hello", maxTokens: 20 });
  steps.elicitation = await callTool("trigger-elicitation-request", {});
  steps.roots = await callTool("get-roots-list", {});
  steps.structured = await callTool("get-structured-content", { location: "New York" });
  steps.ping_end = await step((o) => client.ping(o));
  out.steps = steps;
  out.summary = {
    ping: steps.ping.ok && steps.ping_end.ok,
    prompts: steps.prompts_list.ok && (steps.prompts_list.result.prompts?.length ?? 0) > 0 &&
      steps.prompts_get.ok && JSON.stringify(steps.prompts_get.result).includes("simple prompt"),
    resources: steps.resources_list.ok && steps.resources_read.ok &&
      (steps.resources_read.result.contents?.length ?? 0) > 0,
    echo: steps.echo.ok && steps.echo.text === "Echo: hello through airlock",
    progress: steps.progress.ok && !steps.progress.isError && steps.progress.progress.length > 0,
    sampling: steps.sampling.ok && !steps.sampling.isError && steps.sampling.text.includes(SAMPLING_REPLY),
    elicitation: steps.elicitation.ok && !steps.elicitation.isError && steps.elicitation.text.includes(ELICIT_NAME),
    roots: steps.roots.ok && !steps.roots.isError && steps.roots.text.includes(ROOT_URI),
  };
}

async function bench(n, tool, args) {
  const lat = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await client.callTool({ name: tool, arguments: args }, undefined, { timeout: opts.timeout });
    const us = (performance.now() - t0) * 1000;
    if (r.isError) throw new Error(`call ${i + 1} is an error: ${JSON.stringify(r.content)}`);
    lat.push(us);
  }
  lat.sort((a, b) => a - b);
  const pct = (p) => Math.round(lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]);
  out.bench = { n, tool, p50_us: pct(50), p90_us: pct(90), p99_us: pct(99),
                min_us: Math.round(lat[0]), max_us: Math.round(lat[lat.length - 1]) };
}

// ---- main ----------------------------------------------------------------------------------
let transport;
try {
  if (opts.url) {
    const headers = opts.token !== undefined ? { Authorization: `Bearer ${opts.token}` } : {};
    transport = new StreamableHTTPClientTransport(new URL(opts.url), { requestInit: { headers } });
  } else {
    transport = new StdioClientTransport(transportParams());
  }
  transport.onclose = () => { out.transportClosed = true; };
  const t0 = performance.now();
  await client.connect(transport, { timeout: opts.timeout });
  out.initialize = {
    ms: Math.round((performance.now() - t0) * 1000) / 1000,
    serverInfo: client.getServerVersion() ?? null,
    capabilities: client.getServerCapabilities() ?? null,
    instructions: client.getInstructions() ?? null,
  };
} catch (e) {
  out.connectError = errorJson(e);
  out.serverRequests = serverRequests;
  out.notifications = notifications;
  console.log(JSON.stringify(out));
  try { await transport?.close(); } catch {}
  process.exit(1);
}

async function listTools() {
  const r = await step((o) => client.listTools({}, o));
  out.list = r;
  out.tools = r.ok ? r.result.tools.map((t) => t.name).sort() : null;
  out.toolsFull = r.ok ? r.result.tools : null;
}

let status = 0;
try {
  if (opts.list && scenario !== "list") await listTools();
  switch (scenario) {
    case "list":
      await listTools();
      break;
    case "ping":
      out.ping = await step((o) => client.ping(o));
      break;
    case "call": {
      const progress = sargs.includes("--progress");
      const a = sargs.filter((s) => s !== "--progress");
      if (!a[0]) usage("call TOOL [ARGS_JSON]");
      out.call = await callTool(a[0], parseJsonArg(a[1], "ARGS_JSON"), { progress });
      break;
    }
    case "calls": {
      if (sargs.length === 0 || sargs.length % 2 !== 0) usage("calls TOOL ARGS_JSON [TOOL ARGS_JSON ...]");
      out.calls = [];
      for (let i = 0; i < sargs.length; i += 2) {
        out.calls.push(await callTool(sargs[i], parseJsonArg(sargs[i + 1], "ARGS_JSON")));
      }
      break;
    }
    case "loop": {
      const n = Number(sargs[0]);
      if (!(n > 0) || !sargs[1]) usage("loop N TOOL ARGS_JSON");
      out.loop = [];
      for (let i = 1; i <= n; i++) {
        const args = parseJsonArg((sargs[2] ?? "{}").replaceAll("{i}", String(i)), "ARGS_JSON");
        const r = await callTool(sargs[1], args);
        delete r.result;  // keep the output small: isError and text say enough
        out.loop.push(r);
      }
      out.summary = {
        ok: out.loop.filter((r) => r.ok && !r.isError).length,
        isError: out.loop.filter((r) => r.ok && r.isError).length,
        rpcError: out.loop.filter((r) => !r.ok).length,
      };
      break;
    }
    case "everything":
      await everything();
      break;
    case "bench": {
      const n = Number(sargs[0] ?? 1000);
      await bench(n, sargs[1] ?? "echo", parseJsonArg(sargs[2] ?? '{"message":"hi"}', "ARGS_JSON"));
      break;
    }
    default:
      usage(`unknown scenario ${scenario}`);
  }
} catch (e) {
  out.scenarioError = errorJson(e);
  status = 1;
}
await sleep(0);
if (opts.url) {
  // Ends the session on airlock's side (DELETE), as a client that is done does.
  out.sessionId = transport.sessionId ?? null;
  try { await transport.terminateSession(); out.terminated = true; }
  catch (e) { out.terminated = false; out.terminateError = errorJson(e); }
}
out.serverRequests = serverRequests;
out.notifications = notifications;
console.log(JSON.stringify(out));
try { await client.close(); } catch {}
process.exit(status);
