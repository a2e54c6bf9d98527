// The server's UDP relay against replays and stale packets (SIP022), over real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { UdpClientSession } from '../../src/crypto/ss-udp.js';
import { masterKey } from '../../src/crypto/kdf.js';
import { methodSpec } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';

test('2022 UDP: a replayed packet and a stale packet never reach the target; fresh ones do', async (t) => {
  // A counting UDP target
  const target = createSocket('udp4');
  const seen: string[] = [];
  target.on('message', (m) => seen.push(m.toString()));
  await new Promise<void>((r) => target.bind(0, '127.0.0.1', r));
  t.after(() => target.close());
  const spec = methodSpec('2022-blake3-aes-128-gcm');
  const psk = randomBytes(16).toString('base64');
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: spec.name,
    password: psk,
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  const key = { spec, key: masterKey(spec, psk) };
  const to = makeAddress('127.0.0.1', target.address().port);
  const client = new UdpClientSession(key);
  const first = client.seal({ address: to, payload: Buffer.from('one') });
  const stale = new UdpClientSession(key, () => Math.floor(Date.now() / 1000) - 90).seal({
    address: to,
    payload: Buffer.from('stale'),
  });
  const second = client.seal({ address: to, payload: Buffer.from('two') });
  const sock = createSocket('udp4');
  t.after(() => sock.close());
  for (const p of [first, first, stale, second, first, second]) {
    sock.send(p, server.port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 30));
  }
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(seen.sort(), ['one', 'two']);
});
