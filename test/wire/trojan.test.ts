// The Trojan codec: request headers (incremental, and junk refused at the first wrong byte), UDP
// frames, trojan:// URIs as other apps write them; then seeded fuzzing of every parser.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Fuzzer } from '../helpers/fuzzer.js';
import { createHash } from 'node:crypto';
import { WireError } from '../../src/wire/errors.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import {
  encodeTrojanRequest,
  encodeTrojanUdpFrame,
  formatTrojanUri,
  parseTrojanRequest,
  parseTrojanUri,
  readTrojanUdpFrame,
  TROJAN_CONNECT,
  TROJAN_MAX_HEADER,
  TROJAN_UDP_ASSOCIATE,
  TrojanUdpReader,
  trojanPasswordHash,
  type TrojanUri,
} from '../../src/wire/trojan.js';
import { wireCode } from '../helpers/wire-error.js';

const HASH = trojanPasswordHash('password1');

describe('request header', () => {
  test('the hash is lowercase hex SHA-224 of the UTF-8 password', () => {
    assert.equal(HASH, createHash('sha224').update('password1').digest('hex'));
    assert.equal(HASH.length, 56);
    assert.equal(
      trojanPasswordHash('пароль'),
      createHash('sha224').update(Buffer.from('пароль')).digest('hex'),
    );
  });

  test('bytes on the wire: hash CRLF CMD ATYP ADDR PORT CRLF payload', () => {
    const wire = encodeTrojanRequest(
      HASH,
      TROJAN_CONNECT,
      makeAddress('example.com', 443),
      Buffer.from('GET'),
    );
    const expected = Buffer.concat([
      Buffer.from(HASH + '\r\n'),
      Buffer.from([0x01, 0x03, 11]),
      Buffer.from('example.com'),
      Buffer.from([0x01, 0xbb, 0x0d, 0x0a]),
      Buffer.from('GET'),
    ]);
    assert.deepEqual(wire, expected);
  });

  const cases = [
    makeAddress('1.2.3.4', 80),
    makeAddress('2001:db8::1', 8443),
    makeAddress('example.com', 443),
    makeAddress('a'.repeat(255), 1),
  ];
  for (const address of cases) {
    for (const command of [TROJAN_CONNECT, TROJAN_UDP_ASSOCIATE] as const) {
      test(`round trip: ${address.kind} ${address.host.slice(0, 20)} cmd ${command}`, () => {
        const payload = Buffer.from('payload after the header');
        const wire = encodeTrojanRequest(HASH, command, address, payload);
        const r = parseTrojanRequest(wire);
        assert.equal(r.kind, 'request');
        if (r.kind !== 'request') return;
        assert.deepEqual(r.request, { hash: HASH, command, address, length: wire.length - payload.length });
        assert.ok(r.request.length <= TROJAN_MAX_HEADER);
        // every strict prefix needs more; none is invalid
        for (let i = 0; i < r.request.length; i++)
          assert.equal(parseTrojanRequest(wire.subarray(0, i)).kind, 'need-more');
      });
    }
  }

  const invalid: Array<[string, Buffer, string]> = [
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'), 'bad-hash'],
    ['an uppercase hash', Buffer.from(HASH.toUpperCase() + '\r\n'), 'bad-hash'],
    ['a short hash', Buffer.from(HASH.slice(0, 55) + '\r\n\x01'), 'bad-hash'],
    ['no CRLF after the hash', Buffer.from(HASH + '\n\r'), 'bad-crlf'],
    ['command 2 (BIND)', Buffer.from(HASH + '\r\n\x02'), 'bad-command'],
    ['address type 5', Buffer.concat([Buffer.from(HASH + '\r\n\x01\x05')]), 'bad-atyp'],
    ['an empty domain', Buffer.concat([Buffer.from(HASH + '\r\n\x01\x03\x00')]), 'bad-domain'],
    [
      'no CRLF after the address',
      Buffer.concat([
        Buffer.from(HASH + '\r\n\x01\x01'),
        Buffer.from([1, 2, 3, 4, 0, 80]),
        Buffer.from('\r\r'),
      ]),
      'bad-crlf',
    ],
  ];
  for (const [name, bytes, reason] of invalid) {
    test(`invalid: ${name}`, () => assert.deepEqual(parseTrojanRequest(bytes), { kind: 'invalid', reason }));
  }

  test('junk is refused at its first byte, without waiting for 56', () => {
    assert.equal(parseTrojanRequest(Buffer.from('G')).kind, 'invalid');
    assert.equal(parseTrojanRequest(Buffer.from([0x16, 0x03, 0x01])).kind, 'invalid');
    assert.equal(parseTrojanRequest(Buffer.from('0123abc')).kind, 'need-more');
  });

  test('encode refuses a bad hash', () => {
    assert.equal(
      wireCode(() => encodeTrojanRequest('x'.repeat(56), TROJAN_CONNECT, makeAddress('1.1.1.1', 1))),
      'bad-hash',
    );
    assert.equal(
      wireCode(() => encodeTrojanRequest(HASH.slice(1), TROJAN_CONNECT, makeAddress('1.1.1.1', 1))),
      'bad-hash',
    );
  });
});

