// Subscription documents: SIP008, Outline's dynamic key, base64 and plain ss:// lists, Clash and
// sing-box; what Pigeon's own server publishes (src/control/share.ts); ssconf:// URLs; and a seeded fuzz.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Fuzzer } from '../helpers/fuzzer.js';
import {
  accessUri,
  clashYaml,
  clientPassword,
  outlineJson,
  singBoxJson,
  sip008Json,
  ssconfUrl,
} from '../../src/control/share.js';
import type { AccessKey, ServerSettings } from '../../src/control/types.js';
import { WireError } from '../../src/wire/errors.js';
import type { MethodName } from '../../src/wire/shadowsocks-methods.js';
import { formatSsUri, parseSsUri, type SsUri } from '../../src/wire/sip002.js';
import {
  MAX_SUBSCRIPTION_ENTRIES,
  parseSubscription,
  subscriptionFetchUrl,
  subscriptionUrlName,
} from '../../src/wire/subscription.js';
import { wireCode } from '../helpers/wire-error.js';

const PSK16 = Buffer.alloc(16, 3).toString('base64');
const PSK32 = Buffer.alloc(32, 4).toString('base64');
const IPSK16 = Buffer.alloc(16, 1).toString('base64');

const aead = (password: string, host: string, port: number, tag?: string): string =>
  `ss://${Buffer.from(`chacha20-ietf-poly1305:${password}`).toString('base64url')}@${host}:${port}` +
  (tag ? `#${encodeURIComponent(tag)}` : '');

/** The servers of a parse as [name, method, password, host, port]. */
const brief = (text: string) =>
  parseSubscription(text).entries.map((e) => [e.name, e.uri.method, e.uri.password, e.uri.host, e.uri.port]);

describe('SIP008', () => {
  test('the example of the SIP008 document, with data usage fields and a plugin', () => {
    const doc = {
      version: 1,
      servers: [
        {
          id: '27b8a625-4f4b-4428-9f0f-8a2317db7c79',
          remarks: 'Name of the server',
          server: 'example.com',
          server_port: 8388,
          password: 'example',
          method: 'chacha20-ietf-poly1305',
          plugin: 'xxx',
          plugin_opts: 'xxxxx',
        },
        {
          id: '7842c068-c667-41f2-8f7d-04feece3cb67',
          remarks: 'Name of the server',
          server: 'example.com',
          server_port: 8388,
          password: 'example',
          method: 'chacha20-ietf-poly1305',
        },
      ],
      bytes_used: 274877906944,
      bytes_remaining: 824633720832,
    };
    const r = parseSubscription(JSON.stringify(doc, null, 4));
    assert.equal(r.skipped, 0);
    assert.deepEqual(
      r.entries.map((e) => e.name),
      ['Name of the server', 'Name of the server (2)'],
    );
    assert.deepEqual(r.entries[0]!.uri, {
      method: 'chacha20-ietf-poly1305',
      password: 'example',
      host: 'example.com',
      port: 8388,
      tag: 'Name of the server',
      plugin: { name: 'xxx', options: 'xxxxx' },
      params: {},
    });
    assert.equal(r.entries[1]!.uri.plugin, undefined);
  });

  test('unsupported methods and broken entries are skipped and counted; string ports are read', () => {
    const r = parseSubscription(
      JSON.stringify({
        version: 1,
        servers: [
          { server: 'a.example', server_port: 1, password: 'p', method: 'rc4-md5' },
          { server: 'b.example', server_port: '443', password: 'p', method: 'AES-256-GCM', remarks: 'B' },
          { server: 'c.example', server_port: 70000, password: 'p', method: 'aes-128-gcm' },
          { server: 'd.example', server_port: 1, password: 'short', method: '2022-blake3-aes-128-gcm' },
          { server: 'e.example', server_port: 1, method: 'aes-128-gcm' },
          'not an object',
          { server: '[2001:db8::1]', server_port: 8388, password: PSK16, method: '2022-blake3-aes-128-gcm' },
        ],
      }),
    );
    assert.equal(r.skipped, 5);
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.uri.method, e.uri.host, e.uri.port]),
      [
        ['B', 'aes-256-gcm', 'b.example', 443],
        ['[2001:db8::1]:8388', '2022-blake3-aes-128-gcm', '2001:db8::1', 8388],
      ],
    );
  });
});

