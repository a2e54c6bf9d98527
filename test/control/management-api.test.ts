// The management API contract, through fastify's inject (no sockets), on a real SQLite store.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { createManagementApi } from '../../src/control/api.js';
import { openStore } from '../../src/control/sqlite-store.js';
import { PrometheusMetrics } from '../../src/control/metrics.js';
import { parseSsUri } from '../../src/wire/sip002.js';

const SECRET = 'S3cretPathSegment_0123';

async function api(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-api-'));
  const store = openStore(dir);
  store.updateSettings({ hostname: 'vpn.example.org', portForNewKeys: 4433 });
  const metrics = new PrometheusMetrics();
  let changes = 0;
  const app = await createManagementApi({
    store,
    metrics,
    secret: SECRET,
    version: '9.9.9',
    publicUrl: 'https://vpn.example.org:8443',
    onChange: () => changes++,
  });
  t.after(async () => {
    await app.close();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const r = await app.inject({
      method: method as 'GET',
      url: `/${SECRET}${path}`,
      headers,
      ...(body === undefined ? {} : { payload: body as object }),
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = r.body ? (JSON.parse(r.body) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined; // not JSON (the metrics text)
    }
    return { status: r.statusCode, json, raw: r };
  };
  return { app, store, metrics, call, changes: () => changes };
}

describe('management API', () => {
  test('server info and settings, Outline-shaped', async (t) => {
    const { call } = await api(t);
    const s = await call('GET', '/server');
    assert.equal(s.status, 200);
    assert.equal(s.json!.version, '9.9.9');
    assert.equal(s.json!.hostnameForAccessKeys, 'vpn.example.org');
    assert.equal(s.json!.portForNewAccessKeys, 4433);
    assert.equal((await call('PUT', '/name', { name: 'Family' })).status, 204);
    assert.equal((await call('GET', '/server')).json!.name, 'Family');
    assert.equal(
      (await call('PUT', '/server/hostname-for-access-keys', { hostname: '203.0.113.7' })).status,
      204,
    );
    assert.equal((await call('PUT', '/server/port-for-new-access-keys', { port: 5555 })).status, 204);
    assert.equal(
      (await call('PUT', '/server/access-key-data-limit', { limit: { bytes: 1000 } })).status,
      204,
    );
    const after = (await call('GET', '/server')).json!;
    assert.equal(after.hostnameForAccessKeys, '203.0.113.7');
    assert.equal(after.portForNewAccessKeys, 5555);
    assert.deepEqual(after.accessKeyDataLimit, { bytes: 1000 });
    assert.equal((await call('DELETE', '/server/access-key-data-limit')).status, 204);
    assert.equal((await call('GET', '/server')).json!.accessKeyDataLimit, undefined);
  });

  test('keys: create, list, get, rename, limit, pause, expiry, usage, delete', async (t) => {
    const { call, store, changes } = await api(t);
    const c = await call('POST', '/access-keys', {
      name: 'Mum',
      method: 'aes-256-gcm',
      limit: { bytes: 5000 },
    });
    assert.equal(c.status, 201);
    const k = c.json!;
    assert.equal(k.name, 'Mum');
    assert.equal(k.method, 'aes-256-gcm');
    assert.equal(k.port, 4433);
    assert.deepEqual(k.dataLimit, { bytes: 5000 });
    const uri = parseSsUri(k.accessUrl as string);
    assert.equal(uri.host, 'vpn.example.org');
    assert.equal(uri.password, k.password);
    assert.ok(changes() > 0);
    const id = k.id as string;
    assert.equal(((await call('GET', '/access-keys')).json!.accessKeys as unknown[]).length, 1);
    assert.equal((await call('PUT', `/access-keys/${id}/name`, { name: 'Mother' })).status, 204);
    assert.equal(
      (await call('PUT', `/access-keys/${id}/data-limit`, { limit: { bytes: 9, window: 'total' } })).status,
      204,
    );
    assert.equal((await call('POST', `/access-keys/${id}/pause`)).status, 204);
    assert.equal(
      (await call('PUT', `/access-keys/${id}/expiry`, { expiresAt: 4_000_000_000_000 })).status,
      204,
    );
    let g = (await call('GET', `/access-keys/${id}`)).json!;
    assert.equal(g.name, 'Mother');
    assert.equal(g.paused, true);
    assert.equal(g.expiresAt, 4_000_000_000_000);
    assert.equal(g.dataLimitWindow, 'total');
    assert.equal((await call('PUT', `/access-keys/${id}/paused`, { paused: false })).status, 204);
    assert.equal((await call('DELETE', `/access-keys/${id}/expiry`)).status, 204);
    assert.equal((await call('DELETE', `/access-keys/${id}/data-limit`)).status, 204);
    g = (await call('GET', `/access-keys/${id}`)).json!;
    assert.equal(g.paused, false);
    assert.equal(g.expiresAt, null);
    assert.equal(g.dataLimit, undefined);
    store.addUsage(id, 1234);
    assert.deepEqual((await call('GET', `/access-keys/${id}/usage`)).json, { total: 1234, last30d: 1234 });
    assert.deepEqual((await call('GET', '/metrics/transfer')).json, {
      bytesTransferredByUserId: { [id]: 1234 },
    });
    assert.equal((await call('DELETE', `/access-keys/${id}`)).status, 204);
    assert.equal((await call('GET', `/access-keys/${id}`)).status, 404);
  });

  test('2022 AES keys carry the shared identity PSK in their password', async (t) => {
    const { call } = await api(t);
    const a = (await call('POST', '/access-keys', { method: '2022-blake3-aes-128-gcm' })).json!;
    const b = (await call('POST', '/access-keys', { method: '2022-blake3-aes-128-gcm' })).json!;
    const [ia, ua] = (a.password as string).split(':');
    const [ib, ub] = (b.password as string).split(':');
    assert.equal(ia, ib);
    assert.notEqual(ua, ub);
    const c = (await call('POST', '/access-keys', { method: '2022-blake3-chacha20-poly1305' })).json!;
    assert.ok(!(c.password as string).includes(':'));
  });

  test('bad input gets 400 naming the problem; unknown keys get 404 on every per-key route', async (t) => {
    const { call } = await api(t);
    for (const [method, path, body] of [
      ['POST', '/access-keys', { method: 'rc4-md5' }],
      ['POST', '/access-keys', { name: 'x'.repeat(101) }],
      ['POST', '/access-keys', { limit: { bytes: -1 } }],
      ['POST', '/access-keys', { unknown: 1 }],
      ['PUT', '/server/port-for-new-access-keys', { port: 0 }],
      ['PUT', '/server/port-for-new-access-keys', { port: 70000 }],
      ['PUT', '/server/port-for-new-access-keys', { port: 'x' }],
      ['PUT', '/server/hostname-for-access-keys', { hostname: 'bad host!' }],
      ['PUT', '/server/access-key-data-limit', { limit: { bytes: 1.5 } }],
      ['POST', '/access-keys', { method: '2022-blake3-aes-128-gcm', password: 'not-a-16-byte-key' }],
    ] as const) {
      const r = await call(method, path, body);
      assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)} → ${r.status}`);
      assert.equal(r.json!.code, 'bad_request');
      assert.ok((r.json!.message as string).length > 0);
    }
    const badJson = await call('POST', '/access-keys', '{not json', { 'content-type': 'application/json' });
    assert.equal(badJson.status, 400);
    for (const [method, path, body] of [
      ['GET', '/access-keys/77', undefined],
      ['DELETE', '/access-keys/77', undefined],
      ['PUT', '/access-keys/77/name', { name: 'a' }],
      ['PUT', '/access-keys/77/data-limit', { limit: { bytes: 1 } }],
      ['DELETE', '/access-keys/77/data-limit', undefined],
      ['PUT', '/access-keys/77/paused', { paused: true }],
      ['POST', '/access-keys/77/pause', undefined],
      ['POST', '/access-keys/77/resume', undefined],
      ['PUT', '/access-keys/77/expiry', { expiresAt: 1 }],
      ['DELETE', '/access-keys/77/expiry', undefined],
      ['GET', '/access-keys/77/usage', undefined],
    ] as const) {
      const r = await call(method, path, body);
      assert.equal(r.status, 404, `${method} ${path}`);
      assert.equal(r.json!.message, 'access key 77 not found');
    }
  });

  test('the secret guards everything: wrong prefix 404, bearer works, wrong bearer 401', async (t) => {
    const { app } = await api(t);
    assert.equal((await app.inject({ url: '/access-keys' })).statusCode, 401);
    assert.equal((await app.inject({ url: '/wrong/access-keys' })).statusCode, 404);
    assert.equal(
      (await app.inject({ url: '/access-keys', headers: { authorization: 'Bearer nope' } })).statusCode,
      401,
    );
    assert.equal(
      (await app.inject({ url: '/access-keys', headers: { authorization: `Bearer ${SECRET}` } })).statusCode,
      200,
    );
    const body = (await app.inject({ url: '/wrong/access-keys' })).body;
    assert.doesNotMatch(body, /stack|at /);
  });

  test('subscriptions on the key token: SIP008, Clash, sing-box, URI; unknown token 404', async (t) => {
    const { call, app } = await api(t);
    const k = (await call('POST', '/access-keys', { name: 'Dad', method: 'chacha20-ietf-poly1305' })).json!;
    const urls = k.subscriptionUrls as Record<string, string>;
    assert.match(urls.ssconf!, /^ssconf:\/\/vpn\.example\.org:8443\/sub\/[\w-]{20,}\/sip008\.json$/);
    const path = (u: string) => new URL(u).pathname;
    const sip008 = JSON.parse((await app.inject({ url: path(urls.sip008!) })).body) as {
      version: number;
      servers: { server: string; server_port: number; password: string; method: string }[];
    };
    assert.equal(sip008.version, 1);
    assert.deepEqual(
      { ...sip008.servers[0], id: undefined, remarks: undefined },
      {
        id: undefined,
        remarks: undefined,
        server: 'vpn.example.org',
        server_port: 4433,
        password: k.password,
        method: 'chacha20-ietf-poly1305',
      },
    );
    const clash = parseYaml((await app.inject({ url: path(urls.clash!) })).body) as {
      proxies: Record<string, unknown>[];
    };
    assert.equal(clash.proxies[0]!.type, 'ss');
    assert.equal(clash.proxies[0]!.password, k.password);
    const sb = JSON.parse((await app.inject({ url: path(urls.singBox!) })).body) as {
      outbounds: Record<string, unknown>[];
    };
    assert.equal(sb.outbounds[0]!.type, 'shadowsocks');
    assert.equal(sb.outbounds[0]!.server_port, 4433);
    const uri = (await app.inject({ url: path(urls.sip008!).replace('sip008.json', 'uri.txt') })).body.trim();
    assert.equal(uri, k.accessUrl);
    // A moved server shows up in the same subscription.
    await call('PUT', '/server/hostname-for-access-keys', { hostname: 'new.example.org' });
    assert.match((await app.inject({ url: path(urls.sip008!) })).body, /new\.example\.org/);
    assert.equal((await app.inject({ url: '/sub/not-a-token/sip008.json' })).statusCode, 404);
  });

  test('Prometheus metrics count bytes per key, connections, auth failures and errors — no addresses', async (t) => {
    const { call, metrics } = await api(t);
    metrics.bytes('1', 'in', 100);
    metrics.bytes('1', 'out', 250);
    metrics.connectionOpened('1', 'tcp');
    metrics.authFailure('replay');
    metrics.connectionError('refused');
    const text = (await call('GET', '/metrics')).raw.body;
    assert.match(text, /pigeon_key_bytes_total\{key="1",direction="in"\} 100/);
    assert.match(text, /pigeon_key_bytes_total\{key="1",direction="out"\} 250/);
    assert.match(text, /pigeon_active_connections\{protocol="tcp"\} 1/);
    assert.match(text, /pigeon_auth_failures_total\{reason="replay"\} 1/);
    assert.match(text, /pigeon_connection_errors_total\{kind="refused"\} 1/);
    assert.doesNotMatch(text, /\d+\.\d+\.\d+\.\d+/);
  });

  test('the committed docs/openapi.json is what the API publishes', async (t) => {
    const { call } = await api(t);
    const live = (await call('GET', '/openapi.json')).json;
    const committed = JSON.parse(
      readFileSync(join(import.meta.dirname, '../../docs/openapi.json'), 'utf8'),
    ) as unknown;
    assert.deepEqual(live, committed, 'run `npm run openapi` to regenerate docs/openapi.json');
    assert.doesNotMatch(JSON.stringify(live), new RegExp(SECRET));
  });
});
