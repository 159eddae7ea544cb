// A real SMTP server for the tests: smtp-server (from Nodemailer) on 127.0.0.1, storing
// every message it accepts as DIR/NNNN.eml (the exact DATA bytes, dot-unstuffed) with
// DIR/NNNN.json beside it ({from, to: [envelope recipients], user}), so a test can count what
// arrived and compare it byte for byte with airlock's preview.
//
//   node smtp_sink.mjs DIR [USER PASSWORD]
// Prints "PORT" on stdout once listening (on SMTP_SINK_PORT if set). With USER/PASSWORD, AUTH PLAIN/LOGIN is required and
// checked (over plain text: the test runs on loopback only).
import fs from 'node:fs';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';

const [dir, user, password] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node smtp_sink.mjs DIR [USER PASSWORD]');
  process.exit(2);
}
fs.mkdirSync(dir, { recursive: true });
let count = 0;

const server = new SMTPServer({
  disabledCommands: user ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
  authOptional: !user,
  allowInsecureAuth: true,
  logger: false,
  disableReverseLookup: true,  // a DNS lookup per connection would pad every send's time
  size: 50 * 1024 * 1024,
  onAuth(auth, session, callback) {
    if (auth.username === user && auth.password === password) return callback(null, { user });
    return callback(new Error('Invalid username or password'));
  },
  onData(stream, session, callback) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const n = String(++count).padStart(4, '0');
      const base = path.join(dir, n);
      fs.writeFileSync(base + '.eml', Buffer.concat(chunks));
      fs.writeFileSync(base + '.json', JSON.stringify({
        from: session.envelope.mailFrom && session.envelope.mailFrom.address,
        to: session.envelope.rcptTo.map((r) => r.address),
        user: session.user || null,
      }));
      callback(null, 'queued as ' + n);
    });
  },
});
// SMTP_SINK_PORT picks the port (the quick start's policy names 2525); by default any free one.
server.listen(Number(process.env.SMTP_SINK_PORT || 0), '127.0.0.1', () => {
  process.stdout.write(server.server.address().port + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
