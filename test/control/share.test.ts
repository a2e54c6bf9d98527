// What keys look like to apps: ss:// URIs (iPSK:uPSK only for 2022 AES), SIP008, Outline's dynamic
// key, Clash, sing-box, ssconf:// URLs and QR codes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import {
  accessUri,
  clashYaml,
  clientPassword,
  keyTraffic,
  keyUuid,
  outlineJson,
  qrPng,
  qrTerminal,
  singBoxJson,
  sip008Json,
  ssconfUrl,
  subscriptionUrl,
} from '../../src/control/share.js';
import type { AccessKey, ServerSettings } from '../../src/control/types.js';
import type { MethodName } from '../../src/wire/shadowsocks-methods.js';
import { parseSsUri } from '../../src/wire/sip002.js';

const IPSK_128 = Buffer.alloc(16, 1).toString('base64');
const IPSK_256 = Buffer.alloc(32, 2).toString('base64');
const UPSK_16 = Buffer.alloc(16, 3).toString('base64');
const UPSK_32 = Buffer.alloc(32, 4).toString('base64');

const settings = (over: Partial<ServerSettings> = {}): ServerSettings => ({
  serverId: '6f0c1d7e-0000-4000-8000-000000000001',
  name: 'Pigeon',
  createdAt: 1,
  hostname: 'vpn.example.org',
  portForNewKeys: 4433,
  defaultMethod: 'chacha20-ietf-poly1305',
  defaultDataLimit: null,
  defaultDisguise: true,
  identityPsks: { '2022-blake3-aes-128-gcm': IPSK_128, '2022-blake3-aes-256-gcm': IPSK_256 },
  ...over,
});

let nextId = 1;
const key = (method: MethodName, secret: string, over: Partial<AccessKey> = {}): AccessKey => {
  const id = String(nextId++);
  return {
    id,
    name: `Key ${id}`,
    secret,
    method,
    port: 4433,
    token: `token-${id}`,
    createdAt: 1,
    expiresAt: null,
    dataLimit: null,
    paused: false,
    lastSeen: null,
    prefix: null,
    ...over,
  };
};

describe('accessUri and clientPassword', () => {
  test('a 2022 AES key carries "iPSK:uPSK" (SIP023, many users on one port)', () => {
    const s = settings();
    for (const [method, ipsk, upsk] of [
      ['2022-blake3-aes-128-gcm', IPSK_128, UPSK_16],
      ['2022-blake3-aes-256-gcm', IPSK_256, UPSK_32],
    ] as const) {
      const k = key(method, upsk, { name: 'Mum & Dad', port: 8388 });
      assert.equal(clientPassword(k, s), `${ipsk}:${upsk}`);
      const uri = accessUri(k, s);
      assert.ok(uri.startsWith(`ss://${method}:`), uri);
      assert.deepEqual(parseSsUri(uri), {
        method,
        password: `${ipsk}:${upsk}`,
        host: 'vpn.example.org',
        port: 8388,
        tag: 'Mum & Dad',
        params: {},
      });
    }
  });

  test('a 2022 AES key without an identity PSK yet is just its own key', () => {
    const k = key('2022-blake3-aes-128-gcm', UPSK_16);
    const s = settings({ identityPsks: {} });
    assert.equal(clientPassword(k, s), UPSK_16);
    assert.equal(parseSsUri(accessUri(k, s)).password, UPSK_16);
  });

  test('2022 chacha20 and SIP004 keys never carry an iPSK', () => {
    // Even with a (misplaced) identity PSK for chacha20 in the settings: that method has no identity header.
    const s = settings({
      identityPsks: { ...settings().identityPsks, '2022-blake3-chacha20-poly1305': UPSK_32 },
    });
    const chacha = key('2022-blake3-chacha20-poly1305', UPSK_32);
    assert.equal(clientPassword(chacha, s), UPSK_32);
    assert.equal(parseSsUri(accessUri(chacha, s)).password, UPSK_32);
    for (const method of ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const) {
      const k = key(method, 'pass:word/with?odd#chars', { port: 1 });
      assert.equal(clientPassword(k, s), 'pass:word/with?odd#chars');
      const uri = parseSsUri(accessUri(k, s));
      assert.deepEqual(uri, {
        method,
        password: 'pass:word/with?odd#chars',
        host: 'vpn.example.org',
        port: 1,
        tag: k.name,
        params: {},
      });
    }
  });

  test('host from the settings (IPv6 in brackets), port from the key, tag from the name (none if empty)', () => {
    const k = key('chacha20-ietf-poly1305', 'pw', { name: '', port: 65535 });
    const uri = accessUri(k, settings({ hostname: '2001:db8::7' }));
    assert.match(uri, /@\[2001:db8::7\]:65535$/);
    assert.equal(parseSsUri(uri).tag, undefined);
  });

  test('no hostname yet: a clear error instead of a broken URI', () => {
    assert.throws(() => accessUri(key('aes-128-gcm', 'pw'), settings({ hostname: '' })), /hostname/);
  });
});

