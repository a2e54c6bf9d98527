// The relay on real sockets: half-close both ways, idle timeout, error teardown, and backpressure.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { relay, type RelayResult } from '../../src/net/relay.js';

/** Two connected socket pairs joined by a relay in the middle: a ⇄ [relay] ⇄ b. */
async function pairThroughRelay(t: TestContext, idleTimeoutMs = 10_000) {
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const open = async () => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => c.once('connect', r));
    for (let i = 0; i < 100 && accepted.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    return { outer: c, inner: accepted.shift()! };
  };
  const left = await open();
  const right = await open();
  const done: Promise<RelayResult> = relay(left.inner, right.inner, { idleTimeoutMs });
  t.after(() => {
    left.outer.destroy();
    right.outer.destroy();
  });
  return { a: left.outer, b: right.outer, done, aInner: left.inner, bInner: right.inner };
}

function collect(s: Socket): { text: () => string; ended: Promise<void> } {
  let buf = '';
  s.on('data', (d: Buffer) => (buf += d.toString()));
  return { text: () => buf, ended: new Promise((r) => s.once('end', () => r())) };
}

test('half-close: A ends, B keeps talking, then B ends; everything arrives and the relay finishes', async (t) => {
  const { a, b, done } = await pairThroughRelay(t);
  const atA = collect(a);
  const atB = collect(b);
  a.end('from a');
  await atB.ended; // A's FIN reached B
  assert.equal(atB.text(), 'from a');
  b.write('reply after FIN');
  b.end(' bye');
  await atA.ended;
  assert.equal(atA.text(), 'reply after FIN bye');
  const r = await done;
  assert.equal(r.reason, 'done');
  assert.equal(r.up, 6);
  assert.equal(r.down, 19);
});

test('idle timeout closes both sides', async (t) => {
  const { a, b, done } = await pairThroughRelay(t, 300);
  // The far ends see the relay's sockets close (FIN or RST).
  const ended = (s: Socket) =>
    new Promise<void>((r) => (s.once('end', () => r()), s.once('error', () => r())));
  const closedA = ended(a);
  const closedB = ended(b);
  a.resume();
  b.resume();
  const r = await done;
  assert.equal(r.reason, 'idle');
  await Promise.all([closedA, closedB]);
});

test('an error on one side tears down the other', async (t) => {
  const { a, b, done, aInner } = await pairThroughRelay(t);
  const closedB = new Promise<void>((r) => (b.once('end', () => r()), b.once('error', () => r())));
  b.resume();
  aInner.destroy(new Error('boom'));
  const r = await done;
  assert.equal(r.reason, 'error');
  await closedB;
  assert.ok(a);
});

test('backpressure: a reader that does not read stops the writer instead of buffering without bound', async (t) => {
  const { a, b, aInner } = await pairThroughRelay(t);
  b.pause(); // B reads nothing
  const chunk = Buffer.alloc(64 * 1024);
  let written = 0;
  for (let i = 0; i < 2000; i++) {
    written += chunk.length;
    if (!a.write(chunk)) break;
  }
  // Let the pipes fill up.
  for (let i = 0; i < 40; i++) {
    if (a.writableLength > 0 && aInner.isPaused()) break;
    await new Promise((r) => setTimeout(r, 25));
    a.write(chunk);
    written += chunk.length;
  }
  assert.equal(aInner.isPaused(), true, 'the relay kept reading from A while B was full');
  assert.ok(written < 200 * 1024 * 1024, 'wrote without limit');
  // Resuming B drains everything.
  let got = 0;
  b.on('data', (d: Buffer) => (got += d.length));
  b.resume();
  a.end();
  await new Promise((r) => b.once('end', r));
  assert.equal(got, written);
});
