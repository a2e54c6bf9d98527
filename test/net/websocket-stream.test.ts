// The WebSocket carrier (src/net/websocket-stream.ts) on real loopback WebSockets, and Mux.Cool
// sessions (src/net/mux-cool-stream.ts) over it: bytes both ways, one message per write, backpressure,
// how each kind of close is seen on the other side, pings, and the session rules v2ray follows.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { WebSocketStream } from '../../src/net/websocket-stream.js';
import { MuxCarrier, type MuxSession } from '../../src/net/mux-cool-stream.js';
import { encodeMuxFrame, type MuxTarget } from '../../src/wire/mux-cool.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An open client WebSocket and the server's end of it, on 127.0.0.1. */
async function wsPair(t: TestContext): Promise<{ client: WebSocket; server: WebSocket }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  t.after(() => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  const port = (wss.address() as { port: number }).port;
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    client.once('open', () => resolve());
    client.once('error', reject);
  });
  return { client, server: await accepted };
}

/** Errors that a test provokes on purpose, or that teardown causes, are not the test's failure. */
function quiet<T extends Duplex>(s: T): T {
  s.on('error', () => undefined);
  return s;
}

async function streamPair(t: TestContext) {
  const { client, server } = await wsPair(t);
  return { a: quiet(new WebSocketStream(client)), b: quiet(new WebSocketStream(server)), client, server };
}

/** Reads until `n` bytes or the end of `s`; bounded by `ms`. */
function readBytes(s: Duplex, n: number, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let have = 0;
    const finish = (e?: Error) => {
      clearTimeout(timer);
      s.removeListener('data', onData);
      s.removeListener('end', onEnd);
      if (e) reject(e);
      else resolve(Buffer.concat(got));
    };
    const onData = (d: Buffer) => {
      got.push(d);
      have += d.length;
      if (have >= n) finish();
    };
    const onEnd = () => finish();
    const timer = setTimeout(() => finish(new Error(`got ${have} of ${n} bytes within ${ms} ms`)), ms);
    s.on('data', onData);
    s.once('end', onEnd);
  });
}

function closeEvent(ws: WebSocket): Promise<number> {
  return new Promise((r) => ws.once('close', (code: number) => r(code)));
}

function ended(s: Duplex, ms = 5000): Promise<'end' | 'error' | 'timeout'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    s.once('end', () => (clearTimeout(timer), resolve('end')));
    s.once('error', () => (clearTimeout(timer), resolve('error')));
    s.resume();
  });
}

test('bytes both ways; each write is one binary message (64 KiB at most); text counts as bytes', async (t) => {
  const { a, b, server } = await streamPair(t);
  const messages: Array<{ len: number; binary: boolean }> = [];
  server.on('message', (d: RawData, binary: boolean) => messages.push({ len: (d as Buffer).length, binary }));
  const one = randomBytes(1000);
  const two = randomBytes(70_000);
  a.write(one);
  a.write(two);
  assert.ok((await readBytes(b, one.length + two.length)).equals(Buffer.concat([one, two])));
  assert.deepEqual(messages, [
    { len: 1000, binary: true },
    { len: 65_536, binary: true },
    { len: 70_000 - 65_536, binary: true },
  ]);
  const back = randomBytes(5000);
  b.write(back);
  assert.ok((await readBytes(a, back.length)).equals(back));
  server.send('text too');
  assert.equal((await readBytes(a, 8)).toString(), 'text too');
});

test('an empty write sends nothing', async (t) => {
  const { a, server } = await streamPair(t);
  let count = 0;
  server.on('message', () => count++);
  await new Promise<void>((r) => a.write(Buffer.alloc(0), () => r()));
  a.write(Buffer.from('x'));
  for (let i = 0; i < 100 && count === 0; i++) await sleep(10);
  assert.equal(count, 1);
});

test('backpressure: a reader that stops reading stops the writer (bounded buffering) and loses nothing', async (t) => {
  const { a, b } = await streamPair(t);
  b.pause();
  const chunk = randomBytes(64 * 1024);
  let written = 0;
  // Write until write() says stop; with a paused reader that must happen within a few MB.
  for (let i = 0; i < 400; i++) {
    written += chunk.length;
    if (!a.write(chunk)) break;
    await sleep(0);
  }
  assert.ok(written < 26 * 1024 * 1024, `the writer was never stopped (${written} bytes accepted)`);
  assert.equal(a.writableNeedDrain, true);
  const drained = new Promise<void>((r) => a.once('drain', () => r()));
  const all = readBytes(b, written, 15_000);
  b.resume();
  await drained;
  assert.equal((await all).length, written);
});

