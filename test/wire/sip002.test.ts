import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { formatSsUri, parseSsUri, type SsUri } from '../../src/wire/sip002.js';

/** Runs fn, expecting a WireError; returns it. */
const wireError = (fn: () => unknown): WireError => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof WireError, `expected WireError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a WireError');
};
const code = (text: string): string => wireError(() => parseSsUri(text)).code;

const KEY32 = 'YctPZ6U7xPPcU+gp3u+0tx/tRizJN9K8y+uKlW2qjlI='; // the PSK in the SIP002 document
const KEY16 = Buffer.alloc(16, 7).toString('base64');

describe('the examples of the SIP002 document', () => {
  test('base64url userinfo', () => {
    assert.deepEqual(parseSsUri('ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1'), {
      method: 'aes-128-gcm',
      password: 'test',
      host: '192.168.100.1',
      port: 8888,
      tag: 'Example1',
      params: {},
    });
  });

  test('plain percent-encoded userinfo for a 2022 method, with and without a plugin', () => {
    const expected: SsUri = {
      method: '2022-blake3-aes-256-gcm',
      password: KEY32,
      host: '192.168.100.1',
      port: 8888,
      tag: 'Example3',
      params: {},
    };
    const userinfo = '2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D';
    assert.deepEqual(parseSsUri(`ss://${userinfo}@192.168.100.1:8888#Example3`), expected);
    assert.deepEqual(
      parseSsUri(`ss://${userinfo}@192.168.100.1:8888/?plugin=v2ray-plugin%3Bserver#Example3`),
      {
        ...expected,
        plugin: { name: 'v2ray-plugin', options: 'server' },
      },
    );
  });

  test('rc4-md5 (Example2) is not supported: a clear error', () => {
    const e = wireError(() =>
      parseSsUri('ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888/?plugin=obfs-local%3Bobfs%3Dhttp#Example2'),
    );
    assert.equal(e.code, 'unknown-method');
    assert.match(e.message, /unsupported method "rc4-md5"/);
    assert.match(e.message, /aes-128-gcm, aes-256-gcm, chacha20-ietf-poly1305, 2022-blake3-aes-128-gcm/);
    assert.doesNotMatch(e.message, /passwd/);
  });

  test('a PSK that is one byte too long is refused, naming the size needed', () => {
    // This variant of the example circulates with a 45-character key that decodes to 33 bytes.
    const e = wireError(() =>
      parseSsUri(
        'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2BzxpZZ%2BBN6%2BbzL%2BWMCLZ9h6pNs%3D@192.168.100.1:8888#Example2',
      ),
    );
    assert.equal(e.code, 'bad-key');
    assert.match(e.message, /exactly 32 bytes/);
    assert.match(e.message, /has 33 bytes/);
    assert.doesNotMatch(e.message, /YctPZ6U7/);
  });
});

