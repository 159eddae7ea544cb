// Clients that curl cannot play, for serve_test.sh: slow senders, idle connections held open,
// raw malformed bytes, a keep-alive connection that outlives a SIGTERM, and a webhook receiver. Each prints one
// JSON line saying what it saw; serve_test.sh decides whether that passes.
'use strict';
const net = require('net');
const http = require('http');

const [cmd, portText, ...rest] = process.argv.slice(2);
const port = Number(portText);
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// Sends `chunks` (strings) one every `intervalMs` and reports what the server answered and
// whether it closed the connection before `giveUpMs`.
function dribble(chunks, intervalMs, giveUpMs) {
  const sock = net.connect(port, '127.0.0.1');
  let got = '';
  let sent = 0;
  const started = Date.now();
  const timer = setInterval(() => {
    if (sent < chunks.length && !sock.destroyed) sock.write(chunks[sent++]);
  }, intervalMs);
  const giveUp = setTimeout(() => {
    clearInterval(timer);
    say({ closed: false, sent, response: got.split('\r\n')[0] });
    process.exit(1);
  }, giveUpMs);
  sock.on('data', (d) => { got += d.toString('latin1'); });
  sock.on('error', () => {});
  sock.on('close', () => {
    clearInterval(timer);
    clearTimeout(giveUp);
    const body = got.slice(got.indexOf('\r\n\r\n') + 4);
    let code = null;
    try { code = JSON.parse(body).error.code; } catch (e) { /* not JSON */ }
    say({ closed: true, sent, status: got.split('\r\n')[0], code, seconds: (Date.now() - started) / 1000 });
    process.exit(0);
  });
}

function slowHeaders() {
  // One byte at a time, forever: a slowloris. The request never ends.
  const line = 'GET /healthz HTTP/1.1\r\nHost: x\r\n' + 'X-Slow: ' + 'a'.repeat(10000);
  dribble(line.split(''), 300, 60000);
}

function slowBody() {
  const head = 'POST /v1/actions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
               'Content-Length: 50\r\n\r\n';
  dribble([head, '{"tar'], 10, 60000);
}

function raw() {
  // The bytes to send are the third argument, with \r\n written as \n.
  dribble([rest[0].replace(/\n/g, '\r\n')], 10, 30000);
}

function hold() {
  const n = Number(rest[0]);
  let open = 0;
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1', () => { if (++open === n) say({ held: n }); });
    s.on('error', () => {});
    s.on('close', () => say({ closed_by_server: true }));
  }
  setTimeout(() => process.exit(0), 120000);
}

function request(agent, method, path, token, body) {
  return new Promise((resolve) => {
    const headers = { Authorization: 'Bearer ' + token };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(data); } catch (e) { /* not JSON */ }
        resolve({ status: res.statusCode, json, socket: res.socket });
      });
    });
    req.on('error', (e) => resolve({ status: 0, error: e.code }));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

// A keep-alive connection opened before SIGTERM asks again while a slow request is running:
// it must be refused with 503 shutting_down, and the slow request must still complete.
async function drain() {
  const [pid, token, target] = rest;
  const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = await request(keep, 'GET', '/v1/whoami', token);
  const slow = request(undefined, 'POST', '/v1/actions', token,
                       { target, command: ['sleep', '3'] });
  await new Promise((r) => setTimeout(r, 1000));
  process.kill(Number(pid), 'SIGTERM');
  // Asked until the server has taken the signal (at once, but a loaded machine may give it
  // a CPU late), while the slow request still runs.
  let during;
  for (let i = 0; i < 20; ++i) {
    await new Promise((r) => setTimeout(r, 100));
    during = await request(keep, 'GET', '/v1/whoami', token);
    if (during.status !== 200) break;
  }
  const finished = await slow;
  say({
    first: first.status,
    during: during.status,
    during_code: during.json && during.json.error ? during.json.error.code : null,
    same_connection: first.socket === during.socket,
    slow: finished.status,
    slow_status: finished.json ? finished.json.status : null,
  });
  process.exit(0);
}

// A webhook receiver on a free port: prints {"port"} once listening, then each body it gets.
function receive() {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      process.stdout.write(body.replace(/\n/g, ' ') + '\n');
      res.writeHead(200).end();
    });
  });
  server.listen(0, '127.0.0.1', () => say({ port: server.address().port }));
}

const commands = { 'slow-headers': slowHeaders, 'slow-body': slowBody, raw, hold, drain, receive };
if (!commands[cmd]) {
  process.stderr.write('usage: serve_client.js slow-headers|slow-body|raw|hold|drain|receive PORT ...\n');
  process.exit(2);
}
commands[cmd]();
