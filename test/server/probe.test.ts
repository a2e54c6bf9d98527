// What an active prober sees: for invalid input of any length the server sends nothing, keeps reading,
// and closes only when the probe timeout fires (or after the prober's own FIN) — the same way
// whatever arrived. Replays are never answered and never reach the target.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { StreamWriter } from '../../src/crypto/ss-stream.js';
import { masterKey } from '../../src/crypto/kdf.js';
import { methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TIMEOUT = 800;

async function server(t: TestContext, m: MethodName, password: string, clock?: () => number) {
  const s = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: m,
    password,
    allowPrivate: true,
    handshakeTimeoutMs: TIMEOUT,
    log: silentLog,
    clock,
  });
  t.after(() => s.close());
  return s.port;
}

interface Reaction {
  bytesBack: number;
  how: 'fin' | 'rst' | 'open';
  afterMs: number;
}

/** Sends `payload` and watches: what comes back, and how and when the server closes. */
function probe(port: number, payload: Buffer, sendFin = false, watchMs = TIMEOUT * 3): Promise<Reaction> {
  return new Promise((resolve) => {
    const start = Date.now();
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let bytesBack = 0;
    let how: Reaction['how'] = 'open';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytesBack, how, afterMs: Date.now() - start });
    };
    const timer = setTimeout(done, watchMs);
    s.on('data', (d) => (bytesBack += d.length));
    s.on('end', () => {
      how = 'fin';
      done();
    });
    s.on('error', () => {
      how = 'rst';
      done();
    });
    s.on('connect', () => {
      if (payload.length) s.write(payload);
      if (sendFin) s.end();
    });
  });
}

for (const m of ['chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm'] as const) {
  test(`${m}: random probes of any length get no bytes and the same timed FIN`, async (t) => {
    const spec = methodSpec(m);
    const pw = spec.edition === '2022' ? randomBytes(spec.keySize).toString('base64') : 'probe-me';
    const port = await server(t, m, pw);
    const lengths = [0, 1, 7, 8, 9, 15, 16, 17, 33, 49, 50, 51, 221, 1000, 2000];
    const reactions = await Promise.all(lengths.map((n) => probe(port, randomBytes(n))));
    for (const [i, r] of reactions.entries()) {
      assert.equal(r.bytesBack, 0, `length ${lengths[i]}: server answered`);
      assert.equal(r.how, 'fin', `length ${lengths[i]}: closed by ${r.how}`);
      assert.ok(
        r.afterMs >= TIMEOUT - 50,
        `length ${lengths[i]}: closed after ${r.afterMs} ms, before the timeout`,
      );
    }
    // A prober that half-closes gets a FIN straight back, whatever it sent.
    for (const n of [0, 5, 50, 221]) {
      const r = await probe(port, randomBytes(n), true);
      assert.equal(r.bytesBack, 0);
      assert.equal(r.how, 'fin');
      assert.ok(r.afterMs < TIMEOUT, `length ${n}: FIN took ${r.afterMs} ms`);
    }
  });
}

test('identical and byte-changed replays of a real first packet never reach the target', async (t) => {
  const echo = await tcpEcho(t);
  for (const m of ['aes-256-gcm', '2022-blake3-aes-256-gcm'] as const) {
    const spec = methodSpec(m);
    const pw = spec.edition === '2022' ? randomBytes(32).toString('base64') : 'replay-me';
    const port = await server(t, m, pw);
    const key = { spec, key: masterKey(spec, pw) };
    const first = new StreamWriter(key, {
      kind: 'request',
      target: makeAddress('127.0.0.1', echo.port),
    }).write(Buffer.from('hello'));
    const genuine = await probe(port, first, false, 400);
    assert.ok(genuine.bytesBack > 0, 'the genuine connection was answered');
    const before = echo.accepted();
    const replays = [Buffer.from(first)];
    for (const idx of [[0], [0, 1, 2, 3, 4, 5, 6, 7, 62, 63], [16], [6, 16]]) {
      const b = Buffer.from(first);
      for (const i of idx) b[i] ^= 0xff;
      replays.push(b);
    }
    const rs = await Promise.all(replays.map((p) => probe(port, p)));
    for (const r of rs) {
      assert.equal(r.bytesBack, 0);
      assert.equal(r.how, 'fin');
      assert.ok(r.afterMs >= TIMEOUT - 50);
    }
    assert.equal(echo.accepted(), before, `${m}: a replay reached the target`);
  }
});