describe('Outline dynamic key (behind ssconf://)', () => {
  test('the four fields, and the optional prefix', () => {
    assert.deepEqual(
      parseSubscription(
        '{"server":"vpn.example.org","server_port":443,"password":"pw","method":"chacha20-ietf-poly1305","prefix":"\\u0016\\u0003\\u0001"}',
      ).entries,
      [
        {
          name: 'vpn.example.org:443',
          uri: {
            method: 'chacha20-ietf-poly1305',
            password: 'pw',
            host: 'vpn.example.org',
            port: 443,
            params: { prefix: '\x16\x03\x01' },
          },
        },
      ],
    );
  });

  test("an Outline error answer becomes the provider's message", () => {
    assert.equal(
      wireCode(() => parseSubscription('{"error":{"message":"Your key has expired","details":"x"}}')),
      'server-error',
    );
    assert.throws(
      () => parseSubscription('{"error":{"message":"Your key has expired"}}'),
      /Your key has expired/,
    );
  });

  test('a plain ss:// URI answer (also allowed by Outline)', () => {
    assert.deepEqual(brief(`${aead('pw', '203.0.113.1', 8000, 'Home')}\n`), [
      ['Home', 'chacha20-ietf-poly1305', 'pw', '203.0.113.1', 8000],
    ]);
  });
});

describe('ss:// lists', () => {
  const lines = [
    aead('one', 'a.example', 1, 'A'),
    aead('two', 'b.example', 2, 'A'),
    `ss://2022-blake3-aes-256-gcm:${encodeURIComponent(PSK32)}@[2001:db8::2]:3`,
    aead('four', 'd.example', 4, '🐦 bird'),
  ];
  const expected = [
    ['A', 'chacha20-ietf-poly1305', 'one', 'a.example', 1],
    ['A (2)', 'chacha20-ietf-poly1305', 'two', 'b.example', 2],
    ['[2001:db8::2]:3', '2022-blake3-aes-256-gcm', PSK32, '2001:db8::2', 3],
    ['🐦 bird', 'chacha20-ietf-poly1305', 'four', 'd.example', 4],
  ];
  const plain = lines.join('\n');

  test('plain lines, CRLF, comments and blank lines', () => {
    assert.deepEqual(brief(plain), expected);
    assert.deepEqual(brief(`# my servers\r\n\r\n${lines.join('\r\n')}\r\n// end\r\n`), expected);
    assert.equal(parseSubscription(plain).skipped, 0);
  });

  for (const [label, encode] of [
    ['standard, padded', (s: string) => Buffer.from(s).toString('base64')],
    ['URL-safe, unpadded', (s: string) => Buffer.from(s).toString('base64url')],
    [
      'wrapped at 76 columns (MIME)',
      (s: string) => Buffer.from(s).toString('base64').replace(/.{76}/g, '$&\r\n'),
    ],
    [
      'with a byte order mark and spaces around',
      (s: string) => `\uFEFF  ${Buffer.from(s).toString('base64')}\n`,
    ],
  ] as const) {
    test(`base64: ${label}`, () => assert.deepEqual(brief(encode(plain)), expected));
  }

  test('other protocols and broken ss:// lines are skipped and counted; other lines are ignored', () => {
    const text = [
      'STATUS=expires 2030-01-01',
      'vmess://eyJ2IjoiMiJ9',
      'trojan://pw@t.example:443#T',
      lines[0],
      'ss://cmM0LW1kNTpwYXNzd2Q@192.168.100.1:8888#rc4',
      'ss://not-valid',
    ].join('\n');
    const r = parseSubscription(Buffer.from(text).toString('base64'));
    assert.equal(r.entries.length, 1);
    assert.equal(r.skipped, 4);
  });

  test(`at most ${MAX_SUBSCRIPTION_ENTRIES} servers; the rest count as skipped`, () => {
    const many = Array.from({ length: MAX_SUBSCRIPTION_ENTRIES + 5 }, (_, i) =>
      aead('p', 'h.example', i + 1),
    );
    const r = parseSubscription(many.join('\n'));
    assert.equal(r.entries.length, MAX_SUBSCRIPTION_ENTRIES);
    assert.equal(r.skipped, 5);
  });
});