describe('subscription documents', () => {
  test('SIP008: one server per key, stable UUIDs, password as in the URI', () => {
    const s = settings();
    const a = key('2022-blake3-aes-128-gcm', UPSK_16, { name: 'A' });
    const b = key('aes-256-gcm', 'secret-b', { name: '', port: 9000 });
    const doc = sip008Json([a, b], s);
    assert.deepEqual(doc, {
      version: 1,
      servers: [
        {
          id: keyUuid(a, s),
          remarks: 'A',
          server: 'vpn.example.org',
          server_port: 4433,
          password: `${IPSK_128}:${UPSK_16}`,
          method: '2022-blake3-aes-128-gcm',
        },
        {
          id: keyUuid(b, s),
          remarks: `Pigeon ${b.id}`,
          server: 'vpn.example.org',
          server_port: 9000,
          password: 'secret-b',
          method: 'aes-256-gcm',
        },
      ],
    });
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    assert.match(doc.servers[0]!.id, uuid);
    assert.notEqual(doc.servers[0]!.id, doc.servers[1]!.id);
    assert.equal(keyUuid(a, s), keyUuid({ ...a, name: 'renamed' }, s)); // stable across changes
    assert.notEqual(keyUuid(a, s), keyUuid(a, settings({ serverId: 'another server' })));
    assert.equal(JSON.parse(JSON.stringify(doc)).version, 1);
  });

  test('SIP008 data usage: bytes_used always, bytes_remaining only under a limit', () => {
    const s = settings();
    const usage = { total: 5000, last30d: 1200 };
    const none = key('aes-128-gcm', 'x');
    assert.deepEqual(keyTraffic(none, s, usage), { bytesUsed: 1200 });
    const rolling = key('aes-128-gcm', 'x', { dataLimit: { bytes: 2000, window: 'rolling-30d' } });
    assert.deepEqual(keyTraffic(rolling, s, usage), { bytesUsed: 1200, bytesRemaining: 800 });
    const total = key('aes-128-gcm', 'x', { dataLimit: { bytes: 2000, window: 'total' } });
    assert.deepEqual(keyTraffic(total, s, usage), { bytesUsed: 5000, bytesRemaining: 0 });
    const byDefault = settings({ defaultDataLimit: { bytes: 10_000, window: 'total' } });
    assert.deepEqual(keyTraffic(none, byDefault, usage), { bytesUsed: 5000, bytesRemaining: 5000 });

    const doc = sip008Json([rolling], s, keyTraffic(rolling, s, usage));
    assert.equal(doc.bytes_used, 1200);
    assert.equal(doc.bytes_remaining, 800);
    const open = sip008Json([none], s, keyTraffic(none, s, usage));
    assert.equal(open.bytes_used, 1200);
    assert.ok(!('bytes_remaining' in open));
  });

  test("Outline's dynamic key document has exactly server, server_port, password, method", () => {
    const k = key('2022-blake3-aes-256-gcm', UPSK_32, { port: 1234 });
    assert.deepEqual(outlineJson(k, settings()), {
      server: 'vpn.example.org',
      server_port: 1234,
      password: `${IPSK_256}:${UPSK_32}`,
      method: '2022-blake3-aes-256-gcm',
    });
  });

  test('Clash: ss proxies, a select group "Pigeon", everything through it; names unique', () => {
    const s = settings();
    const a = key('chacha20-ietf-poly1305', 'pa', { name: 'Phone' });
    const b = key('2022-blake3-aes-128-gcm', UPSK_16, { name: 'Phone', port: 5000 });
    const c = key('aes-128-gcm', 'pc', { name: 'Pigeon' });
    const d = key('aes-128-gcm', 'pd', { name: '' });
    const doc = parseYaml(clashYaml([a, b, c, d], s)) as {
      proxies: Record<string, unknown>[];
      'proxy-groups': Record<string, unknown>[];
      rules: string[];
    };
    assert.deepEqual(doc.proxies[0], {
      name: 'Phone',
      type: 'ss',
      server: 'vpn.example.org',
      port: 4433,
      cipher: 'chacha20-ietf-poly1305',
      password: 'pa',
      udp: true,
    });
    assert.deepEqual(doc.proxies[1], {
      name: `Phone (key ${b.id})`,
      type: 'ss',
      server: 'vpn.example.org',
      port: 5000,
      cipher: '2022-blake3-aes-128-gcm',
      password: `${IPSK_128}:${UPSK_16}`,
      udp: true,
    });
    const names = doc.proxies.map((p) => p.name);
    assert.deepEqual(names, ['Phone', `Phone (key ${b.id})`, `Pigeon (key ${c.id})`, `Pigeon ${d.id}`]);
    assert.deepEqual(doc['proxy-groups'], [{ name: 'Pigeon', type: 'select', proxies: names }]);
    assert.deepEqual(doc.rules, ['MATCH,Pigeon']);
  });

  test('sing-box: shadowsocks outbounds with unique tags', () => {
    const s = settings();
    const a = key('2022-blake3-chacha20-poly1305', UPSK_32, { name: 'Laptop' });
    const b = key('aes-256-gcm', 'pb', { name: 'Laptop' });
    assert.deepEqual(singBoxJson([a, b], s), {
      outbounds: [
        {
          type: 'shadowsocks',
          tag: 'Laptop',
          server: 'vpn.example.org',
          server_port: 4433,
          method: '2022-blake3-chacha20-poly1305',
          password: UPSK_32,
        },
        {
          type: 'shadowsocks',
          tag: `Laptop (key ${b.id})`,
          server: 'vpn.example.org',
          server_port: 4433,
          method: 'aes-256-gcm',
          password: 'pb',
        },
      ],
    });
  });
});