describe('parseSsUri forms', () => {
  const base = {
    method: 'chacha20-ietf-poly1305',
    password: 'p@ss:wörd/+',
    host: 'ss.example.org',
    port: 443,
  };

  test('base64url, standard base64, padded, %3D-padded userinfo', () => {
    const raw = Buffer.from(`${base.method}:${base.password}`);
    for (const userinfo of [
      raw.toString('base64url'),
      raw.toString('base64'),
      raw.toString('base64').replace(/=/g, ''),
      raw.toString('base64').replace(/=/g, '%3D'),
    ]) {
      assert.deepEqual(parseSsUri(`ss://${userinfo}@ss.example.org:443`), { ...base, params: {} }, userinfo);
    }
  });

  test('plain userinfo splits at the first colon', () => {
    assert.deepEqual(parseSsUri('ss://aes-256-gcm:a:b:c@h:1'), {
      method: 'aes-256-gcm',
      password: 'a:b:c',
      host: 'h',
      port: 1,
      params: {},
    });
    assert.equal(parseSsUri('ss://aes-256-gcm:a%3Ab%40c@h:1').password, 'a:b@c');
  });

  test('2022 multi-user iPSK:uPSK', () => {
    const ipsk = Buffer.alloc(32, 1).toString('base64');
    const u = parseSsUri(`ss://2022-blake3-aes-256-gcm:${encodeURIComponent(`${ipsk}:${KEY32}`)}@h:1`);
    assert.equal(u.password, `${ipsk}:${KEY32}`);
    const e = wireError(() => parseSsUri(`ss://2022-blake3-aes-256-gcm:${ipsk}:${KEY16}@h:1`));
    assert.equal(e.code, 'bad-key');
    assert.match(e.message, /key 2 of 2 has 16 bytes/);
  });

  test('2022 key sizes follow the method; URL-safe base64 and missing padding are accepted', () => {
    assert.equal(parseSsUri(`ss://2022-blake3-aes-128-gcm:${encodeURIComponent(KEY16)}@h:1`).password, KEY16);
    assert.equal(code(`ss://2022-blake3-aes-128-gcm:${encodeURIComponent(KEY32)}@h:1`), 'bad-key');
    assert.match(
      wireError(() => parseSsUri(`ss://2022-blake3-aes-128-gcm:${KEY32}@h:1`)).message,
      /16 bytes/,
    );
    const urlsafe = Buffer.alloc(32, 0xfb).toString('base64url');
    assert.equal(parseSsUri(`ss://2022-blake3-chacha20-poly1305:${urlsafe}@h:1`).password, urlsafe);
    assert.match(
      wireError(() => parseSsUri('ss://2022-blake3-aes-256-gcm:not*base64@h:1')).message,
      /is not base64/,
    );
  });

  test('legacy ss://BASE64(method:password@host:port)#tag', () => {
    const legacy = Buffer.from('aes-256-gcm:p@ss@[2001:db8::1]:8388').toString('base64');
    assert.deepEqual(parseSsUri(`ss://${legacy}#My%20Server`), {
      method: 'aes-256-gcm',
      password: 'p@ss',
      host: '2001:db8::1',
      port: 8388,
      tag: 'My Server',
      params: {},
    });
    assert.equal(
      parseSsUri(`ss://${Buffer.from('aes-128-gcm:x@1.2.3.4:1').toString('base64url')}`).host,
      '1.2.3.4',
    );
  });

  test('IPv6 hosts, optional "/", method name aliases, tags, whitespace around the URI', () => {
    const u = parseSsUri('  SS://Y2hhY2hhMjAtcG9seTEzMDU6cHc@[::1]:8388/#%F0%9F%90%A6%20bird+x \n');
    assert.deepEqual(u, {
      method: 'chacha20-ietf-poly1305',
      password: 'pw',
      host: '::1',
      port: 8388,
      tag: '🐦 bird+x',
      params: {},
    });
    assert.equal(parseSsUri('ss://AES-128-GCM:pw@h:1').method, 'aes-128-gcm');
    assert.equal(parseSsUri('ss://aes-128-gcm:pw@h:1#').tag, undefined);
  });

  test('plugin and other query parameters', () => {
    const u = parseSsUri(
      'ss://aes-128-gcm:pw@h:1/?plugin=obfs-local%3Bobfs%3Dhttp%3Bobfs-host%3Da.com&prefix=%16%03%01%00%C2%A8%01%01&flag&x=a%26b%3Dc',
    );
    assert.deepEqual(u.plugin, { name: 'obfs-local', options: 'obfs=http;obfs-host=a.com' });
    assert.deepEqual(u.params, { prefix: '\x16\x03\x01\x00\u00a8\x01\x01', flag: '', x: 'a&b=c' });
    assert.deepEqual(parseSsUri('ss://aes-128-gcm:pw@h:1?plugin=v2ray-plugin').plugin, {
      name: 'v2ray-plugin',
      options: '',
    });
    assert.equal(parseSsUri('ss://aes-128-gcm:pw@h:1/?plugin=').plugin, undefined);
  });
});