describe('Clash and sing-box', () => {
  test('Clash proxies of type ss; other types counted as skipped; plugin-opts kept', () => {
    const yaml = [
      'port: 7890',
      'proxies:',
      '  - { name: "HK", type: ss, server: hk.example, port: 8388, cipher: aes-128-gcm, password: 123456, udp: true }',
      '  - name: obfs',
      '    type: ss',
      '    server: 1.2.3.4',
      '    port: "443"',
      '    cipher: chacha20-ietf-poly1305',
      '    password: "pw"',
      '    plugin: obfs',
      '    plugin-opts: { mode: tls, host: bing.com }',
      '  - { name: v, type: vmess, server: v.example, port: 443, uuid: x }',
      'proxy-groups: []',
    ].join('\n');
    const r = parseSubscription(yaml);
    assert.equal(r.skipped, 1);
    assert.deepEqual(
      r.entries.map((e) => [e.name, e.uri.method, e.uri.password, e.uri.host, e.uri.port, e.uri.plugin]),
      [
        ['HK', 'aes-128-gcm', '123456', 'hk.example', 8388, undefined],
        [
          'obfs',
          'chacha20-ietf-poly1305',
          'pw',
          '1.2.3.4',
          443,
          { name: 'obfs', options: 'mode=tls;host=bing.com' },
        ],
      ],
    );
  });

  test('sing-box: shadowsocks outbounds; direct/block/dns/selector are not servers', () => {
    const r = parseSubscription(
      JSON.stringify({
        outbounds: [
          { type: 'selector', tag: 'proxy', outbounds: ['s'] },
          {
            type: 'shadowsocks',
            tag: 's',
            server: 's.example',
            server_port: 1,
            method: 'aes-256-gcm',
            password: 'x',
          },
          { type: 'trojan', tag: 't', server: 't.example', server_port: 1, password: 'x' },
          { type: 'direct', tag: 'direct' },
        ],
      }),
    );
    assert.equal(r.skipped, 1);
    assert.deepEqual(
      r.entries.map((e) => e.name),
      ['s'],
    );
  });
});

describe("what Pigeon's server publishes (src/control/share.ts)", () => {
  const settings: ServerSettings = {
    serverId: '6f0c1d7e-0000-4000-8000-000000000001',
    name: 'Pigeon',
    createdAt: 1,
    hostname: 'vpn.example.org',
    portForNewKeys: 4433,
    defaultMethod: 'chacha20-ietf-poly1305',
    defaultDataLimit: null,
    defaultDisguise: true,
    identityPsks: { '2022-blake3-aes-128-gcm': IPSK16 },
  };
  const key = (id: string, method: MethodName, secret: string, name: string): AccessKey => ({
    id,
    name,
    secret,
    method,
    port: 4433 + Number(id),
    token: `t${id}`,
    createdAt: 1,
    expiresAt: null,
    dataLimit: null,
    paused: false,
    lastSeen: null,
    prefix: null,
  });
  const keys = [
    key('1', 'chacha20-ietf-poly1305', 'secret-one', "Mum's phone"),
    key('2', '2022-blake3-aes-128-gcm', PSK16, 'Laptop'),
    key('3', '2022-blake3-aes-256-gcm', PSK32, "Mum's phone"),
  ];
  /** What every document must yield: the same method, client password, host and port per key. */
  const servers = keys.map((k) => [k.method, clientPassword(k, settings), 'vpn.example.org', k.port]);
  const strip = (text: string) =>
    parseSubscription(text).entries.map((e) => [e.uri.method, e.uri.password, e.uri.host, e.uri.port]);

  test('SIP008 JSON', () => {
    const text = JSON.stringify(sip008Json(keys, settings, { bytesUsed: 1, bytesRemaining: 2 }));
    assert.deepEqual(strip(text), servers);
    assert.deepEqual(
      parseSubscription(text).entries.map((e) => e.name),
      ["Mum's phone", 'Laptop', "Mum's phone (2)"],
    );
  });

  test('Outline JSON, one per key', () => {
    keys.forEach((k, i) => assert.deepEqual(strip(JSON.stringify(outlineJson(k, settings))), [servers[i]]));
  });

  test('uri.txt lines, plain and base64', () => {
    const text = keys.map((k) => `${accessUri(k, settings)}\n`).join('');
    assert.deepEqual(strip(text), servers);
    assert.deepEqual(strip(Buffer.from(text).toString('base64')), servers);
  });

  test('Clash YAML and sing-box JSON', () => {
    assert.deepEqual(strip(clashYaml(keys, settings)), servers);
    assert.deepEqual(strip(JSON.stringify(singBoxJson(keys, settings))), servers);
  });

  test('the ssconf:// URL maps back to the https:// outline.json URL', () => {
    const ssconf = ssconfUrl('https://vpn.example.org:8443/', 'tok en');
    assert.equal(subscriptionFetchUrl(ssconf), 'https://vpn.example.org:8443/sub/tok%20en/outline.json');
  });
});