test('end() sends a close frame (1000) once written data has left and the linger passed', async (t) => {
  const { client, server } = await wsPair(t);
  const a = quiet(new WebSocketStream(client, { closeLingerMs: 300 }));
  const b = quiet(new WebSocketStream(server));
  const codes = Promise.all([closeEvent(client), closeEvent(server)]);
  const data = randomBytes(3000);
  const start = Date.now();
  a.end(data);
  assert.ok((await readBytes(b, data.length)).equals(data));
  // During the linger the peer can still send: a half-close that lasts until the close frame.
  b.write(Buffer.from('late reply'));
  assert.equal((await readBytes(a, 10)).toString(), 'late reply');
  const aEnded = ended(a); // the side that ended first sees the end too
  assert.equal(await ended(b), 'end');
  assert.ok(Date.now() - start >= 280, `closed after ${Date.now() - start} ms`);
  assert.deepEqual(await codes, [1000, 1000]);
  assert.equal(await aEnded, 'end');
});

test('writing after the peer closed fails instead of being dropped silently', async (t) => {
  const { a, b } = await streamPair(t);
  b.destroy();
  assert.equal(await ended(a), 'end');
  const err = await new Promise<Error | null | undefined>((r) => a.write(Buffer.from('late'), (e) => r(e)));
  assert.ok(err instanceof Error);
});

test('destroy() closes cleanly (peer: end); destroy(err) drops the connection (peer: error, 1006)', async (t) => {
  const p1 = await streamPair(t);
  const clean = ended(p1.b);
  p1.a.destroy();
  assert.equal(await clean, 'end');

  const p2 = await streamPair(t);
  const code = closeEvent(p2.server);
  const abrupt = ended(p2.b);
  p2.a.destroy(new Error('boom'));
  assert.equal(await abrupt, 'error');
  assert.equal(await code, 1006);
});

test('a message larger than maxPayload closes the WebSocket with 1009 and errors the stream', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1000 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  t.after(() => wss.close());
  const port = (wss.address() as { port: number }).port;
  const accepted = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  await new Promise((r) => client.once('open', r));
  const b = quiet(new WebSocketStream(await accepted));
  const result = ended(b);
  const code = closeEvent(client);
  client.send(randomBytes(1001));
  assert.equal(await result, 'error');
  assert.equal(await code, 1009);
});

test('pings go out at the configured interval', async (t) => {
  const { client, server } = await wsPair(t);
  const a = quiet(new WebSocketStream(client, { pingIntervalMs: 50 }));
  let pings = 0;
  server.on('ping', () => pings++);
  await sleep(400);
  assert.ok(pings >= 3, `only ${pings} pings`);
  a.destroy();
});

test('the constructor refuses a WebSocket that is not open', async () => {
  const ws = new WebSocket('ws://127.0.0.1:9/');
  ws.on('error', () => undefined);
  assert.throws(() => new WebSocketStream(ws), /open WebSocket/);
  ws.terminate();
});

// --- Mux.Cool sessions over a WebSocket --------------------------------------------------------------

const TARGET: MuxTarget = { network: 'tcp', address: { kind: 'ipv4', host: '127.0.0.1', port: 0 } };

async function muxPair(t: TestContext, server: { maxSessions?: number; idleTimeoutMs?: number } = {}) {
  const { a, b, client, server: serverWs } = await streamPair(t);
  const accepted: Array<{ session: MuxSession; target: MuxTarget }> = [];
  const clientMux = new MuxCarrier(a, { role: 'client' });
  const serverMux = new MuxCarrier(b, {
    role: 'server',
    ...server,
    onSession: (session, target) => accepted.push({ session: quiet(session), target }),
  });
  const open = (target: MuxTarget) => quiet(clientMux.open(target));
  return { open, serverMux, accepted, a, b, client, serverWs };
}

async function nextSession(accepted: Array<{ session: MuxSession }>, i: number): Promise<MuxSession> {
  for (let n = 0; n < 500 && accepted.length <= i; n++) await sleep(10);
  assert.ok(accepted[i], `session ${i} never arrived`);
  return accepted[i]!.session;
}