describe('parseSsUri errors', () => {
  const SECRET = 'hunter2-SECRET';

  test('each says what is wrong', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['http://x', 'bad-uri', /must start with "ss:\/\/"/],
      ['ss://', 'bad-uri', /missing "@host:port"/],
      ['ss://%%%', 'bad-uri', /missing "@host:port"/],
      [`ss://${Buffer.from('aes-128-gcm:pw').toString('base64url')}`, 'bad-uri', /missing "@host:port"/],
      ['ss://bm9jb2xvbg@h:1', 'bad-uri', /"method:password" or its base64/],
      ['ss://***@h:1', 'bad-uri', /"method:password" or its base64/],
      ['ss://:pw@h:1', 'bad-uri', /missing method/],
      ['ss://aes-128-gcm:@h:1', 'bad-uri', /missing password/],
      ['ss://aes-128-gcm:pw@h', 'bad-host', /expected "host:port"/],
      ['ss://aes-128-gcm:pw@:1', 'bad-host', /expected "host:port"/],
      ['ss://aes-128-gcm:pw@h:', 'bad-host', /expected "host:port"/],
      ['ss://aes-128-gcm:pw@::1:1', 'bad-host', /expected "host:port"/],
      ['ss://aes-128-gcm:pw@[h]:1', 'bad-host', /"h" is not an IPv6 address/],
      ['ss://aes-128-gcm:pw@h_$:1', 'bad-host', /"h_\$" is not a valid host name/],
      ['ss://aes-128-gcm:pw@h:0', 'bad-port', /port must be 1..65535, got 0/],
      ['ss://aes-128-gcm:pw@h:65536', 'bad-port', /got 65536/],
      ['ss://aes-128-gcm:pw@h:123456', 'bad-host', /expected "host:port"/],
      ['ss://aes-128-gcm:pw@h:1#%E0%A4%A', 'bad-uri', /percent-encoding in the tag/],
      ['ss://aes-128-gcm:pw@h:1?a=1&a=2', 'bad-uri', /"a" appears twice/],
      ['ss://aes-128-gcm:pw@h:1?=1', 'bad-uri', /has no name/],
      ['ss://aes-128-gcm:pw@h:1?plugin=%3Bopt', 'bad-uri', /no plugin name/],
      ['ss://aes-128-gcm:pw@h:1?x=%zz', 'bad-uri', /percent-encoding in the query/],
      ['ss://rc4:pw@h:1', 'unknown-method', /unsupported method "rc4"; supported: aes-128-gcm/],
    ];
    for (const [text, wantCode, wantMessage] of cases) {
      const e = wireError(() => parseSsUri(text));
      assert.equal(e.code, wantCode, text);
      assert.match(e.message, wantMessage, text);
      assert.match(e.message, /^invalid ss:\/\/ URI: /, text);
    }
  });

  test('the password never appears in an error message', () => {
    const b64 = (s: string): string => Buffer.from(s).toString('base64url');
    for (const text of [
      `ss://aes-128-gcm:${SECRET}@h:0`,
      `ss://aes-128-gcm:${SECRET}@[h]:1`,
      `ss://aes-128-gcm:${SECRET}@h`,
      `ss://aes-128-gcm:${SECRET}%@h:1`,
      `ss://${b64(`aes-128-gcm:${SECRET}`)}@h:99999`,
      `ss://${b64(`rc4-md5:${SECRET}`)}@h:1`,
      `ss://${b64(`${SECRET}`)}@h:1`,
      `ss://${b64(`aes-128-gcm:${SECRET}`)}`,
      `ss://2022-blake3-aes-256-gcm:${SECRET}@h:1`,
      `ss://${SECRET}:aes-128-gcm@h:1`, // method and password swapped
      `ss://${SECRET}.with spaces:x@h:1`,
    ]) {
      const e = wireError(() => parseSsUri(text));
      assert.doesNotMatch(e.message, /hunter2/, text);
    }
  });
});

