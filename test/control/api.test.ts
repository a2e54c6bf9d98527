// The management API contract, through fastify's inject (no sockets) on an in-memory store; one
// test listens on loopback with the self-signed certificate and checks its fingerprint over TLS.
//
// Regenerate docs/openapi.json after changing a route schema:
//   PIGEON_UPDATE_OPENAPI=1 node --import tsx --test test/control/api.test.ts
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { format as prettierFormat, resolveConfig } from 'prettier';
import { parse as parseYaml } from 'yaml';
import { createManagementApi } from '../../src/control/api.js';
import { PrometheusMetrics } from '../../src/control/metrics.js';
import { loadOrCreateCertificate } from '../../src/control/tls.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { METHODS } from '../../src/wire/shadowsocks-methods.js';
import type { KeyStore } from '../../src/control/types.js';
import { MemoryKeyStore } from './memory-store.js';

const SECRET = 'S3cretPathSegment_0123';
const PUBLIC_URL = 'https://vpn.example.org:8443';
const OPENAPI_FILE = join(import.meta.dirname, '../../docs/openapi.json');
const NOT_FOUND = { code: 'not_found', message: 'not found' };

type Json = Record<string, unknown>;

interface Setup {
  store?: KeyStore;
  log?: pino.Logger;
}

async function api(t: TestContext, setup: Setup = {}) {
  const store = setup.store ?? new MemoryKeyStore({ hostname: 'vpn.example.org', portForNewKeys: 4433 });
  const metrics = new PrometheusMetrics();
  let changes = 0;
  const app = await createManagementApi({
    store,
    metrics,
    secret: SECRET,
    version: '9.9.9',
    publicUrl: PUBLIC_URL,
    onSettingsChange: () => changes++,
    ...(setup.log ? { log: setup.log } : {}),
  });
  t.after(() => app.close());
  const inject = async (
    method: string,
    url: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const r = await app.inject({
      method: method as 'GET',
      url,
      headers,
      ...(body === undefined ? {} : { payload: body as string }),
    });
    let json: Json | undefined;
    try {
      json = r.body ? (JSON.parse(r.body) as Json) : undefined;
    } catch {
      json = undefined; // text, YAML
    }
    return { status: r.statusCode, json, body: r.body, headers: r.headers };
  };
  /** Through the secret path prefix. */
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    inject(method, `/${SECRET}${path}`, body, headers);
  /** On the bare path, with the bearer token. */
  const bearer = (method: string, path: string, body?: unknown) =>
    inject(method, path, body, { authorization: `Bearer ${SECRET}` });
  const create = async (body?: Json) => {
    const r = await call('POST', '/access-keys', body);
    assert.equal(r.status, 201, r.body);
    return r.json!;
  };
  return { app, store, metrics, inject, call, bearer, create, changes: () => changes };
}

const KEY_FIELDS = [
  'accessUrl',
  'createdAt',
  'expiresAt',
  'id',
  'lastSeen',
  'method',
  'name',
  'password',
  'paused',
  'port',
  'prefix',
  'subscriptionUrls',
  'usage',
];

/** The per-key routes, each with a valid body, for "unknown key" and auth checks. */
const PER_KEY_ROUTES = (id: string): Array<[string, string, Json | undefined]> => [
  ['GET', `/access-keys/${id}`, undefined],
  ['DELETE', `/access-keys/${id}`, undefined],
  ['PUT', `/access-keys/${id}/name`, { name: 'a' }],
  ['PUT', `/access-keys/${id}/data-limit`, { limit: { bytes: 1 } }],
  ['DELETE', `/access-keys/${id}/data-limit`, undefined],
  ['PUT', `/access-keys/${id}/paused`, { paused: true }],
  ['POST', `/access-keys/${id}/pause`, undefined],
  ['POST', `/access-keys/${id}/resume`, undefined],
  ['PUT', `/access-keys/${id}/expiry`, { expiresAt: 1 }],
  ['DELETE', `/access-keys/${id}/expiry`, undefined],
  ['GET', `/access-keys/${id}/usage`, undefined],
  ['PUT', `/access-keys/${id}/disguise`, { disguise: false }],
];

describe('management API: server settings', () => {
  test('GET /server is Outline-shaped, with the extensions', async (t) => {
    const { call, store } = await api(t);
    const r = await call('GET', '/server');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const s = store.settings();
    assert.deepEqual(r.json, {
      name: 'Pigeon',
      serverId: s.serverId,
      metricsEnabled: true,
      createdTimestampMs: s.createdAt,
      version: '9.9.9',
      portForNewAccessKeys: 4433,
      hostnameForAccessKeys: 'vpn.example.org',
      defaultMethod: 'chacha20-ietf-poly1305',
      defaultDisguise: true,
    });
  });

  test('PUT /name, hostname, port, default data limit: 204 with no body, visible in GET /server', async (t) => {
    const { call, changes } = await api(t);
    const before = changes();
    for (const [path, body] of [
      ['/name', { name: 'Family' }],
      ['/server/hostname-for-access-keys', { hostname: '203.0.113.7' }],
      ['/server/port-for-new-access-keys', { port: 5555 }],
      ['/server/access-key-data-limit', { limit: { bytes: 1000 } }],
    ] as const) {
      const r = await call('PUT', path, body);
      assert.equal(r.status, 204, `${path}: ${r.body}`);
      assert.equal(r.body, '');
    }
    assert.equal(changes(), before + 4);
    let s = (await call('GET', '/server')).json!;
    assert.equal(s.name, 'Family');
    assert.equal(s.hostnameForAccessKeys, '203.0.113.7');
    assert.equal(s.portForNewAccessKeys, 5555);
    assert.deepEqual(s.accessKeyDataLimit, { bytes: 1000 });
    assert.equal(s.accessKeyDataLimitWindow, 'rolling-30d');

    assert.equal(
      (await call('PUT', '/server/access-key-data-limit', { limit: { bytes: 7, window: 'total' } })).status,
      204,
    );
    assert.equal((await call('GET', '/server')).json!.accessKeyDataLimitWindow, 'total');
    const del = await call('DELETE', '/server/access-key-data-limit');
    assert.equal(del.status, 204);
    s = (await call('GET', '/server')).json!;
    assert.equal(s.accessKeyDataLimit, undefined);
    assert.equal(s.accessKeyDataLimitWindow, undefined);
    assert.equal(changes(), before + 6);
  });

  test('host names and IP addresses are accepted (IPv6 with or without brackets)', async (t) => {
    const { call } = await api(t);
    for (const [given, stored] of [
      ['vpn.example.org', 'vpn.example.org'],
      ['Example.COM.', 'Example.COM'],
      ['localhost', 'localhost'],
      ['198.51.100.1', '198.51.100.1'],
      ['2001:db8::1', '2001:db8::1'],
      ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
      ['[2001:db8::2]', '2001:db8::2'],
    ]) {
      assert.equal((await call('PUT', '/server/hostname-for-access-keys', { hostname: given })).status, 204);
      assert.equal((await call('GET', '/server')).json!.hostnameForAccessKeys, stored);
    }
    const k = (await call('POST', '/access-keys')).json!;
    assert.equal(parseSsUri(k.accessUrl as string).host, '2001:db8::2');
  });
});