test('mux: concurrent sessions carry their own bytes both ways; the New frame names the target', async (t) => {
  const { open, accepted } = await muxPair(t);
  const sessions = [0, 1, 2].map(() => open(TARGET));
  const up = sessions.map(() => randomBytes(40_000));
  sessions.forEach((s, i) => s.write(up[i]!));
  for (let i = 0; i < 3; i++) await nextSession(accepted, i);
  assert.deepEqual(accepted[0]!.target, TARGET);
  const byId = new Map(accepted.map((a) => [a.session.id, a.session]));
  for (const [i, s] of sessions.entries()) {
    const peer = byId.get(s.id)!;
    assert.ok((await readBytes(peer, up[i]!.length)).equals(up[i]!));
    const down = randomBytes(30_000 + i);
    peer.write(down);
    assert.ok((await readBytes(s, down.length)).equals(down));
  }
});

test('mux: End closes the session both ways; the client closes the carrier after its last session', async (t) => {
  const { open, accepted, client } = await muxPair(t);
  const s = open(TARGET);
  s.write(Buffer.from('hello'));
  const peer = await nextSession(accepted, 0);
  assert.equal((await readBytes(peer, 5)).toString(), 'hello');
  const wsClosed = closeEvent(client);
  peer.end(Buffer.from('bye')); // server: data, then End
  assert.equal((await readBytes(s, 4)).toString(), 'bye'); // resolves at the end of the stream
  assert.equal(s.readableEnded, true);
  // The peer ended the session: writing more fails (v2ray would discard it).
  const err = await new Promise<Error | null | undefined>((r) => s.write(Buffer.from('x'), (e) => r(e)));
  assert.ok(err instanceof Error);
  assert.equal(await wsClosed, 1000);
});

test('mux: the server refuses sessions beyond its cap with End (error) and keeps the others', async (t) => {
  const { open, accepted } = await muxPair(t, { maxSessions: 2 });
  const s = [0, 1, 2].map(() => open(TARGET));
  s[0]!.write(Buffer.from('a'));
  s[1]!.write(Buffer.from('b'));
  await nextSession(accepted, 1);
  s[2]!.write(Buffer.from('c'));
  assert.equal(await ended(s[2]!), 'error');
  assert.equal(accepted.length, 2);
  const peer0 = accepted.find((x) => x.session.id === s[0]!.id)!.session;
  peer0.write(Buffer.from('still here'));
  assert.equal((await readBytes(s[0]!, 10)).toString(), 'still here');
});

test('mux: data for an unknown session is answered with End; a malformed frame closes the carrier', async (t) => {
  const { a, b, client } = await streamPair(t);
  const accepted: Array<{ session: MuxSession }> = [];
  new MuxCarrier(b, { role: 'server', onSession: (s) => accepted.push({ session: quiet(s) }) });
  const fromServer = readBytes(a, 6);
  a.write(encodeMuxFrame({ session: 9, status: 'keep', data: Buffer.from('stray') }));
  assert.deepEqual(await fromServer, encodeMuxFrame({ session: 9, status: 'end' }));

  a.write(encodeMuxFrame({ session: 1, status: 'new', target: TARGET, data: Buffer.from('x') }));
  const session = await nextSession(accepted, 0);
  const sessionResult = ended(session);
  const code = closeEvent(client);
  a.write(Buffer.from([0x02, 0x01, 0, 0, 0, 0])); // metadata length 513 > 512
  assert.equal(await sessionResult, 'error');
  assert.notEqual(await code, 1000);
});

test('mux: a server carrier without sessions is closed after its idle timeout', async (t) => {
  const { open, accepted, client } = await muxPair(t, { idleTimeoutMs: 200 });
  const s = open(TARGET);
  s.write(Buffer.from('x'));
  const peer = await nextSession(accepted, 0);
  const start = Date.now();
  const code = closeEvent(client);
  peer.destroy(); // End (error) to the client; the server has no session left
  assert.equal(await ended(s), 'error');
  assert.equal(await code, 1000);
  assert.ok(Date.now() - start < 3000);
});

test('mux: a slow session pauses the carrier and nothing is lost', async (t) => {
  const { open, accepted } = await muxPair(t);
  const s = open(TARGET);
  s.write(Buffer.from('go'));
  const peer = await nextSession(accepted, 0);
  await readBytes(peer, 2);
  const big = randomBytes(3 * 1024 * 1024);
  s.pause();
  peer.write(big);
  await sleep(200);
  const got = readBytes(s, big.length, 15_000);
  s.resume();
  assert.ok((await got).equals(big));
});
