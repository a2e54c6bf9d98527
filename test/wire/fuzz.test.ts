// Deterministic fuzzing of every wire parser: random bytes and mutations of valid messages must give a
// value, null ("need more"), or a WireError — never another exception.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import { encodeAddress, makeAddress, parseHostPort, readAddress } from '../../src/wire/socks-address.js';
import {
  decodeUdpDatagram,
  encodeUdpDatagram,
  parseGreeting,
  parseRequest,
  parseUserPassAuth,
} from '../../src/wire/socks5.js';
import { buildForwardHead, parseProxyRequestHead } from '../../src/wire/http-proxy.js';
import { formatSsUri, parseSsUri } from '../../src/wire/sip002.js';
import { parseCidr, parseRule, parseRuleList } from '../../src/wire/rules.js';

import { Fuzzer, mulberry32 } from '../helpers/fuzzer.js';

const ITERATIONS = 20_000;

/** Runs `parse` on each input; anything thrown must be a WireError. */
function fuzz(
  name: string,
  seed: number,
  corpus: readonly Buffer[],
  interesting: readonly number[],
  parse: (input: Buffer) => unknown,
): void {
  const f = new Fuzzer(seed);
  let parsed = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = i % 3 === 0 ? f.bytes(f.int(64)) : f.mutate(f.pick(corpus), interesting);
    let result: unknown;
    try {
      result = parse(input);
    } catch (e) {
      if (e instanceof WireError) continue;
      assert.fail(`${name} threw ${String(e)} for input ${input.toString('hex')}`);
    }
    if (result !== null) parsed++;
  }
  // Mutations of valid messages must often stay valid, or the fuzzer only tests the error paths.
  assert.ok(parsed >= ITERATIONS / 50, `${name}: only ${parsed} of ${ITERATIONS} inputs parsed`);
}

/** Checks a streaming parser's answer: null, or a value that consumed 1..input.length bytes. */
function checkDecoded(input: Buffer, r: { length: number } | null): unknown {
  if (r) assert.ok(r.length > 0 && r.length <= input.length, `consumed ${r.length} of ${input.length}`);
  return r;
}

const BYTE_EDGES = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xff];
const TEXT_EDGES = [...Buffer.from(' :/?#@[]%=&;.\r\n\t+'), 0, 0x7f, 0xff];

describe('fuzz: SOCKS5 and addresses', () => {
  const addresses = [
    makeAddress('1.2.3.4', 80),
    makeAddress('example.com', 443),
    makeAddress('2001:db8::1', 53),
    makeAddress('x'.repeat(200), 1),
  ].map(encodeAddress);

  test('readAddress, at random offsets', () => {
    const f = new Fuzzer(7);
    fuzz('readAddress', 1, addresses, BYTE_EDGES, (b) => {
      const offset = f.int(3);
      const r = readAddress(b, offset);
      if (r) assert.ok(offset + r.length <= b.length);
      return r;
    });
  });

  test('parseGreeting', () => {
    const corpus = [Buffer.from([5, 1, 0]), Buffer.from([5, 2, 0, 2]), Buffer.from([5, 3, 0, 1, 2])];
    fuzz('parseGreeting', 2, corpus, BYTE_EDGES, (b) => checkDecoded(b, parseGreeting(b)));
  });

  test('parseUserPassAuth', () => {
    const corpus = [Buffer.from('\x01\x04user\x06secret', 'latin1'), Buffer.from([1, 0, 0])];
    fuzz('parseUserPassAuth', 3, corpus, BYTE_EDGES, (b) => checkDecoded(b, parseUserPassAuth(b)));
  });

  test('parseRequest', () => {
    const corpus = addresses.map((a, i) => Buffer.concat([Buffer.from([5, 1 + (i % 3), 0]), a]));
    fuzz('parseRequest', 4, corpus, BYTE_EDGES, (b) => checkDecoded(b, parseRequest(b)));
  });

  test('decodeUdpDatagram', () => {
    const corpus = [
      encodeUdpDatagram(makeAddress('8.8.8.8', 53), Buffer.from('q')),
      encodeUdpDatagram(makeAddress('dns.google', 53), Buffer.alloc(0)),
      encodeUdpDatagram(makeAddress('::1', 53), Buffer.from('payload')),
    ];
    fuzz('decodeUdpDatagram', 5, corpus, BYTE_EDGES, (b) => decodeUdpDatagram(b));
  });

  test('parseHostPort', () => {
    const corpus = ['example.com:443', '[2001:db8::1]:80', '1.2.3.4:1'].map((s) => Buffer.from(s));
    fuzz('parseHostPort', 6, corpus, TEXT_EDGES, (b) => parseHostPort(b.toString('latin1')));
  });
});