test('2022: a request with a stale timestamp is treated as a probe', async (t) => {
  const echo = await tcpEcho(t);
  const spec = methodSpec('2022-blake3-aes-128-gcm');
  const pw = randomBytes(16).toString('base64');
  const port = await server(t, spec.name, pw);
  const stale = new StreamWriter(
    { spec, key: masterKey(spec, pw) },
    {
      kind: 'request',
      target: makeAddress('127.0.0.1', echo.port),
      clock: () => Math.floor(Date.now() / 1000) - 120,
    },
  ).write(Buffer.from('hi'));
  const r = await probe(port, stale);
  assert.equal(r.bytesBack, 0);
  assert.equal(echo.accepted(), 0);
});

test('a replay recorded before a restart is refused after it (the replay journal)', async (t) => {
  const echo = await tcpEcho(t);
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-replay-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const m of ['chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm'] as const) {
    const spec = methodSpec(m);
    const pw = spec.edition === '2022' ? randomBytes(16).toString('base64') : 'replay-me';
    const start = () =>
      startServer({
        listen: makeAddress('127.0.0.1', 0),
        method: m,
        password: pw,
        allowPrivate: true,
        handshakeTimeoutMs: TIMEOUT,
        replayDir: dir,
        log: silentLog,
      });
    const first = new StreamWriter(
      { spec, key: masterKey(spec, pw) },
      { kind: 'request', target: makeAddress('127.0.0.1', echo.port) },
    ).write(Buffer.from('hello'));
    const a = await start();
    assert.ok((await probe(a.port, first, false, 400)).bytesBack > 0, 'the genuine connection was answered');
    await a.close();
    const b = await start();
    t.after(() => b.close());
    const before = echo.accepted();
    const r = await probe(b.port, first);
    assert.equal(r.bytesBack, 0, `${m}: the replay after a restart was answered`);
    assert.equal(r.how, 'fin');
    assert.equal(echo.accepted(), before, `${m}: the replay after a restart reached the target`);
    // A fresh connection still works on the restarted server.
    const fresh = new StreamWriter(
      { spec, key: masterKey(spec, pw) },
      { kind: 'request', target: makeAddress('127.0.0.1', echo.port) },
    ).write(Buffer.from('again'));
    assert.ok((await probe(b.port, fresh, false, 400)).bytesBack > 0);
    await b.close();
  }
});

test('a flood of junk connections from one address is capped; a real client still gets through', async (t) => {
  const echo = await tcpEcho(t);
  const pw = 'flood-me';
  const s = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: 'aes-128-gcm',
    password: pw,
    allowPrivate: true,
    handshakeTimeoutMs: 20_000,
    admission: { perAddress: 32, total: 1000 },
    log: silentLog,
  });
  t.after(() => s.close());
  // 200 connections that send a few junk bytes and then wait: each would be held for the probe timeout.
  const junk: import('node:net').Socket[] = [];
  t.after(() => junk.forEach((j) => j.destroy()));
  let closedEarly = 0;
  await Promise.all(
    Array.from({ length: 200 }, () => {
      const c = connect({ port: s.port, host: '127.0.0.1' });
      junk.push(c);
      c.on('error', () => undefined);
      c.once('close', () => closedEarly++);
      return new Promise<void>((r) => c.once('connect', () => (c.write(randomBytes(7)), r())));
    }),
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(closedEarly >= 200 - 32, `${closedEarly} of 200 junk connections closed at once (cap 32)`);
  assert.ok(s.activeConnections() === 0);
  // While the flood holds its slots, a genuine client from another address is served.
  const spec = methodSpec('aes-128-gcm');
  const first = new StreamWriter(
    { spec, key: masterKey(spec, pw) },
    { kind: 'request', target: makeAddress('127.0.0.1', echo.port) },
  ).write(Buffer.from('hello'));
  const answered = await new Promise<number>((resolve) => {
    const c = connect({ port: s.port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    let got = 0;
    const done = () => {
      clearTimeout(timer);
      c.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, 2000);
    c.on('error', done);
    c.on('data', (d: Buffer) => {
      got += d.length;
      done();
    });
    c.on('connect', () => c.write(first));
  });
  assert.ok(answered > 0, 'a genuine client from another address is served during the flood');
});