describe('errors', () => {
  const cases: Array<[string, string, string]> = [
    ['empty', '  \n ', 'empty'],
    ['HTML block page', '<!DOCTYPE html><html><body>Blocked</body></html>', 'unknown-format'],
    ['broken JSON', '{"servers": [', 'bad-json'],
    ['a JSON array', '[1,2]', 'unknown-format'],
    ['JSON of something else', '{"hello": 1}', 'unknown-format'],
    ['broken Clash YAML', 'proxies:\n  - [unclosed', 'bad-yaml'],
    ['Clash YAML without a list', 'proxies: 3', 'unknown-format'],
    ['random text', 'hello world\nthis is not a list', 'no-servers'],
    ['base64 of random text', Buffer.from('just words').toString('base64'), 'no-servers'],
    ['only other protocols', 'vmess://abc\ntrojan://x@y:1', 'no-servers'],
    ['an empty SIP008 list', '{"version":1,"servers":[]}', 'no-servers'],
  ];
  for (const [label, text, code] of cases) {
    test(`${label} → ${code}`, () =>
      assert.equal(
        wireCode(() => parseSubscription(text)),
        code,
      ));
  }

  test('messages say what was wrong and never contain a password', () => {
    const secret = 'Sup3rSecretPassw0rd';
    const docs = [
      JSON.stringify({ servers: [{ server: 'x', server_port: 1, password: secret, method: 'rc4-md5' }] }),
      `ss://${Buffer.from(`rc4-md5:${secret}`).toString('base64url')}@h:1`,
      `{"server":"h","server_port":1,"password":"${secret}","method":"nope"}`,
      `{"server":"h", "password":"${secret}"`,
    ];
    const messages = docs.map((d) => {
      try {
        parseSubscription(d);
      } catch (err) {
        assert.ok(err instanceof WireError);
        return err.message;
      }
      return assert.fail(`no error for ${d}`);
    });
    for (const m of messages) {
      assert.ok(!m.includes(secret), m);
      assert.match(m, /^invalid subscription: /);
    }
    assert.match(messages[0]!, /none of its 1 server\(s\) is a Shadowsocks server with a supported method/);
  });
});

describe('subscriptionFetchUrl', () => {
  const ok: Array<[string, string]> = [
    ['ssconf://vpn.example.org/sub/abc/outline.json', 'https://vpn.example.org/sub/abc/outline.json'],
    ['SSCONF://vpn.example.org:8443/a?b=c#My%20server', 'https://vpn.example.org:8443/a?b=c'],
    ['ssconf://[2001:db8::1]:443/x', 'https://[2001:db8::1]/x'],
    [
      'https://sub.example.com/api/v1/client/subscribe?token=x',
      'https://sub.example.com/api/v1/client/subscribe?token=x',
    ],
    ['http://127.0.0.1:8080/s.json', 'http://127.0.0.1:8080/s.json'],
    ['  https://a.example/ ', 'https://a.example/'],
  ];
  for (const [input, want] of ok) test(input.trim(), () => assert.equal(subscriptionFetchUrl(input), want));

  for (const bad of [
    'ss://YWVzLTEyOC1nY206dGVzdA@1.2.3.4:1',
    'ftp://a/b',
    'vpn.example.org/sub',
    'https://',
    'ssconf:/x',
    '',
  ]) {
    test(`refuses ${JSON.stringify(bad)}`, () =>
      assert.equal(
        wireCode(() => subscriptionFetchUrl(bad)),
        'bad-url',
      ));
  }

  test('the name after # of an ssconf:// key', () => {
    assert.equal(subscriptionUrlName('ssconf://h/p#My%20server'), 'My server');
    assert.equal(subscriptionUrlName('ssconf://h/p'), undefined);
    assert.equal(subscriptionUrlName('ssconf://h/p#%E0'), undefined);
  });
});

