// After connections close, the server and client hold no extra sockets or timers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { startClient } from '../../src/client/index.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';

function resources(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

function roundTrip(port: number, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let n = 0;
    s.on('data', (d) => (n += d.length));
    s.on('end', () => {
      s.end();
    });
    s.on('close', () => (n === payload.length + 5 ? resolve() : reject(new Error(`got ${n}`))));
    s.on('error', reject);
    s.end(payload);
  });
}

test('50 tunnelled connections leave no sockets or timers behind', async (t) => {
  const echo = await tcpEcho(t, { bye: '<bye>' });
  const password = 'leak-check';
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: 'aes-128-gcm',
    password,
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  const client = await startClient({
    server: { method: 'aes-128-gcm', password, host: '127.0.0.1', port: server.port, params: {} },
    listen: makeAddress('127.0.0.1', 0),
    forwards: [{ listen: makeAddress('127.0.0.1', 0), target: makeAddress('127.0.0.1', echo.port) }],
    log: silentLog,
  });
  t.after(() => client.close());
  await roundTrip(client.forwardPorts[0]!, Buffer.from('warm-up'));
  await new Promise((r) => setTimeout(r, 300));
  const before = resources();
  for (let i = 0; i < 50; i += 10) {
    await Promise.all(
      Array.from({ length: 10 }, () => roundTrip(client.forwardPorts[0]!, randomBytes(5000))),
    );
  }
  // Sockets close asynchronously after the last FIN; give them a moment.
  let after = resources();
  for (let i = 0; i < 50 && (after.TCPSocketWrap ?? 0) > (before.TCPSocketWrap ?? 0); i++) {
    await new Promise((r) => setTimeout(r, 50));
    after = resources();
  }
  assert.equal(after.TCPSocketWrap ?? 0, before.TCPSocketWrap ?? 0, 'sockets leaked');
  assert.ok(
    (after.Timeout ?? 0) <= (before.Timeout ?? 0),
    `timers leaked: ${JSON.stringify({ before, after })}`,
  );
});