describe('management API: access keys', () => {
  test('POST /access-keys with no body: 201, the defaults, the full key shape', async (t) => {
    const { call, store, changes } = await api(t);
    const before = changes();
    const r = await call('POST', '/access-keys');
    assert.equal(r.status, 201);
    const k = r.json!;
    assert.deepEqual(Object.keys(k).sort(), KEY_FIELDS);
    const stored = store.getKey(k.id as string)!;
    assert.deepEqual(k, {
      id: '1',
      name: 'Key 1',
      password: stored.secret,
      port: 4433,
      method: 'chacha20-ietf-poly1305',
      accessUrl: k.accessUrl,
      expiresAt: null,
      paused: false,
      lastSeen: null,
      createdAt: stored.createdAt,
      prefix: stored.prefix,
      usage: { total: 0, last30d: 0 },
      subscriptionUrls: {
        sip008: `${PUBLIC_URL}/sub/${stored.token}/sip008.json`,
        ssconf: `ssconf://vpn.example.org:8443/sub/${stored.token}/outline.json`,
        outline: `${PUBLIC_URL}/sub/${stored.token}/outline.json`,
        clash: `${PUBLIC_URL}/sub/${stored.token}/clash.yaml`,
        singBox: `${PUBLIC_URL}/sub/${stored.token}/sing-box.json`,
        uri: `${PUBLIC_URL}/sub/${stored.token}/uri.txt`,
      },
    });
    assert.deepEqual(parseSsUri(k.accessUrl as string), {
      method: 'chacha20-ietf-poly1305',
      password: stored.secret,
      host: 'vpn.example.org',
      port: 4433,
      tag: 'Key 1',
      params: { prefix: stored.prefix! }, // disguised by default
    });
    assert.equal(changes(), before + 1);
    // An empty JSON body, or {}, is the same as none.
    assert.equal(
      (await call('POST', '/access-keys', '', { 'content-type': 'application/json' })).status,
      201,
    );
    assert.equal((await call('POST', '/access-keys', {})).status, 201);
  });

  test('POST /access-keys with every field', async (t) => {
    const { create, store } = await api(t);
    const k = await create({
      name: 'Mum',
      method: 'aes-256-gcm',
      password: 'correct horse:battery/staple?',
      port: 8388,
      limit: { bytes: 5000, window: 'total' },
      expiresAt: 4_000_000_000_000,
    });
    assert.equal(k.name, 'Mum');
    assert.equal(k.method, 'aes-256-gcm');
    assert.equal(k.password, 'correct horse:battery/staple?');
    assert.equal(k.port, 8388);
    assert.deepEqual(k.dataLimit, { bytes: 5000 });
    assert.equal(k.dataLimitWindow, 'total');
    assert.equal(k.expiresAt, 4_000_000_000_000);
    const uri = parseSsUri(k.accessUrl as string);
    assert.equal(uri.password, 'correct horse:battery/staple?');
    assert.equal(uri.port, 8388);
    assert.deepEqual(store.getKey(k.id as string)!.dataLimit, { bytes: 5000, window: 'total' });
    // A limit without a window counts the last 30 days.
    const k2 = await create({ limit: { bytes: 1 } });
    assert.equal(k2.dataLimitWindow, 'rolling-30d');
  });

  test('first-packet disguise: on by default, per key on and off, and the server default', async (t) => {
    const { call, create, changes } = await api(t);
    const k = await create();
    assert.match(k.prefix as string, /^(GET|POST|HEAD) \//);
    assert.equal(parseSsUri(k.accessUrl as string).params.prefix, k.prefix, 'the URI carries the prefix');
    const plain = await create({ disguise: false });
    assert.equal(plain.prefix, null);
    assert.deepEqual(parseSsUri(plain.accessUrl as string).params, {});
    const before = changes();
    assert.equal(
      (await call('PUT', `/access-keys/${k.id as string}/disguise`, { disguise: false })).status,
      204,
    );
    assert.equal((await call('GET', `/access-keys/${k.id as string}`)).json!.prefix, null);
    assert.equal(
      (await call('PUT', `/access-keys/${k.id as string}/disguise`, { disguise: true })).status,
      204,
    );
    assert.match(
      (await call('GET', `/access-keys/${k.id as string}`)).json!.prefix as string,
      /^(GET|POST|HEAD) \//,
    );
    assert.ok(changes() > before);
    assert.equal((await call('PUT', '/server/default-disguise', { disguise: false })).status, 204);
    assert.equal((await call('GET', '/server')).json!.defaultDisguise, false);
    assert.equal((await create()).prefix, null);
    assert.equal((await create({ disguise: true })).prefix !== null, true);
    assert.equal((await call('PUT', '/server/default-disguise', { disguise: 'yes' })).status, 400);
  });

  test('the method comes from the request or the default; the port from the settings at creation', async (t) => {
    const { create, call, store } = await api(t);
    store.updateSettings({ defaultMethod: 'aes-128-gcm' });
    assert.equal((await create()).method, 'aes-128-gcm');
    for (const method of METHODS) assert.equal((await create({ method })).method, method);
    await call('PUT', '/server/port-for-new-access-keys', { port: 6000 });
    const k = await create();
    assert.equal(k.port, 6000);
    // Keys made before keep their port.
    assert.equal((await call('GET', '/access-keys/1')).json!.port, 4433);
  });

  test('2022 AES keys share an identity PSK made on first use; their password is "iPSK:uPSK"', async (t) => {
    const { create, store, changes } = await api(t);
    assert.equal(store.settings().identityPsks['2022-blake3-aes-128-gcm'], undefined);
    const before = changes();
    const a = await create({ method: '2022-blake3-aes-128-gcm' });
    const ipsk = store.settings().identityPsks['2022-blake3-aes-128-gcm']!;
    assert.equal(Buffer.from(ipsk, 'base64').length, 16);
    assert.equal(a.password, `${ipsk}:${store.getKey(a.id as string)!.secret}`);
    assert.equal(parseSsUri(a.accessUrl as string).password, a.password);
    const b = await create({ method: '2022-blake3-aes-128-gcm' });
    const [ib, ub] = (b.password as string).split(':');
    assert.equal(ib, ipsk);
    assert.notEqual(ub, (a.password as string).split(':')[1]);
    assert.ok(changes() > before);

    const c = await create({ method: '2022-blake3-aes-256-gcm' });
    const ipsk256 = store.settings().identityPsks['2022-blake3-aes-256-gcm']!;
    assert.equal(Buffer.from(ipsk256, 'base64').length, 32);
    assert.ok((c.password as string).startsWith(`${ipsk256}:`));
    assert.equal(store.settings().identityPsks['2022-blake3-aes-128-gcm'], ipsk); // kept

    // chacha20 2022 has no identity header: no iPSK, no colon.
    const d = await create({ method: '2022-blake3-chacha20-poly1305' });
    assert.ok(!(d.password as string).includes(':'));
    assert.equal(Buffer.from(d.password as string, 'base64').length, 32);
    assert.equal(store.settings().identityPsks['2022-blake3-chacha20-poly1305'], undefined);

    // A given user PSK is used as the uPSK.
    const upsk = Buffer.alloc(16, 7).toString('base64');
    const e = await create({ method: '2022-blake3-aes-128-gcm', password: upsk });
    assert.equal(e.password, `${ipsk}:${upsk}`);
  });

  test('no hostname for access keys yet: 409 instead of keys without a host, and no key is made', async (t) => {
    const store = new MemoryKeyStore({ portForNewKeys: 4433 }); // hostname '' as in a fresh store
    const { call } = await api(t, { store });
    for (const [method, path] of [
      ['POST', '/access-keys'],
      ['GET', '/access-keys'],
    ]) {
      const r = await call(method!, path!);
      assert.equal(r.status, 409, `${method} ${path}`);
      assert.equal(r.json!.code, 'conflict');
      assert.match(r.json!.message as string, /hostname-for-access-keys/);
    }
    assert.equal(store.listKeys().length, 0);
    assert.equal(
      (await call('PUT', '/server/hostname-for-access-keys', { hostname: 'h.example' })).status,
      204,
    );
    assert.equal((await call('POST', '/access-keys')).status, 201);
  });

  test('a password already used by a key of the same method on the same port: 409', async (t) => {
    const { call, create } = await api(t);
    const a = await create({ password: 'shared-password' });
    const r = await call('POST', '/access-keys', { password: 'shared-password' });
    assert.equal(r.status, 409);
    assert.deepEqual(r.json, {
      code: 'conflict',
      message: `access key ${a.id as string} already uses this password with chacha20-ietf-poly1305 on port 4433`,
    });
    // Another method or port tells them apart.
    await create({ password: 'shared-password', method: 'aes-128-gcm' });
    await create({ password: 'shared-password', port: 9999 });
  });

  test('list, get, rename, limit, pause, expiry, usage, transfer, delete', async (t) => {
    const { call, create, store, changes } = await api(t);
    const k = await create({ name: 'Mum' });
    const other = await create({ name: 'Dad' });
    const id = k.id as string;

    const list = await call('GET', '/access-keys');
    assert.equal(list.status, 200);
    assert.deepEqual(Object.keys(list.json!), ['accessKeys']);
    const keys = list.json!.accessKeys as Json[];
    assert.deepEqual(
      keys.map((x) => x.id),
      [id, other.id],
    );
    assert.deepEqual(keys[0], k);
    assert.deepEqual((await call('GET', `/access-keys/${id}`)).json, k);

    let n = changes();
    const ok = async (method: string, path: string, body?: Json) => {
      const r = await call(method, path, body);
      assert.equal(r.status, 204, `${method} ${path}: ${r.body}`);
      assert.equal(r.body, '');
      assert.equal(changes(), ++n, `${method} ${path} calls onSettingsChange`);
    };
    await ok('PUT', `/access-keys/${id}/name`, { name: 'Mother' });
    await ok('PUT', `/access-keys/${id}/data-limit`, { limit: { bytes: 9, window: 'total' } });
    await ok('POST', `/access-keys/${id}/pause`);
    await ok('PUT', `/access-keys/${id}/expiry`, { expiresAt: 4_000_000_000_000 });
    let g = (await call('GET', `/access-keys/${id}`)).json!;
    assert.equal(g.name, 'Mother');
    assert.equal(parseSsUri(g.accessUrl as string).tag, 'Mother');
    assert.deepEqual(g.dataLimit, { bytes: 9 });
    assert.equal(g.dataLimitWindow, 'total');
    assert.equal(g.paused, true);
    assert.equal(g.expiresAt, 4_000_000_000_000);

    await ok('POST', `/access-keys/${id}/resume`);
    assert.equal((await call('GET', `/access-keys/${id}`)).json!.paused, false);
    await ok('PUT', `/access-keys/${id}/paused`, { paused: true });
    assert.equal(store.getKey(id)!.paused, true);
    await ok('PUT', `/access-keys/${id}/paused`, { paused: false });
    await ok('DELETE', `/access-keys/${id}/expiry`);
    await ok('DELETE', `/access-keys/${id}/data-limit`);
    await ok('PUT', `/access-keys/${id}/name`, { name: '' });
    g = (await call('GET', `/access-keys/${id}`)).json!;
    assert.equal(g.paused, false);
    assert.equal(g.expiresAt, null);
    assert.equal(g.dataLimit, undefined);
    assert.equal(g.dataLimitWindow, undefined);
    assert.equal(g.name, '');
    assert.equal(parseSsUri(g.accessUrl as string).tag, undefined);

    const now = Date.now();
    store.addUsage(id, 1234, now);
    store.addUsage(id, 100, now - 40 * 86_400_000); // outside the 30-day window
    store.addUsage(other.id as string, 5, now);
    const u = await call('GET', `/access-keys/${id}/usage`);
    assert.equal(u.status, 200);
    assert.deepEqual(u.json, { total: 1334, last30d: 1234 });
    assert.deepEqual((await call('GET', `/access-keys/${id}`)).json!.usage, { total: 1334, last30d: 1234 });
    assert.deepEqual(
      ((await call('GET', '/access-keys')).json!.accessKeys as Json[]).map((x) => x.usage),
      [
        { total: 1334, last30d: 1234 },
        { total: 5, last30d: 5 },
      ],
    );
    assert.deepEqual((await call('GET', '/metrics/transfer')).json, {
      bytesTransferredByUserId: { [id]: 1234, [other.id as string]: 5 },
    });

    await ok('DELETE', `/access-keys/${id}`);
    assert.equal((await call('GET', `/access-keys/${id}`)).status, 404);
    assert.deepEqual((await call('GET', '/metrics/transfer')).json, {
      bytesTransferredByUserId: { [other.id as string]: 5 },
    });
    // Ids are never reused.
    assert.equal((await create()).id, '3');
  });

  test('unknown key: 404 {code: not_found, message: "access key N not found"} on every per-key route', async (t) => {
    const { call, create } = await api(t);
    await create();
    for (const id of ['77', 'abc', '0']) {
      for (const [method, path, body] of PER_KEY_ROUTES(id)) {
        const r = await call(method, path, body);
        assert.equal(r.status, 404, `${method} ${path}`);
        assert.deepEqual(r.json, { code: 'not_found', message: `access key ${id} not found` });
      }
    }
  });
});

describe('management API: bad input', () => {
  test('400 {code: bad_request} with a message naming the field', async (t) => {
    const { call, create } = await api(t);
    const k = await create();
    const id = k.id as string;
    const cases: Array<[string, string, unknown, RegExp]> = [
      // wrong types
      ['POST', '/access-keys', { name: 5 }, /body\.name must be a string/],
      ['POST', '/access-keys', { method: 42 }, /body\.method/],
      ['POST', '/access-keys', { limit: 'lots' }, /body\.limit must be an object/],
      ['POST', '/access-keys', { limit: { bytes: '100' } }, /body\.limit\.bytes must be an integer/],
      ['POST', '/access-keys', { expiresAt: 'tomorrow' }, /body\.expiresAt/],
      ['POST', '/access-keys', [], /body must be an object/],
      ['PUT', '/server/port-for-new-access-keys', { port: '5555' }, /body\.port must be an integer/],
      ['PUT', '/server/port-for-new-access-keys', { port: 80.5 }, /body\.port must be an integer/],
      ['PUT', `/access-keys/${id}/paused`, { paused: 'yes' }, /body\.paused must be a boolean/],
      ['PUT', `/access-keys/${id}/expiry`, { expiresAt: '2030-01-01' }, /body\.expiresAt must be an integer/],
      // out of range
      ['POST', '/access-keys', { limit: { bytes: -1 } }, /body\.limit\.bytes must be >= 0/],
      ['PUT', `/access-keys/${id}/data-limit`, { limit: { bytes: -5 } }, /body\.limit\.bytes must be >= 0/],
      ['PUT', '/server/access-key-data-limit', { limit: { bytes: 1.5 } }, /body\.limit\.bytes/],
      ['PUT', '/server/port-for-new-access-keys', { port: 0 }, /body\.port must be >= 1/],
      ['PUT', '/server/port-for-new-access-keys', { port: 70000 }, /body\.port must be <= 65535/],
      ['POST', '/access-keys', { port: 0 }, /body\.port must be >= 1/],
      ['PUT', `/access-keys/${id}/expiry`, { expiresAt: -1 }, /body\.expiresAt must be >= 0/],
      // too long
      [
        'POST',
        '/access-keys',
        { name: 'x'.repeat(101) },
        /body\.name must NOT have more than 100 characters/,
      ],
      ['PUT', `/access-keys/${id}/name`, { name: 'x'.repeat(101) }, /body\.name/],
      ['PUT', '/name', { name: 'x'.repeat(101) }, /body\.name/],
      ['PUT', '/name', { name: '' }, /body\.name must NOT have fewer than 1 characters/],
      ['POST', '/access-keys', { password: 'p'.repeat(201) }, /body\.password/],
      // unknown values and fields
      ['POST', '/access-keys', { method: 'rc4-md5' }, /body\.method must be one of: aes-128-gcm, /],
      [
        'POST',
        '/access-keys',
        { limit: { bytes: 1, window: 'weekly' } },
        /body\.limit\.window must be one of/,
      ],
      ['POST', '/access-keys', { unknown: 1 }, /body\.unknown is not a known field/],
      ['PUT', '/name', { name: 'a', extra: true }, /body\.extra is not a known field/],
      // missing
      ['PUT', '/name', {}, /body\.name is required/],
      ['PUT', '/server/port-for-new-access-keys', {}, /body\.port is required/],
      ['PUT', '/server/port-for-new-access-keys', undefined, /body must be an object/],
      ['PUT', `/access-keys/${id}/data-limit`, {}, /body\.limit is required/],
      ['PUT', `/access-keys/${id}/data-limit`, { limit: {} }, /body\.limit\.bytes is required/],
      // semantic
      ['PUT', '/server/hostname-for-access-keys', { hostname: 'bad host!' }, /body\.hostname must be a host/],
      ['PUT', '/server/hostname-for-access-keys', { hostname: '-lead.example' }, /body\.hostname/],
      ['PUT', '/server/hostname-for-access-keys', { hostname: '999.1.1.1' }, /body\.hostname/],
      ['PUT', '/server/hostname-for-access-keys', { hostname: '' }, /body\.hostname/],
      [
        'POST',
        '/access-keys',
        { method: '2022-blake3-aes-128-gcm', password: 'not-a-16-byte-key' },
        /body\.password must be the user key for 2022-blake3-aes-128-gcm: base64 of exactly 16 bytes/,
      ],
      [
        'POST',
        '/access-keys',
        { method: '2022-blake3-aes-256-gcm', password: Buffer.alloc(16).toString('base64') },
        /body\.password .* 32 bytes/,
      ],
      ['POST', '/access-keys', { password: '' }, /body\.password must NOT have fewer than 1 characters/],
    ];
    for (const [method, path, body, message] of cases) {
      const r = await call(method, path, body);
      const what = `${method} ${path} ${JSON.stringify(body)}`;
      assert.equal(r.status, 400, `${what} → ${r.status} ${r.body}`);
      assert.deepEqual(Object.keys(r.json!).sort(), ['code', 'message'], what);
      assert.equal(r.json!.code, 'bad_request', what);
      assert.match(r.json!.message as string, message, what);
    }
    // Nothing was changed by any of them.
    assert.equal(((await call('GET', '/access-keys')).json!.accessKeys as unknown[]).length, 1);
  });

  test('bad JSON, a lone surrogate, a body over 64 KB, a body that is not JSON', async (t) => {
    const { call } = await api(t);
    const json = { 'content-type': 'application/json' };
    for (const raw of ['{not json', '{"name": "a",}', '{"__proto__": {"x": 1}}']) {
      const r = await call('POST', '/access-keys', raw, json);
      assert.equal(r.status, 400, raw);
      assert.deepEqual(r.json, { code: 'bad_request', message: 'body is not valid JSON' });
    }
    const surrogate = await call('POST', '/access-keys', '{"password": "a\\ud800b"}', json);
    assert.equal(surrogate.status, 400);
    assert.match(surrogate.json!.message as string, /body\.password/);

    const big = await call('POST', '/access-keys', JSON.stringify({ name: 'x'.repeat(70_000) }), json);
    assert.equal(big.status, 413);
    assert.equal(big.json!.code, 'payload_too_large');

    const xml = await call('POST', '/access-keys', '<key/>', { 'content-type': 'application/xml' });
    assert.equal(xml.status, 415);
    assert.equal(xml.json!.code, 'unsupported_media_type');
    const text = await call('PUT', '/name', 'Family', { 'content-type': 'text/plain' });
    assert.equal(text.status, 400);
    assert.equal(text.json!.code, 'bad_request');
  });

  test('a failure inside is a bare 500: no stack, no message; it goes to the log without the URL', async (t) => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const store = new MemoryKeyStore({ hostname: 'vpn.example.org', portForNewKeys: 4433 });
    const { call, create } = await api(t, { store, log: pino({ level: 'trace' }, sink) });
    const k = await create();
    store.listKeys = () => {
      throw new Error('disk on fire at /var/lib/pigeon');
    };
    const r = await call('GET', '/access-keys');
    assert.equal(r.status, 500);
    assert.deepEqual(r.json, { code: 'internal', message: 'internal error' });
    assert.doesNotMatch(r.body, /disk|fire|at |stack/);
    const log = lines.join('');
    assert.match(log, /disk on fire/);
    assert.match(log, /"route":"\/access-keys"/);
    // Other requests, logged or not, never put the secret or a token into the log.
    await call('GET', `/sub/${store.getKey(k.id as string)!.token}/sip008.json`);
    await call('GET', '/nope');
    assert.doesNotMatch(lines.join(''), new RegExp(SECRET));
    assert.doesNotMatch(lines.join(''), new RegExp(store.getKey(k.id as string)!.token));
    assert.doesNotMatch(lines.join(''), /incoming request|request completed/);
  });
});

