#!/usr/bin/env node
// The client of bench/mcp_bench.sh: one process, the official TypeScript SDK's Client (from
// tests/mcp/node_modules, the version pinned there), one session per "side", and N sequential
// tools/call round trips per side, interleaved call by call: round i calls every side once, in
// an order shuffled afresh each round (a fixed seed, --seed), so that the machine's load falls on
// every side alike. A fixed cyclic order would not do that: what one side's call leaves behind
// (a server's garbage collection, a proxy's bookkeeping after its reply) would always fall on
// the call of the side after it. Only one call is in flight at any time.
//   node bench/mcp/bench_client.mjs --mcp-dir tests/mcp --sides SIDES.json [--n 2000]
//        [--warmup 200] [--tool echo] [--args '{"message":"hi"}'] [--expect 'Echo: hi']
//        [--fsync-probe DIR] [--fsync-count 200] [--seed 1] [--order shuffle|cycle]
// SIDES.json: [{name, stdio: {command, args, env, stderr}} | {name, http: URL, pid, headers?}]. A stdio
// side's process gets PATH and HOME and its env only.
// Prints one JSON object: {n, warmup, tool, sdk, order, seed, sides: {NAME: {p50_us, p90_us,
// p99_us, mean_us, min_us, max_us, init_ms, cpu_us_per_call: {self, children}}}, fsync: {...}}.
// Percentiles are nearest-rank (a real sample). cpu_us_per_call is the user+system CPU time,
// over the measured calls, of the side's server process (the stdio side's spawned process, or
// an http side's `pid`) and of all its descendants, from /proc (10 ms ticks), divided by N.
// Every reply is checked (not isError, and its text is --expect when given); one bad reply
// fails the run (exit 1).
import { performance } from "node:perf_hooks";
import { closeSync, fdatasyncSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

function usage(msg) {
  console.error(`bench_client.mjs: ${msg}`);
  process.exit(2);
}
const o = { n: 2000, warmup: 200, tool: "echo", args: '{"message":"hi"}', expect: "Echo: hi",
            fsyncCount: 200, seed: 1, order: "shuffle" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const v = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
  switch (a) {
    case "--mcp-dir": o.mcpDir = v(); break;
    case "--sides": o.sides = v(); break;
    case "--n": o.n = Number(v()); break;
    case "--warmup": o.warmup = Number(v()); break;
    case "--tool": o.tool = v(); break;
    case "--args": o.args = v(); break;
    case "--expect": o.expect = v(); break;
    case "--fsync-probe": o.fsyncDir = v(); break;
    case "--fsync-count": o.fsyncCount = Number(v()); break;
    case "--seed": o.seed = Number(v()); break;
    case "--order": o.order = v(); break;
    default: usage(`unknown argument ${a}`);
  }
}
if (!o.mcpDir || !o.sides) usage("--mcp-dir and --sides are required");
if (o.order !== "shuffle" && o.order !== "cycle") usage("--order is shuffle or cycle");
if (!Number.isInteger(o.seed)) usage("--seed needs an integer");

// mulberry32: a small seeded generator, so that a run's call order can be repeated.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(o.seed);
// Round i's order: a Fisher-Yates shuffle, or (--order cycle, the order of earlier runs) the
// sides in turn starting at side i.
function roundOrder(i, n) {
  const order = Array.from({ length: n }, (_, k) => (i + k) % n);
  if (o.order === "cycle") return order;
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [order[k], order[j]] = [order[j], order[k]];
  }
  return order;
}

// The SDK's ESM build, resolved through its package.json "exports" ("./*" -> dist/esm/*).
const sdkDir = join(o.mcpDir, "node_modules/@modelcontextprotocol/sdk");
const sdkPkg = JSON.parse(readFileSync(join(sdkDir, "package.json"), "utf8"));
const sdk = (sub) => import(pathToFileURL(join(sdkDir, sdkPkg.exports["./*"].import.replace("*", sub))).href);
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");

const specs = JSON.parse(readFileSync(o.sides, "utf8"));
const toolArgs = JSON.parse(o.args);
const sides = [];
const out = { n: o.n, warmup: o.warmup, tool: o.tool, sdk: sdkPkg.version, order: o.order,
              seed: o.seed, sides: {} };

