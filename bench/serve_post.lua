-- wrk script for bench/serve_bench.sh: every request submits the same one-row read.
-- TOKEN and SQL come from the environment (wrk passes its own args after "--").
local token = os.getenv("BENCH_TOKEN") or ""
local target = os.getenv("BENCH_TARGET") or "app-db"
local sql = os.getenv("BENCH_SQL") or "SELECT id, name FROM users WHERE id = 1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
wrk.body = '{"target":"' .. target .. '","sql":"' .. sql .. '"}'

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
