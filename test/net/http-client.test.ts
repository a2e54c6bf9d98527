// HTTP over dialled streams: one connection per request by default, kept-alive connections with a
// pool (DNS over HTTPS through the tunnel reuses one), and clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { HttpConnectionPool, httpRequestVia, type StreamDial } from '../../src/net/http-client.js';

async function server(t: import('node:test').TestContext) {
  const s = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.after(() => {
    s.closeAllConnections();
    s.close();
  });
  return (s.address() as { port: number }).port;
}

function countingDial(): { dial: StreamDial; count: () => number } {
  let n = 0;
  return {
    dial: async (a) => {
      n++;
      const s = connect(a.port, a.host);
      await new Promise((r, j) => s.once('connect', r).once('error', j));
      return s;
    },
    count: () => n,
  };
}

test('without a pool each request dials its own connection; with one, they share it', async (t) => {
  const port = await server(t);
  const url = `http://127.0.0.1:${port}/q?x=1`;
  const plain = countingDial();
  for (let i = 0; i < 3; i++) {
    const r = await httpRequestVia(plain.dial, url, {
      method: 'POST',
      body: Buffer.from(`b${i}`),
      timeoutMs: 5000,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `POST /q?x=1 b${i}`);
  }
  assert.equal(plain.count(), 3);
  const pooled = countingDial();
  const pool = new HttpConnectionPool(pooled.dial);
  t.after(() => pool.close());
  for (let i = 0; i < 3; i++) {
    const r = await httpRequestVia(pooled.dial, url, { timeoutMs: 5000, pool });
    assert.equal(r.body.toString(), 'GET /q?x=1 ');
  }
  assert.equal(pooled.count(), 1, 'three requests, one kept-alive connection');
});

test('errors: bad URLs, refused dials, timeouts, oversized answers', async (t) => {
  const port = await server(t);
  const { dial } = countingDial();
  await assert.rejects(httpRequestVia(dial, 'not a url', { timeoutMs: 1000 }), /not a URL/);
  await assert.rejects(httpRequestVia(dial, 'ftp://x/', { timeoutMs: 1000 }), /not an http\(s\) URL/);
  await assert.rejects(
    httpRequestVia(() => Promise.reject(new Error('refused by test')), `http://127.0.0.1:${port}/`, {
      timeoutMs: 1000,
    }),
    /refused by test/,
  );
  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const silentPort = (silent.address() as { port: number }).port;
  await assert.rejects(
    httpRequestVia(dial, `http://127.0.0.1:${silentPort}/`, { timeoutMs: 300 }),
    /timed out/,
  );
  await assert.rejects(
    httpRequestVia(dial, `http://127.0.0.1:${port}/${'x'.repeat(100)}`, { timeoutMs: 1000, maxBytes: 10 }),
    /larger than 10 bytes/,
  );
});
