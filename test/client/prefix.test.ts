// Outline's `prefix` URI parameter: the client's first bytes are the prefix, and an unmodified
// server still accepts the connection (the prefix is part of the salt).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { ShadowsocksOutbound } from '../../src/client/shadowsocks-outbound.js';
import { startServer } from '../../src/server/index.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';

test('the first packet starts with the prefix and the server accepts it', async (t) => {
  const echo = await tcpEcho(t);
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: 'chacha20-ietf-poly1305',
    password: 'pfx',
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  // Outline's HTTP-request-like prefix, percent-encoded in the URI
  const uri = parseSsUri(
    `ss://${Buffer.from('chacha20-ietf-poly1305:pfx').toString('base64url')}@127.0.0.1:${server.port}/?prefix=POST%20`,
  );
  assert.equal(uri.params.prefix, 'POST ');
  const out = new ShadowsocksOutbound(uri);
  const s = await out.dialTcp(makeAddress('127.0.0.1', echo.port));
  const back = await new Promise<string>((resolve, reject) => {
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString();
      if (text === 'hello') resolve(text);
    });
    s.on('error', reject);
    s.write('hello');
    setTimeout(() => resolve(text), 3000);
  });
  s.destroy();
  assert.equal(back, 'hello');

  // What goes on the wire: a stub server records the first bytes.
  const seen: Buffer[] = [];
  const stub = createServer((c) => c.once('data', (d: Buffer) => (seen.push(d), c.destroy())));
  await new Promise<void>((r) => stub.listen(0, '127.0.0.1', r));
  t.after(() => stub.close());
  const port = (stub.address() as { port: number }).port;
  const s2 = await new ShadowsocksOutbound({ ...uri, port }).dialTcp(makeAddress('127.0.0.1', 1));
  s2.on('error', () => undefined);
  s2.write('x');
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(seen[0]!.subarray(0, 5).toString('latin1'), 'POST ');
});

test('a prefix that leaves too little of the salt random is refused with a clear error', () => {
  const uri = parseSsUri(
    `ss://${Buffer.from('aes-128-gcm:x').toString('base64url')}@127.0.0.1:1/?prefix=${'A'.repeat(13)}`,
  );
  assert.throws(() => new ShadowsocksOutbound(uri), /prefix parameter is 13 bytes; at most 12/);
});