describe('formatSsUri', () => {
  test('AEAD: base64url userinfo without padding', () => {
    assert.equal(
      formatSsUri({
        method: 'aes-128-gcm',
        password: 'test',
        host: '192.168.100.1',
        port: 8888,
        tag: 'Example1',
        params: {},
      }),
      'ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1',
    );
    assert.equal(
      formatSsUri({ method: 'chacha20-ietf-poly1305', password: '?>', host: '::1', port: 1, params: {} }),
      `ss://${Buffer.from('chacha20-ietf-poly1305:?>').toString('base64url')}@[::1]:1`,
    );
    assert.doesNotMatch(
      formatSsUri({ method: 'aes-256-gcm', password: 'ab', host: 'h', port: 1, params: {} }),
      /=/,
    );
  });

  test('2022: percent-encoded plain userinfo, as in the SIP002 document', () => {
    assert.equal(
      formatSsUri({
        method: '2022-blake3-aes-256-gcm',
        password: KEY32,
        host: '192.168.100.1',
        port: 8888,
        tag: 'Example3',
        plugin: { name: 'v2ray-plugin', options: 'server' },
        params: {},
      }),
      'ss://2022-blake3-aes-256-gcm:YctPZ6U7xPPcU%2Bgp3u%2B0tx%2FtRizJN9K8y%2BuKlW2qjlI%3D@192.168.100.1:8888' +
        '/?plugin=v2ray-plugin%3Bserver#Example3',
    );
  });

  test('params and tags are percent-encoded', () => {
    assert.equal(
      formatSsUri({
        method: 'aes-128-gcm',
        password: 'pw',
        host: 'h',
        port: 1,
        tag: 'a b#c',
        params: { prefix: '\x16\x03\x01', 'k y': '&=' },
      }),
      'ss://YWVzLTEyOC1nY206cHc@h:1/?prefix=%16%03%01&k%20y=%26%3D#a%20b%23c',
    );
  });

  test('round-trips', () => {
    const ipsk = Buffer.alloc(16, 9).toString('base64');
    const cases: SsUri[] = [
      {
        method: 'aes-128-gcm',
        password: 'test',
        host: '192.168.100.1',
        port: 8888,
        tag: 'Example1',
        params: {},
      },
      { method: 'aes-256-gcm', password: 'p@ss:w/ö rd?#%', host: 'a.example', port: 65535, params: {} },
      {
        method: 'chacha20-ietf-poly1305',
        password: 'x',
        host: '2001:db8::1',
        port: 1,
        tag: '🐦 Pigeon',
        params: {},
      },
      {
        method: '2022-blake3-aes-128-gcm',
        password: `${ipsk}:${KEY16}`,
        host: 'h',
        port: 8388,
        plugin: { name: 'obfs-local', options: 'obfs=http;obfs-host=a.com' },
        params: { prefix: '\x16\x03\x01\x00\u00a8\x01\x01', outline: '1', empty: '' },
        tag: '100% + more',
      },
      { method: '2022-blake3-chacha20-poly1305', password: KEY32, host: '::', port: 80, params: {} },
      {
        method: 'aes-128-gcm',
        password: 'pw',
        host: 'h',
        port: 1,
        plugin: { name: 'p', options: '' },
        params: {},
      },
      { method: 'aes-128-gcm', password: 'pw', host: 'h', port: 1, params: JSON.parse('{"__proto__":"x"}') },
    ];
    for (const u of cases) assert.deepEqual(parseSsUri(formatSsUri(u)), u, formatSsUri(u));
  });

  test('refuses values that would not parse back', () => {
    const ok: SsUri = { method: 'aes-128-gcm', password: 'pw', host: 'h', port: 1, params: {} };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ password: '' }, 'bad-uri'],
      [{ port: 0 }, 'bad-port'],
      [{ port: 70000 }, 'bad-port'],
      [{ host: '[::1]' }, 'bad-host'],
      [{ host: '' }, 'bad-host'],
      [{ host: 'a b' }, 'bad-host'],
      [{ method: '2022-blake3-aes-256-gcm', password: 'short' }, 'bad-key'],
      [{ method: 'rc4-md5' }, 'unknown-method'],
      [{ plugin: { name: '', options: 'x' } }, 'bad-uri'],
      [{ plugin: { name: 'a;b', options: '' } }, 'bad-uri'],
      [{ params: { plugin: 'x' } }, 'bad-uri'],
      [{ params: { '': 'x' } }, 'bad-uri'],
      [{ tag: '\ud800' }, 'bad-uri'],
      [{ password: 'a\udc00' }, 'bad-uri'],
    ];
    for (const [patch, want] of cases) {
      assert.equal(
        wireError(() => formatSsUri({ ...ok, ...patch } as unknown as SsUri)).code,
        want,
        JSON.stringify(patch),
      );
    }
  });
});