describe('fuzz: HTTP proxy heads', () => {
  const corpus = [
    'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    'CONNECT [::1]:8443 HTTP/1.0\n\n',
    'GET http://a.io:8080/x?y#z HTTP/1.1\r\nHost: a.io\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\n\r\nbody',
    `POST http://1.2.3.4/ HTTP/1.1\r\nProxy-Authorization: Basic ${Buffer.from('u:p').toString('base64')}\r\n\r\n`,
  ].map((s) => Buffer.from(s, 'latin1'));

  test('parseProxyRequestHead, and buildForwardHead of what parses', () => {
    fuzz('parseProxyRequestHead', 8, corpus, TEXT_EDGES, (b) => {
      const r = checkDecoded(b, parseProxyRequestHead(b, 64 + (b[0] ?? 0)));
      if (r && typeof r === 'object' && 'value' in r) {
        const req = (r as NonNullable<ReturnType<typeof parseProxyRequestHead>>).value;
        if (!req.isConnect) {
          const head = buildForwardHead(req).toString('latin1');
          assert.ok(head.endsWith('\r\n\r\n') && head.indexOf('\r\n\r\n') === head.length - 4, head);
          assert.ok(!/[\x00-\x08\x0a-\x1f\x7f]/.test(head.replace(/\r\n/g, '')), head); // no injected lines
        }
      }
      return r;
    });
  });
});

describe('fuzz: ss:// URIs', () => {
  const psk = Buffer.alloc(32, 0x5a).toString('base64');
  const corpus = [
    'ss://YWVzLTEyOC1nY206dGVzdA@192.168.100.1:8888#Example1',
    `ss://2022-blake3-aes-256-gcm:${encodeURIComponent(psk)}@[2001:db8::1]:8888/?plugin=v2ray-plugin%3Bserver#x`,
    `ss://${Buffer.from('aes-256-gcm:p@ss@h.example:1').toString('base64')}#legacy`,
    'ss://chacha20-ietf-poly1305:pw@h:1/?prefix=%16%03%01&outline=1#%F0%9F%90%A6',
  ].map((s) => Buffer.from(s, 'latin1'));

  test('parseSsUri on byte mutations; what parses must format and parse back unchanged', () => {
    fuzz('parseSsUri', 9, corpus, TEXT_EDGES, (b) => {
      const u = parseSsUri(b.toString('latin1'));
      assert.deepEqual(parseSsUri(formatSsUri(u)), u);
      return u;
    });
  });

  test('parseSsUri on random Unicode text, including unpaired surrogates', () => {
    const f = new Fuzzer(10);
    const alphabet = [
      's',
      's:',
      '//',
      ':',
      '@',
      '[',
      ']',
      '%',
      '%3A',
      '?',
      '#',
      '=',
      '&',
      ';',
      'a',
      '1',
      '\ud800',
      '🐦',
      'é',
    ];
    for (let i = 0; i < ITERATIONS; i++) {
      let text = 'ss://';
      for (let n = f.int(24); n > 0; n--) text += f.pick(alphabet);
      try {
        const u = parseSsUri(text);
        assert.deepEqual(parseSsUri(formatSsUri(u)), u);
      } catch (e) {
        if (!(e instanceof WireError))
          assert.fail(`parseSsUri threw ${String(e)} for ${JSON.stringify(text)}`);
      }
    }
  });
});

describe('fuzz: routing rules and rule lists', () => {
  const rules = [
    'DOMAIN-SUFFIX,telegram.org,proxy',
    'DOMAIN-REGEX,^(.+\\.)?signal\\.org$,proxy',
    'IP-CIDR,91.108.4.0/22,proxy,no-resolve',
    'IP-CIDR6,2001:67c:4e8::/48,proxy',
    'DST-PORT,443/8000-9000,DIRECT',
    'GEOIP,CN,DIRECT',
    'MATCH,REJECT',
  ].map((s) => Buffer.from(s, 'latin1'));
  const RULE_EDGES = [...Buffer.from(',./-:[]()*+?\\ '), 0, 0x7f, 0xff];

  test('parseRule on byte mutations: a rule or a WireError; what parses keeps its text', () => {
    fuzz('parseRule', 11, rules, RULE_EDGES, (b) => {
      const r = parseRule(b.toString('latin1'));
      assert.equal(r.text, b.toString('latin1').trim());
      return r;
    });
  });

  test('parseCidr on byte mutations: ranges are well-formed', () => {
    const cidrs = ['91.108.4.0/22', '0.0.0.0/0', '2001:b28:f23d::/48', '::ffff:1.2.3.0/120', '10.1.2.3'].map(
      (s) => Buffer.from(s),
    );
    fuzz('parseCidr', 12, cidrs, RULE_EDGES, (b) => {
      const c = parseCidr(b.toString('latin1'));
      assert.ok(c.first <= c.last);
      assert.ok(c.last < (c.v6 ? 1n << 128n : 1n << 32n));
      return c;
    });
  });

  test('parseRuleList never throws: bad lines come back with their numbers', () => {
    const f = new Fuzzer(13);
    const lines = [
      'telegram.org',
      'full:web.telegram.org',
      'keyword:whatsapp',
      'regexp:^a.*b$',
      'cidr:10.0.0.0/8',
      '# c',
    ];
    for (let i = 0; i < 2000; i++) {
      const text = Array.from({ length: 1 + f.int(6) }, () =>
        f.mutate(Buffer.from(f.pick(lines)), RULE_EDGES).toString('latin1'),
      ).join('\n');
      const { entries, errors } = parseRuleList(text);
      const count = text.split('\n').length;
      for (const e of errors) assert.ok(e.line >= 1 && e.line <= count && e.message.length > 0);
      assert.ok(entries.length + errors.length <= count);
    }
  });
});

test('the PRNG is deterministic', () => {
  const a = mulberry32(42);
  const b = mulberry32(42);
  for (let i = 0; i < 100; i++) assert.equal(a(), b());
  assert.notEqual(mulberry32(1)(), mulberry32(2)());
});