describe('UDP frames', () => {
  test('bytes on the wire: ATYP ADDR PORT LENGTH CRLF payload', () => {
    const f = encodeTrojanUdpFrame(makeAddress('8.8.8.8', 53), Buffer.from('abc'));
    assert.deepEqual(f, Buffer.from([1, 8, 8, 8, 8, 0, 53, 0, 3, 0x0d, 0x0a, 0x61, 0x62, 0x63]));
    const r = readTrojanUdpFrame(f);
    assert.deepEqual(r && { ...r, payload: r.payload.toString() }, {
      address: makeAddress('8.8.8.8', 53),
      payload: 'abc',
      length: f.length,
    });
  });

  test('empty and 65535-byte payloads; longer is refused', () => {
    const a = makeAddress('example.org', 9);
    assert.equal(readTrojanUdpFrame(encodeTrojanUdpFrame(a, Buffer.alloc(0)))?.payload.length, 0);
    assert.equal(readTrojanUdpFrame(encodeTrojanUdpFrame(a, Buffer.alloc(65535, 7)))?.payload.length, 65535);
    assert.equal(
      wireCode(() => encodeTrojanUdpFrame(a, Buffer.alloc(65536))),
      'too-long',
    );
  });

  test('a stream of frames split at every byte comes out whole and in order', () => {
    const datagrams = [
      [makeAddress('1.2.3.4', 1), Buffer.from('one')],
      [makeAddress('::1', 2), Buffer.alloc(1000, 2)],
      [makeAddress('example.com', 3), Buffer.alloc(0)],
    ] as const;
    const wire = Buffer.concat(datagrams.map(([a, p]) => encodeTrojanUdpFrame(a, p)));
    for (const step of [1, 2, 7, 100, wire.length]) {
      const reader = new TrojanUdpReader();
      const got = [];
      for (let i = 0; i < wire.length; i += step) got.push(...reader.push(wire.subarray(i, i + step)));
      assert.deepEqual(
        got.map((f) => [f.address, Buffer.from(f.payload)]),
        datagrams.map(([a, p]) => [a, p]),
      );
      assert.equal(reader.pending, 0);
    }
  });

  test('a frame without CRLF breaks the stream', () => {
    const f = encodeTrojanUdpFrame(makeAddress('1.2.3.4', 1), Buffer.from('x'));
    f[9] = 0x20;
    assert.equal(
      wireCode(() => new TrojanUdpReader().push(f)),
      'bad-crlf',
    );
  });
});

describe('trojan:// URIs', () => {
  const base = (u: Partial<TrojanUri>): TrojanUri => ({
    password: 'password1',
    host: 'example.com',
    port: 443,
    allowInsecure: false,
    pinnedCertSha256: [],
    params: {},
    ...u,
  });
  const FP = 'AB'.repeat(32);
  const parsed: Array<[string, TrojanUri]> = [
    ['trojan://password1@example.com:443', base({})],
    ['trojan://password1@example.com', base({})],
    ['trojan://password1@example.com:8443/', base({ port: 8443 })],
    [
      'trojan://p%40ss%3Aw%2Fd%23%3F@1.2.3.4:443?sni=cdn.example.org&allowInsecure=1#My%20server',
      base({
        password: 'p@ss:w/d#?',
        host: '1.2.3.4',
        sni: 'cdn.example.org',
        allowInsecure: true,
        tag: 'My server',
      }),
    ],
    [
      'trojan://pw@[2001:db8::1]:443?peer=x.example',
      base({ password: 'pw', host: '2001:db8::1', sni: 'x.example' }),
    ],
    [
      // v2rayN
      'trojan://pw@example.com:443?security=tls&sni=example.com&type=tcp&headerType=none#v2rayN',
      base({
        password: 'pw',
        sni: 'example.com',
        tag: 'v2rayN',
        params: { security: 'tls', type: 'tcp', headerType: 'none' },
      }),
    ],
    [
      `trojan://pw@example.com:443?insecure=1&alpn=h2%2Chttp%2F1.1&fp=chrome&pcs=${FP.toLowerCase().match(/../g)!.join(':')}`,
      base({
        password: 'pw',
        allowInsecure: true,
        alpn: ['h2', 'http/1.1'],
        pinnedCertSha256: [FP],
        params: { fp: 'chrome' },
      }),
    ],
  ];
  for (const [text, expected] of parsed) {
    test(`parse ${text.slice(0, 60)}`, () => {
      const u = parseTrojanUri(text);
      assert.deepEqual(u, expected);
      assert.deepEqual(parseTrojanUri(formatTrojanUri(u)), u, 'format → parse round trip');
    });
  }

  const refused: Array<[string, string]> = [
    ['ss://pw@example.com:443', 'bad-uri'],
    ['trojan://example.com:443', 'bad-uri'],
    ['trojan://@example.com:443', 'bad-uri'],
    ['trojan://pw@exa mple.com:443', 'bad-host'],
    ['trojan://pw@example.com:0', 'bad-port'],
    ['trojan://pw@example.com:65536', 'bad-port'],
    ['trojan://pw@[1.2.3.4]:443', 'bad-host'],
    ['trojan://pw@example.com:443?type=ws&path=%2F', 'unsupported'],
    ['trojan://pw@example.com:443?security=reality', 'unsupported'],
    ['trojan://pw@example.com:443?sni=a&sni=b', 'bad-uri'],
    ['trojan://pw@example.com:443?pcs=1234', 'bad-uri'],
    ['trojan://p%zzw@example.com:443', 'bad-uri'],
  ];
  for (const [text, code] of refused) {
    test(`refuse ${text}`, () => {
      assert.equal(
        wireCode(() => parseTrojanUri(text)),
        code,
      );
    });
  }

  test('errors never show the password', () => {
    for (const text of [
      'trojan://SECRETpw@bad host:1',
      'trojan://SECRETpw@example.com:99999',
      'trojan://SECRETpw@h:1?type=grpc',
    ]) {
      try {
        parseTrojanUri(text);
        assert.fail('should throw');
      } catch (e) {
        assert.ok(e instanceof WireError);
        assert.ok(!e.message.includes('SECRET'), e.message);
      }
    }
  });

  test('format percent-encodes the password, tag and parameters', () => {
    const text = formatTrojanUri(base({ password: 'a b/c@d', tag: 'Mum #1', params: { fp: 'chrome' } }));
    assert.equal(text, 'trojan://a%20b%2Fc%40d@example.com:443?fp=chrome#Mum%20%231');
  });
});