describe('management API: the secret', () => {
  test('wrong or missing prefix: 404 like any unknown path; bare path: 401 without the right bearer', async (t) => {
    const { inject, create } = await api(t);
    const k = await create();
    const routes: Array<[string, string, Json | undefined]> = [
      ['GET', '/server', undefined],
      ['PUT', '/name', { name: 'x' }],
      ['PUT', '/server/hostname-for-access-keys', { hostname: 'evil.example' }],
      ['PUT', '/server/port-for-new-access-keys', { port: 1 }],
      ['PUT', '/server/access-key-data-limit', { limit: { bytes: 0 } }],
      ['DELETE', '/server/access-key-data-limit', undefined],
      ['POST', '/access-keys', {}],
      ['GET', '/access-keys', undefined],
      ['GET', '/metrics/transfer', undefined],
      ['GET', '/metrics', undefined],
      ['GET', '/openapi.json', undefined],
      ...PER_KEY_ROUTES(k.id as string),
    ];
    const wrongSecret = SECRET.replace(/.$/, 'X'); // same length, one character off
    for (const [method, path, body] of routes) {
      for (const prefix of ['/wrong', `/${wrongSecret}`, `/${SECRET.slice(0, -1)}`, `/${SECRET}x`]) {
        const r = await inject(method, `${prefix}${path}`, body);
        assert.equal(r.status, 404, `${method} ${prefix}${path}`);
        assert.deepEqual(r.json, NOT_FOUND);
      }
      for (const authorization of [undefined, `Bearer ${wrongSecret}`, 'Bearer', `Basic ${SECRET}`, SECRET]) {
        const r = await inject(method, path, body, authorization ? { authorization } : {});
        assert.equal(r.status, 401, `${method} ${path} with ${String(authorization)}`);
        assert.deepEqual(r.json, { code: 'unauthorized', message: 'missing or wrong bearer token' });
        assert.equal(r.headers['www-authenticate'], 'Bearer');
      }
    }
    // Nothing changed.
    assert.equal((await inject('GET', `/${SECRET}/server`)).json!.name, 'Pigeon');
    assert.equal((await inject('GET', `/${SECRET}/access-keys/${k.id as string}`)).status, 200);
  });

  test('the bearer form answers every route like the prefix form', async (t) => {
    const { bearer, call, inject } = await api(t);
    const viaBearer = await bearer('POST', '/access-keys', { name: 'B' });
    assert.equal(viaBearer.status, 201);
    const id = viaBearer.json!.id as string;
    assert.deepEqual((await bearer('GET', `/access-keys/${id}`)).json, viaBearer.json);
    assert.deepEqual((await bearer('GET', '/server')).json, (await call('GET', '/server')).json);
    assert.equal((await bearer('PUT', '/name', { name: 'Via bearer' })).status, 204);
    assert.equal((await call('GET', '/server')).json!.name, 'Via bearer');
    assert.equal((await bearer('POST', `/access-keys/${id}/pause`)).status, 204);
    assert.equal((await bearer('GET', `/access-keys/${id}/usage`)).status, 200);
    assert.equal((await bearer('GET', '/metrics')).status, 200);
    assert.equal((await bearer('GET', '/openapi.json')).status, 200);
    assert.equal((await bearer('DELETE', `/access-keys/${id}`)).status, 204);
    assert.equal((await bearer('GET', `/access-keys/${id}`)).status, 404);
    // The scheme is case-insensitive; the secret is not.
    assert.equal(
      (await inject('GET', '/server', undefined, { authorization: `bearer ${SECRET}` })).status,
      200,
    );
    assert.equal(
      (await inject('GET', '/server', undefined, { authorization: `Bearer ${SECRET.toLowerCase()}` })).status,
      401,
    );
    // The prefix alone is enough, whatever the Authorization header says.
    assert.equal(
      (await inject('GET', `/${SECRET}/server`, undefined, { authorization: 'Bearer nope' })).status,
      200,
    );
    // The prefix with nothing after it, or an unknown path after it: 404.
    for (const path of [`/${SECRET}`, `/${SECRET}/`, `/${SECRET}?x=1`, `/${SECRET}/nope`]) {
      const r = await inject('GET', path);
      assert.equal(r.status, 404, path);
      assert.deepEqual(r.json, NOT_FOUND);
    }
    // Query strings do not get in the way.
    assert.equal((await inject('GET', `/${SECRET}/server?x=1`)).status, 200);
  });

  test('a secret too short or with characters that do not belong in a path is refused', async () => {
    for (const secret of [
      '',
      'short',
      'has/slash/in/it/long',
      'has space in it, long',
      'ünïcödé-secret-long',
    ]) {
      await assert.rejects(
        createManagementApi({
          store: new MemoryKeyStore(),
          metrics: new PrometheusMetrics(),
          secret,
          version: '1',
          publicUrl: PUBLIC_URL,
        }),
        /secret/,
      );
    }
  });

  test('responses are not cached', async (t) => {
    const { call, create } = await api(t);
    await create();
    for (const path of ['/server', '/access-keys', '/nope']) {
      const r = await call('GET', path);
      assert.equal(r.headers['cache-control'], 'no-store', path);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
    }
  });
});