async function open(spec) {
  let transport;
  if (spec.stdio) {
    const env = { ...(spec.stdio.env ?? {}) };
    if (process.env.PATH) env.PATH = process.env.PATH;
    if (process.env.HOME) env.HOME = process.env.HOME;
    transport = new StdioClientTransport({ command: spec.stdio.command, args: spec.stdio.args ?? [],
                                           env, stderr: spec.stdio.stderr ? openSync(spec.stdio.stderr, "a") : "inherit" });
  } else if (spec.http) {
    const requestInit = spec.headers ? { headers: spec.headers } : undefined;
    transport = new StreamableHTTPClientTransport(new URL(spec.http), { requestInit });
  } else {
    usage(`side ${spec.name}: needs stdio or http`);
  }
  const client = new Client({ name: "airlock-mcp-bench", version: "1.0.0" });
  const t0 = performance.now();
  await client.connect(transport, { timeout: 60000 });
  const initMs = performance.now() - t0;
  const pid = spec.stdio ? transport.pid : spec.pid;
  return { name: spec.name, client, transport, lat: [], initMs, pid };
}

// CPU time (µs, user + system) of PID itself and of all its descendants, from /proc.
const TICK_US = 1e6 / 100;  // USER_HZ is 100 on Linux
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * TICK_US;  // fields 14 and 15: utime, stime
  } catch { return 0; }
}
function childrenOf(pid) {
  const kids = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      if (c) kids.push(...c.split(/\s+/).map(Number));
    }
  } catch {}
  return kids;
}
function cpuTree(pid) {
  let children = 0;
  const stack = childrenOf(pid);
  while (stack.length) {
    const k = stack.pop();
    children += cpuOf(k);
    stack.push(...childrenOf(k));
  }
  return { self: cpuOf(pid), children };
}

async function call(side, record) {
  const t0 = performance.now();
  const r = await side.client.callTool({ name: o.tool, arguments: toolArgs }, undefined, { timeout: 60000 });
  const us = (performance.now() - t0) * 1000;
  const text = (r.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
  if (r.isError || (o.expect && text !== o.expect)) {
    throw new Error(`${side.name}: unexpected reply ${JSON.stringify(r).slice(0, 400)}`);
  }
  if (record) side.lat.push(us);
}

function fsyncProbe(dir, count) {
  const f = join(dir, `.fsync-probe-${process.pid}`);
  const fd = openSync(f, "w");
  const buf = Buffer.alloc(4096, 7);
  const lat = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      writeSync(fd, buf, 0, buf.length, (i % 64) * 4096);
      fdatasyncSync(fd);
      lat.push((performance.now() - t0) * 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(f, { force: true });
  }
  return stats(lat);
}

function stats(lat) {
  const s = [...lat].sort((a, b) => a - b);
  const pct = (p) => Math.round(s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]);
  return { count: s.length, p50_us: pct(50), p90_us: pct(90), p99_us: pct(99),
           mean_us: Math.round(s.reduce((x, y) => x + y, 0) / s.length),
           min_us: Math.round(s[0]), max_us: Math.round(s[s.length - 1]) };
}

let status = 0;
try {
  for (const spec of specs) sides.push(await open(spec));
  for (let i = 0; i < o.warmup + o.n; i++) {
    if (i === o.warmup) for (const s of sides) s.cpu0 = s.pid ? cpuTree(s.pid) : null;
    for (const k of roundOrder(i, sides.length)) await call(sides[k], i >= o.warmup);
  }
  for (const s of sides) {
    const r = { ...stats(s.lat), init_ms: Math.round(s.initMs * 10) / 10 };
    if (s.cpu0) {
      const c = cpuTree(s.pid);
      r.cpu_us_per_call = { self: Math.round((c.self - s.cpu0.self) / o.n),
                            children: Math.round((c.children - s.cpu0.children) / o.n) };
    }
    out.sides[s.name] = r;
  }
  if (o.fsyncDir) out.fsync = { dir: o.fsyncDir, ...fsyncProbe(o.fsyncDir, o.fsyncCount) };
} catch (e) {
  out.error = String(e?.message ?? e);
  status = 1;
}
console.log(JSON.stringify(out));
for (const s of sides) {
  try { await s.client.close(); } catch {}
}
process.exit(status);
