// A small real HTTP API for the black-box tests of the HTTP target (tests/blackbox/
// http_test.sh), on node's built-in http module only. It appends one JSON line per request
// to the log file: method, path, host, the Authorization and X-Api-Key headers it received,
// and the body, so that a test can count what arrived and see the credentials airlock added.
//
//   node api_server.mjs LOG_FILE PORT_FILE [MAX_BIG_BYTES]
//
// It listens on 127.0.0.1 and, on the same port, 127.0.0.2 (another host as far as a URL is
// concerned), and writes the port to PORT_FILE when both are ready. Routes:
//   GET  /v1/items          {"items":[...]}
//   GET  /v1/big            a body of 4 MiB (more than any cap the tests set)
//   GET  /v1/redirect       302 to http://127.0.0.2:PORT/v1/stolen (another host)
//   any  /v1/stolen         what a followed redirect would reach
//   GET  /v1/hang           never answers
//   other                   {"ok":true,"method":..,"path":..}
import { appendFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';

const [logFile, portFile] = process.argv.slice(2);
if (!logFile || !portFile) {
  console.error('usage: api_server.mjs LOG_FILE PORT_FILE');
  process.exit(2);
}
let port = 0;

function handle(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url, 'http://x');
    appendFileSync(logFile, JSON.stringify({
      method: req.method,
      path: req.url,
      host: req.headers.host ?? null,
      authorization: req.headers.authorization ?? null,
      x_api_key: req.headers['x-api-key'] ?? null,
      content_type: req.headers['content-type'] ?? null,
      body,
    }) + '\n');
    if (url.pathname === '/v1/big') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const block = 'x'.repeat(64 * 1024);
      let sent = 0;
      const more = () => {
        while (sent < 4 * 1024 * 1024) {
          sent += block.length;
          if (!res.write(block)) return res.once('drain', more);
        }
        res.end();
      };
      res.on('error', () => {});
      return more();
    }
    if (url.pathname === '/v1/hang') return;  // the client's timeout must end it
    if (url.pathname === '/v1/redirect') {
      res.writeHead(302, { location: `http://127.0.0.2:${port}/v1/stolen` });
      return res.end('moved');
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    if (url.pathname === '/v1/items') return res.end(JSON.stringify({ items: ['alpha', 'beta'] }));
    res.end(JSON.stringify({ ok: true, method: req.method, path: req.url }));
  });
}

const first = http.createServer(handle);
first.listen(0, '127.0.0.1', () => {
  port = first.address().port;
  const second = http.createServer(handle);
  second.listen(port, '127.0.0.2', () => writeFileSync(portFile, String(port)));
});