// ---------------------------------------------------------------------------------------------------
// Seeded fuzzing (test/helpers/fuzzer.ts)

const ITERATIONS = 20_000;

const INTERESTING = [0x00, 0x01, 0x03, 0x04, 0x05, 0x0a, 0x0d, 0x30, 0x61, 0x66, 0x67, 0x7f, 0xff];

describe('fuzz', () => {
  const samples = [
    encodeTrojanRequest(HASH, TROJAN_CONNECT, makeAddress('example.com', 443), Buffer.from('hello')),
    encodeTrojanRequest(HASH, TROJAN_UDP_ASSOCIATE, makeAddress('::1', 53)),
    encodeTrojanRequest(HASH, TROJAN_CONNECT, makeAddress('10.0.0.1', 22)),
  ];

  test('parseTrojanRequest never throws, and a request always re-encodes to its header', () => {
    const f = new Fuzzer(0x7e0a);
    const counts = { 'need-more': 0, request: 0, invalid: 0 };
    for (let i = 0; i < ITERATIONS; i++) {
      const input = f.int(4) === 0 ? f.bytes(f.int(400)) : f.mutate(f.pick(samples), INTERESTING);
      const r = parseTrojanRequest(input);
      counts[r.kind]++;
      if (r.kind === 'request') {
        const { hash, command, address, length } = r.request;
        const again = encodeTrojanRequest(hash, command, address);
        assert.equal(again.length, length);
        // A domain that is an IP literal is classified as an IP, so compare by re-parsing.
        const r2 = parseTrojanRequest(again);
        assert.deepEqual(r2.kind === 'request' && r2.request.address, address);
      }
    }
    assert.ok(
      counts.request > 100 && counts.invalid > 100 && counts['need-more'] > 100,
      JSON.stringify(counts),
    );
  });

  test('UDP frames: a value, null, or a WireError; never anything else', () => {
    const f = new Fuzzer(0x0dd);
    const frames = [
      encodeTrojanUdpFrame(makeAddress('1.2.3.4', 53), Buffer.from('query')),
      encodeTrojanUdpFrame(makeAddress('example.com', 443), Buffer.alloc(300, 1)),
    ];
    for (let i = 0; i < ITERATIONS; i++) {
      const input = f.int(4) === 0 ? f.bytes(f.int(100)) : f.mutate(f.pick(frames), INTERESTING);
      try {
        const r = readTrojanUdpFrame(input);
        if (r) assert.ok(r.length <= input.length);
        new TrojanUdpReader().push(input);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }
  });

  test('URIs: a value or a WireError; parsed values round-trip', () => {
    const f = new Fuzzer(0x7201);
    const uris = [
      'trojan://p%40ss@1.2.3.4:443?sni=cdn.example.org&allowInsecure=1#tag',
      'trojan://pw@[2001:db8::1]:8443?peer=x.example&alpn=h2,http/1.1&fp=chrome',
      `trojan://pw@example.com?pcs=${'ab'.repeat(32)}&security=tls&type=tcp`,
    ];
    for (let i = 0; i < ITERATIONS; i++) {
      const input = f.mutate(
        Buffer.from(f.pick(uris)),
        [0x25, 0x3a, 0x40, 0x3f, 0x23, 0x26, 0x3d, 0x2c, 0x5b, 0x5d],
      );
      let u: TrojanUri;
      try {
        u = parseTrojanUri(input.toString('latin1'));
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        continue;
      }
      try {
        assert.deepEqual(parseTrojanUri(formatTrojanUri(u)), u);
      } catch (e) {
        if (!(e instanceof WireError)) throw e; // e.g. an unpaired surrogate cannot be formatted
      }
    }
  });
});