describe('management API: subscriptions', () => {
  test('SIP008, Outline, Clash, sing-box and ss:// for the right key, without the secret', async (t) => {
    const { inject, create, store } = await api(t);
    await create({ name: 'Someone else' });
    const k = await create({ name: 'Dad', method: 'chacha20-ietf-poly1305', limit: { bytes: 10_000 } });
    const key = store.getKey(k.id as string)!;
    store.addUsage(key.id, 2500);
    const urls = k.subscriptionUrls as Record<string, string>;
    const path = (u: string) => new URL(u).pathname;

    const sip = await inject('GET', path(urls.sip008!));
    assert.equal(sip.status, 200);
    assert.equal(sip.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual(sip.json, {
      version: 1,
      servers: [
        {
          id: (sip.json!.servers as Json[])[0]!.id,
          remarks: 'Dad',
          server: 'vpn.example.org',
          server_port: 4433,
          password: k.password,
          method: 'chacha20-ietf-poly1305',
        },
      ],
      bytes_used: 2500,
      bytes_remaining: 7500,
    });
    assert.match(
      (sip.json!.servers as Json[])[0]!.id as string,
      /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );

    const outline = await inject('GET', path(urls.outline!));
    assert.equal(outline.status, 200);
    assert.deepEqual(outline.json, {
      server: 'vpn.example.org',
      server_port: 4433,
      password: k.password,
      method: 'chacha20-ietf-poly1305',
      prefix: k.prefix, // Outline's client disguises the first packet with it
    });
    assert.equal(urls.ssconf, urls.outline!.replace(/^https:/, 'ssconf:'));

    const clash = await inject('GET', path(urls.clash!));
    assert.equal(clash.status, 200);
    assert.equal(clash.headers['content-type'], 'text/yaml; charset=utf-8');
    assert.equal(clash.headers['subscription-userinfo'], 'upload=0; download=2500; total=10000');
    assert.deepEqual(parseYaml(clash.body), {
      proxies: [
        {
          name: 'Dad',
          type: 'ss',
          server: 'vpn.example.org',
          port: 4433,
          cipher: 'chacha20-ietf-poly1305',
          password: k.password,
          udp: true,
        },
      ],
      'proxy-groups': [{ name: 'Pigeon', type: 'select', proxies: ['Dad'] }],
      rules: ['MATCH,Pigeon'],
    });

    const sb = await inject('GET', path(urls.singBox!));
    assert.equal(sb.status, 200);
    assert.match(String(sb.headers['content-type']), /^application\/json/);
    assert.deepEqual(sb.json, {
      outbounds: [
        {
          type: 'shadowsocks',
          tag: 'Dad',
          server: 'vpn.example.org',
          server_port: 4433,
          method: 'chacha20-ietf-poly1305',
          password: k.password,
        },
      ],
    });

    const uri = await inject('GET', path(urls.uri!));
    assert.equal(uri.status, 200);
    assert.equal(uri.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(uri.body, `${k.accessUrl as string}\n`);
    assert.deepEqual(parseSsUri(uri.body), {
      method: 'chacha20-ietf-poly1305',
      password: key.secret,
      host: 'vpn.example.org',
      port: 4433,
      tag: 'Dad',
      params: { prefix: key.prefix! },
    });
  });

  test('a 2022 AES key subscribes with "iPSK:uPSK" everywhere', async (t) => {
    const { inject, create, store } = await api(t);
    const k = await create({ method: '2022-blake3-aes-256-gcm', name: 'New' });
    const key = store.getKey(k.id as string)!;
    const ipsk = store.settings().identityPsks['2022-blake3-aes-256-gcm']!;
    const want = `${ipsk}:${key.secret}`;
    const base = `/sub/${key.token}`;
    const sip = (await inject('GET', `${base}/sip008.json`)).json!;
    assert.equal((sip.servers as Json[])[0]!.password, want);
    assert.equal(sip.bytes_used, 0);
    assert.equal(sip.bytes_remaining, undefined); // no limit, so none remaining (SIP008)
    assert.equal((await inject('GET', `${base}/outline.json`)).json!.password, want);
    const clash = parseYaml((await inject('GET', `${base}/clash.yaml`)).body) as { proxies: Json[] };
    assert.equal(clash.proxies[0]!.password, want);
    assert.equal(clash.proxies[0]!.cipher, '2022-blake3-aes-256-gcm');
    assert.equal(
      ((await inject('GET', `${base}/sing-box.json`)).json!.outbounds as Json[])[0]!.password,
      want,
    );
    const uri = parseSsUri((await inject('GET', `${base}/uri.txt`)).body);
    assert.equal(uri.password, want);
    assert.equal(uri.method, '2022-blake3-aes-256-gcm');
  });

  test('subscriptions follow the hostname and the server-wide limit', async (t) => {
    const { inject, call, create, store } = await api(t);
    const k = await create({ name: 'Moved' });
    const base = `/sub/${store.getKey(k.id as string)!.token}`;
    await call('PUT', '/server/hostname-for-access-keys', { hostname: 'new.example.org' });
    await call('PUT', '/server/port-for-new-access-keys', { port: 7777 });
    await call('PUT', '/server/access-key-data-limit', { limit: { bytes: 100 } });
    const sip = (await inject('GET', `${base}/sip008.json`)).json!;
    assert.equal((sip.servers as Json[])[0]!.server, 'new.example.org');
    assert.equal((sip.servers as Json[])[0]!.server_port, 4433); // the key's own port
    assert.equal(sip.bytes_remaining, 100);
    assert.equal((await inject('GET', `${base}/outline.json`)).json!.server, 'new.example.org');
    assert.match((await inject('GET', `${base}/clash.yaml`)).body, /server: new\.example\.org/);
    assert.equal(parseSsUri((await inject('GET', `${base}/uri.txt`)).body).host, 'new.example.org');
  });

  test('unknown or deleted token: the same 404 as any unknown path', async (t) => {
    const { inject, call, create, store } = await api(t);
    const k = await create();
    const token = store.getKey(k.id as string)!.token;
    const unknownPath = await inject('GET', '/nothing/here');
    assert.equal(unknownPath.status, 404);
    assert.deepEqual(unknownPath.json, NOT_FOUND);
    await call('DELETE', `/access-keys/${k.id as string}`);
    for (const file of ['sip008.json', 'outline.json', 'clash.yaml', 'sing-box.json', 'uri.txt']) {
      for (const t of ['not-a-token', token, token.slice(1), `${token}x`, SECRET]) {
        const r = await inject('GET', `/sub/${t}/${file}`);
        assert.equal(r.status, 404, `${t} ${file}`);
        assert.equal(r.body, unknownPath.body);
        assert.equal(r.headers['content-type'], unknownPath.headers['content-type']);
      }
    }
    assert.equal((await inject('GET', `/sub/${token}/other.json`)).status, 404);
  });
});

describe('management API: metrics and the document', () => {
  test('GET /metrics: Prometheus text under the secret', async (t) => {
    const { call, metrics } = await api(t);
    metrics.bytes('1', 'in', 100);
    metrics.bytes('1', 'out', 250);
    metrics.connectionOpened('1', 'tcp');
    metrics.authFailure('replay');
    metrics.connectionError('refused');
    const r = await call('GET', '/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.body, /^pigeon_key_bytes_total\{key="1",direction="in"\} 100$/m);
    assert.match(r.body, /^pigeon_key_bytes_total\{key="1",direction="out"\} 250$/m);
    assert.match(r.body, /^pigeon_active_connections\{protocol="tcp"\} 1$/m);
    assert.match(r.body, /^pigeon_auth_failures_total\{reason="replay"\} 1$/m);
    assert.match(r.body, /^pigeon_connection_errors_total\{kind="refused"\} 1$/m);
  });

  test('GET /openapi.json is the committed docs/openapi.json, documents every route, and holds no secret', async (t) => {
    const { call, app } = await api(t);
    const r = await call('GET', '/openapi.json');
    assert.equal(r.status, 200);
    const live = r.json!;
    if (process.env.PIGEON_UPDATE_OPENAPI === '1') {
      const config = (await resolveConfig(OPENAPI_FILE)) ?? {};
      writeFileSync(OPENAPI_FILE, await prettierFormat(JSON.stringify(live), { ...config, parser: 'json' }));
    }
    const committed = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')) as unknown;
    assert.deepEqual(
      live,
      committed,
      'docs/openapi.json is stale: PIGEON_UPDATE_OPENAPI=1 node --import tsx --test test/control/api.test.ts',
    );
    assert.deepEqual(app.swagger(), live);
    const text = JSON.stringify(live);
    assert.doesNotMatch(text, new RegExp(SECRET));
    assert.doesNotMatch(text, /vpn\.example\.org/);
    assert.equal(live.openapi, '3.1.0');
    const paths = live.paths as Record<string, Record<string, Json>>;
    const documented = Object.entries(paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const expected = [
      'GET /server',
      'PUT /name',
      'PUT /server/hostname-for-access-keys',
      'PUT /server/port-for-new-access-keys',
      'PUT /server/access-key-data-limit',
      'PUT /server/default-disguise',
      'DELETE /server/access-key-data-limit',
      'POST /access-keys',
      'GET /access-keys',
      'GET /access-keys/{id}',
      'DELETE /access-keys/{id}',
      'PUT /access-keys/{id}/name',
      'PUT /access-keys/{id}/data-limit',
      'DELETE /access-keys/{id}/data-limit',
      'PUT /access-keys/{id}/disguise',
      'PUT /access-keys/{id}/paused',
      'POST /access-keys/{id}/pause',
      'POST /access-keys/{id}/resume',
      'PUT /access-keys/{id}/expiry',
      'DELETE /access-keys/{id}/expiry',
      'GET /access-keys/{id}/usage',
      'GET /metrics/transfer',
      'GET /metrics',
      'GET /sub/{token}/sip008.json',
      'GET /sub/{token}/outline.json',
      'GET /sub/{token}/clash.yaml',
      'GET /sub/{token}/sing-box.json',
      'GET /sub/{token}/uri.txt',
    ];
    assert.deepEqual(documented.sort(), expected.sort());
    // Subscriptions need no bearer; everything else does.
    for (const [p, ops] of Object.entries(paths))
      for (const op of Object.values(ops)) {
        if (p.startsWith('/sub/')) assert.deepEqual(op.security, [], p);
        else assert.equal(op.security, undefined, p); // the document-wide bearer applies
      }
  });
});

describe('management API over TLS', () => {
  test('the certificate: EC P-256, SHA-256, ten years, the host as CN and subjectAltName; kept files are checked', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-cert-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const dns = await loadOrCreateCertificate(join(dir, 'dns'), 'vpn.example.org');
    const x = new X509Certificate(dns.cert);
    assert.equal(x.subject, 'CN=vpn.example.org');
    assert.equal(x.subjectAltName, 'DNS:vpn.example.org');
    assert.equal(x.publicKey.asymmetricKeyType, 'ec');
    assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(x.fingerprint256.replace(/:/g, ''), dns.sha256);
    const years = (Date.parse(x.validTo) - Date.parse(x.validFrom)) / (365.25 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `${years} years`);
    assert.ok(x.checkPrivateKey(createPrivateKey(dns.key)));

    const v6 = new X509Certificate((await loadOrCreateCertificate(join(dir, 'v6'), '2001:db8::1')).cert);
    assert.equal(v6.subjectAltName, 'IP Address:2001:DB8:0:0:0:0:0:1');

    // A key that does not belong to the certificate is an error, not a silent new fingerprint.
    const other = await loadOrCreateCertificate(join(dir, 'other'), 'other.example');
    writeFileSync(join(dir, 'dns', 'api-key.pem'), other.key);
    await assert.rejects(
      loadOrCreateCertificate(join(dir, 'dns'), 'vpn.example.org'),
      /do not belong together/,
    );
  });

  test('listens with the self-signed certificate; the peer certificate has the advertised SHA-256', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-api-tls-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cert = await loadOrCreateCertificate(dir, '127.0.0.1');
    assert.match(cert.sha256, /^[0-9A-F]{64}$/);
    assert.equal(statSync(join(dir, 'api-key.pem')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'api-cert.pem')).mode & 0o777, 0o600);
    // Reused on the next start.
    assert.deepEqual(await loadOrCreateCertificate(dir, 'other.example'), cert);

    const store = new MemoryKeyStore({ hostname: '127.0.0.1', portForNewKeys: 4433 });
    const app = await createManagementApi({
      store,
      metrics: new PrometheusMetrics(),
      secret: SECRET,
      tls: { key: cert.key, cert: cert.cert },
      version: '1',
      publicUrl: 'https://127.0.0.1:1',
    });
    t.after(() => app.close());
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;

    const { status, body, fingerprint } = await new Promise<{
      status: number;
      body: string;
      fingerprint: string;
    }>((resolve, reject) => {
      // Pinning as Outline Manager does: trust no CA, compare the certificate's SHA-256 instead.
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: `/${SECRET}/server`,
          rejectUnauthorized: false,
        },
        (res) => {
          const peer = (res.socket as TLSSocket).getPeerCertificate();
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              body: text,
              fingerprint: peer.fingerprint256.replace(/:/g, ''),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(fingerprint, cert.sha256);
    assert.equal(status, 200);
    assert.equal((JSON.parse(body) as Json).hostnameForAccessKeys, '127.0.0.1');
  });
});