describe('URLs and QR codes', () => {
  test('ssconf:// is the https URL of the Outline document with the scheme swapped', () => {
    assert.equal(
      ssconfUrl('https://203.0.113.7:35021', 'TOKEN'),
      'ssconf://203.0.113.7:35021/sub/TOKEN/outline.json',
    );
    assert.equal(
      ssconfUrl('https://[2001:db8::1]:443/', 'T'),
      'ssconf://[2001:db8::1]:443/sub/T/outline.json',
    );
    assert.equal(
      subscriptionUrl('https://vpn.example.org:8443/', 'abc_-', 'sip008.json'),
      'https://vpn.example.org:8443/sub/abc_-/sip008.json',
    );
    // What Outline's client does with it: back to https://.
    const back = new URL(ssconfUrl('https://vpn.example.org:8443', 'T').replace(/^ssconf:\/\//, 'https://'));
    assert.equal(back.host, 'vpn.example.org:8443');
    assert.equal(back.pathname, '/sub/T/outline.json');
  });

  test('QR codes: terminal text and PNG', async () => {
    const uri = accessUri(key('chacha20-ietf-poly1305', 'pw'), settings());
    const text = await qrTerminal(uri);
    assert.ok(text.split('\n').length > 10);
    assert.match(text, /[█▀▄]/);
    const png = await qrPng(uri);
    assert.ok(Buffer.isBuffer(png));
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.ok(png.length > 200);
  });
});
