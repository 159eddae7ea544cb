-- wrk script for bench/serve_bench.sh: every request submits the same one-row read.
-- TOKEN and SQL come from the environment (wrk passes its own args after "--").
local token = os.getenv("BENCH_TOKEN") or ""
local target = os.getenv("BENCH_TARGET") or "app-db"
local sql = os.getenv("BENCH_SQL") or "SELECT id, name FROM users WHERE id = 1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
wrk.body = '{"target":"' .. target .. '","sql":"' .. sql .. '"}'

-- BENCH_DELAY_MS (optional, may be fractional): each connection waits this long on average
-- after an answer before it sends its next request, so that the clients offer a set load
-- instead of as much as the server takes. wrk's timers count whole milliseconds, so each
-- wait is the whole number below or above the mean, drawn at random to average it.
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms ~= nil and delay_ms > 0 then
  local low = math.floor(delay_ms)
  local frac = delay_ms - low
  delay = function()
    if math.random() < frac then return low + 1 end
    return low
  end
end

done = function(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
