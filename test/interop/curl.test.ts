// curl (Debian package curl) through `pigeon client` → `pigeon server` → a loopback HTTP server:
// as a SOCKS5 proxy (host name resolved on the server side), as an HTTP proxy (absolute-URI
// requests) and through HTTP CONNECT. Bodies must arrive exactly, including a 1 MB POST echo.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { httpTarget } from '../helpers/targets.js';
import { randomPassword, SIP004_METHODS } from '../helpers/peers.js';
import { pigeonClient, pigeonServer } from '../helpers/pigeon.js';
import { curl } from '../helpers/curl.js';
import { assertSameBytes } from '../helpers/traffic.js';

const T = { timeout: 60_000 };

async function setup(t: TestContext, method: string) {
  const target = await httpTarget(t);
  const password = randomPassword();
  const server = await pigeonServer(t, { method, password });
  const client = await pigeonClient(t, { uri: server.uri });
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-curl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const body = randomBytes(1024 * 1024);
  const bodyFile = join(dir, 'body.bin');
  writeFileSync(bodyFile, body);
  const post = ['--data-binary', `@${bodyFile}`, '-H', 'Content-Type: application/octet-stream'];
  return { target, proxy: client.port, body, post };
}

for (const method of SIP004_METHODS) {
  describe(`curl → pigeon client → pigeon server, ${method}`, () => {
    test('SOCKS5 with a host name (--socks5-hostname)', T, async (t) => {
      const { target, proxy, body, post } = await setup(t, method);
      const via = ['--socks5-hostname', `127.0.0.1:${proxy}`];
      const hello = await curl(via, `http://localhost:${target.port}/hello`);
      assert.equal(hello.status, 200);
      assert.equal(hello.body.toString(), target.helloBody);
      const echoed = await curl([...via, ...post], `http://localhost:${target.port}/echo`);
      assert.equal(echoed.status, 200);
      assertSameBytes(echoed.body, body, '1 MB POST echo');
    });

    test('HTTP proxy, absolute-URI requests (-x)', T, async (t) => {
      const { target, proxy, body, post } = await setup(t, method);
      const via = ['-x', `http://127.0.0.1:${proxy}`];
      const hello = await curl(via, `http://127.0.0.1:${target.port}/hello`);
      assert.equal(hello.status, 200);
      assert.equal(hello.body.toString(), target.helloBody);
      // the proxy must turn "GET http://host:port/hello" into "GET /hello" for the origin
      assert.deepEqual(target.requests[0], {
        method: 'GET',
        url: '/hello',
        host: `127.0.0.1:${target.port}`,
      });
      const echoed = await curl([...via, ...post], `http://127.0.0.1:${target.port}/echo`);
      assert.equal(echoed.status, 200);
      assertSameBytes(echoed.body, body, '1 MB POST echo');
    });

    test('HTTP CONNECT (-p -x)', T, async (t) => {
      const { target, proxy, body, post } = await setup(t, method);
      const via = ['-p', '-x', `http://127.0.0.1:${proxy}`];
      const hello = await curl(via, `http://127.0.0.1:${target.port}/hello`);
      assert.equal(hello.status, 200);
      assert.equal(hello.body.toString(), target.helloBody);
      const echoed = await curl([...via, ...post], `http://127.0.0.1:${target.port}/echo`);
      assert.equal(echoed.status, 200);
      assertSameBytes(echoed.body, body, '1 MB POST echo');
    });
  });
}
