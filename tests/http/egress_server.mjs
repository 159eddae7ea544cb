// Real HTTP and HTTPS servers for the egress proxy's black-box test (tests/blackbox/
// egress_test.sh), on node's built-in http and https modules only. Each request is appended
// to LOG_FILE as one JSON line {scheme, method, path, host, body}, so the test can count
// what arrived. Both listen on 127.0.0.1 and are reached by name (localhost) through the
// proxy; PORT_FILE gets "HTTP_PORT HTTPS_PORT" once both are ready. GET /wait?file=PATH is
// logged at once but answered only once PATH exists (a request held in flight on demand).
//
//   node egress_server.mjs LOG_FILE PORT_FILE CERT_PEM KEY_PEM
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [logFile, portFile, certFile, keyFile] = process.argv.slice(2);
if (!logFile || !portFile || !certFile || !keyFile) {
  console.error('usage: egress_server.mjs LOG_FILE PORT_FILE CERT_PEM KEY_PEM');
  process.exit(2);
}

function handler(scheme) {
  return (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      appendFileSync(logFile, JSON.stringify({
        scheme, method: req.method, path: req.url, host: req.headers.host ?? null, body,
      }) + '\n');
      const answer = () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`hello from ${scheme} ${req.method} ${req.url}\n`);
      };
      const url = new URL(req.url, 'http://x');
      if (url.pathname !== '/wait') return answer();
      const timer = setInterval(() => {
        if (existsSync(url.searchParams.get('file'))) {
          clearInterval(timer);
          answer();
        }
      }, 20);
    });
  };
}

const plain = http.createServer(handler('http'));
const tls = https.createServer(
  { cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler('https'));
plain.listen(0, '127.0.0.1', () => {
  tls.listen(0, '127.0.0.1', () => {
    writeFileSync(portFile, `${plain.address().port} ${tls.address().port}\n`);
  });
});