// ---- seeded fuzz, as in fuzz.test.ts: a value or a WireError, never another exception

const ITERATIONS = 4_000;

/** Every result: at least one server, unique names, and each URI formats and parses back unchanged. */
function checkResult(r: { entries: { uri: SsUri; name: string }[]; skipped: number }): void {
  assert.ok(r.entries.length > 0 && r.skipped >= 0);
  const names = r.entries.map((e) => e.name.toLowerCase());
  assert.equal(new Set(names).size, names.length, `duplicate names: ${names.join(', ')}`);
  for (const e of r.entries) assert.deepEqual(parseSsUri(formatSsUri(e.uri)), e.uri);
}

describe('fuzz: parseSubscription', () => {
  const list = [
    aead('p1', 'a.example', 1, 'A'),
    aead('p2', '10.0.0.1', 2),
    `ss://2022-blake3-aes-128-gcm:${encodeURIComponent(PSK16)}@[::1]:3#c`,
  ].join('\n');
  const corpus = [
    list,
    Buffer.from(list).toString('base64'),
    Buffer.from(list).toString('base64url'),
    JSON.stringify({
      version: 1,
      servers: [
        {
          id: 'x',
          remarks: 'R',
          server: 'r.example',
          server_port: 8388,
          password: 'pw',
          method: 'aes-256-gcm',
        },
        {
          remarks: 'R',
          server: '::1',
          server_port: '1',
          password: PSK32,
          method: '2022-blake3-chacha20-poly1305',
        },
      ],
    }),
    '{"server":"o.example","server_port":443,"password":"pw","method":"chacha20-ietf-poly1305","prefix":"\\u0016"}',
    'proxies:\n  - { name: "HK", type: ss, server: hk.example, port: 8388, cipher: aes-128-gcm, password: p }\n',
    JSON.stringify({
      outbounds: [
        { type: 'shadowsocks', tag: 's', server: 's', server_port: 1, method: 'aes-128-gcm', password: 'x' },
      ],
    }),
  ];
  const interesting = [
    '{',
    '}',
    '[',
    ']',
    '"',
    ':',
    ',',
    '\n',
    '\r',
    ' ',
    '#',
    '@',
    '/',
    '%',
    '=',
    '+',
    '-',
    '_',
    'A',
    '0',
    '\\',
    '\ud800',
    '🐦',
    '&',
    '?',
    'ss://',
    '<',
    '\uFEFF',
  ];

  test('mutations of valid documents: a result or a WireError', () => {
    const f = new Fuzzer(2024);
    let parsed = 0;
    for (let i = 0; i < ITERATIONS * corpus.length; i++) {
      const input = f.mutateText(f.pick(corpus), interesting);
      try {
        checkResult(parseSubscription(input));
        parsed++;
      } catch (e) {
        if (!(e instanceof WireError)) assert.fail(`threw ${String(e)} for ${JSON.stringify(input)}`);
      }
    }
    assert.ok(parsed >= (ITERATIONS * corpus.length) / 20, `only ${parsed} inputs parsed`);
  });

  test('random text from a subscription-ish alphabet', () => {
    const f = new Fuzzer(7);
    for (let i = 0; i < ITERATIONS * 2; i++) {
      let s = '';
      for (let n = f.int(40); n > 0; n--) s += f.pick(interesting);
      try {
        checkResult(parseSubscription(s));
      } catch (e) {
        if (!(e instanceof WireError)) assert.fail(`threw ${String(e)} for ${JSON.stringify(s)}`);
      }
    }
  });

  test('random bytes as UTF-8', () => {
    const f = new Fuzzer(8);
    for (let i = 0; i < ITERATIONS * 2; i++) {
      const b = Buffer.alloc(f.int(96));
      for (let j = 0; j < b.length; j++) b[j] = f.int(256);
      try {
        checkResult(parseSubscription(b.toString('utf8')));
      } catch (e) {
        if (!(e instanceof WireError)) assert.fail(`threw ${String(e)} for ${b.toString('hex')}`);
      }
    }
  });
});
