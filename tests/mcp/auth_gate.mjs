#!/usr/bin/env node
// A gate in front of a streamable HTTP MCP server, as a hosted server's sign-in would be:
// every request needs `Authorization: Bearer $AUTH_SECRET`, or it gets 401 and goes no
// further; an accepted one is forwarded to UPSTREAM (http://HOST:PORT) and its answer (JSON or
// an SSE stream) streamed back. Each request appends one line to LOG: "ok METHOD X-TENANT" or
// "401 METHOD X-TENANT" (X-Tenant: a second header, to see that every header arrives).
// Listens on 127.0.0.1:PORT (0: any free port) and prints "listening PORT".
import { appendFileSync } from "node:fs";
import http from "node:http";

const secret = process.env.AUTH_SECRET;
const log = process.env.LOG;
if (!secret || !log || !process.env.UPSTREAM) {
  console.error("auth_gate: AUTH_SECRET, LOG and UPSTREAM are required");
  process.exit(2);
}
const upstream = new URL(process.env.UPSTREAM);

const server = http.createServer((req, res) => {
  const ok = req.headers.authorization === `Bearer ${secret}`;
  appendFileSync(log, `${ok ? "ok" : "401"} ${req.method} ${req.headers["x-tenant"] ?? "-"}\n`);
  if (!ok) {
    req.resume();
    res.writeHead(401, { "content-type": "application/json", "www-authenticate": "Bearer" });
    res.end(JSON.stringify({ error: "unauthorized" }));
    return;
  }
  const headers = { ...req.headers, host: upstream.host };
  const forward = http.request(
    { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
    (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    },
  );
  forward.on("error", (e) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end(String(e));
  });
  req.pipe(forward);
});
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
