import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  encodeAddress,
  encodedAddressLength,
  formatAddress,
  makeAddress,
  parseHostPort,
  readAddress,
  readAddressComplete,
  writeAddress,
} from '../../src/wire/socks-address.js';
import { wireCode } from '../helpers/wire-error.js';

const code = wireCode;
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('makeAddress / formatAddress', () => {
  test('classifies IPv4, IPv6 (brackets stripped) and domains', () => {
    assert.deepEqual(makeAddress('1.2.3.4', 80), { kind: 'ipv4', host: '1.2.3.4', port: 80 });
    assert.deepEqual(makeAddress('::1', 53), { kind: 'ipv6', host: '::1', port: 53 });
    assert.deepEqual(makeAddress('[2001:db8::1]', 443), { kind: 'ipv6', host: '2001:db8::1', port: 443 });
    assert.deepEqual(makeAddress('example.com', 0), { kind: 'domain', host: 'example.com', port: 0 });
    assert.deepEqual(makeAddress('1.2.3', 1), { kind: 'domain', host: '1.2.3', port: 1 });
  });

  test('rejects bad ports and domain lengths', () => {
    for (const p of [-1, 65536, 1.5, NaN])
      assert.equal(
        code(() => makeAddress('a', p)),
        'bad-port',
      );
    assert.equal(
      code(() => makeAddress('', 1)),
      'bad-domain',
    );
    assert.equal(
      code(() => makeAddress('a'.repeat(256), 1)),
      'bad-domain',
    );
    assert.equal(makeAddress('a'.repeat(255), 1).host.length, 255);
  });

  test('formats host:port with IPv6 in brackets', () => {
    assert.equal(formatAddress(makeAddress('1.2.3.4', 80)), '1.2.3.4:80');
    assert.equal(formatAddress(makeAddress('::1', 80)), '[::1]:80');
    assert.equal(formatAddress(makeAddress('a.io', 8388)), 'a.io:8388');
  });
});

describe('encodeAddress', () => {
  test('exact bytes for every ATYP', () => {
    assert.deepEqual(encodeAddress(makeAddress('1.2.3.4', 80)), hex('01 01020304 0050'));
    assert.deepEqual(
      encodeAddress(makeAddress('example.com', 443)),
      hex('03 0b 6578616d706c652e636f6d 01bb'),
    );
    assert.deepEqual(
      encodeAddress(makeAddress('2001:db8::1', 65535)),
      hex('04 20010db8000000000000000000000001 ffff'),
    );
    assert.deepEqual(
      encodeAddress(makeAddress('::ffff:1.2.3.4', 1)),
      hex('04 00000000000000000000ffff01020304 0001'),
    );
    assert.deepEqual(encodeAddress(makeAddress('::', 0)), hex('04 00000000000000000000000000000000 0000'));
  });

  test('encodedAddressLength and writeAddress at an offset', () => {
    const a = makeAddress('a.io', 1);
    assert.equal(encodedAddressLength(a), 1 + 1 + 4 + 2);
    assert.equal(encodedAddressLength(makeAddress('1.1.1.1', 1)), 7);
    assert.equal(encodedAddressLength(makeAddress('::1', 1)), 19);
    const out = Buffer.alloc(12, 0xaa);
    assert.equal(writeAddress(a, out, 2), 10);
    assert.deepEqual(out, hex('aaaa 03 04 612e696f 0001 aaaa'));
  });

  test('an over-long domain is refused when written', () => {
    const a = { kind: 'domain' as const, host: 'x'.repeat(256), port: 1 };
    assert.equal(
      code(() => encodeAddress(a)),
      'bad-domain',
    );
  });
});

describe('readAddress', () => {
  test('round-trips every ATYP and reports the length consumed', () => {
    for (const a of [
      makeAddress('0.0.0.0', 0),
      makeAddress('255.255.255.255', 65535),
      makeAddress('example.com', 443),
      makeAddress('x'.repeat(255), 1),
      makeAddress('2001:db8::1', 8080),
    ]) {
      const enc = encodeAddress(a);
      assert.deepEqual(readAddress(enc), { value: a, length: enc.length });
      // at an offset, with trailing bytes
      const padded = Buffer.concat([Buffer.from([9, 9]), enc, Buffer.from([7])]);
      assert.deepEqual(readAddress(padded, 2), { value: a, length: enc.length });
      assert.deepEqual(readAddress(new Uint8Array(enc)), { value: a, length: enc.length });
    }
  });

  test('IPv6 is decoded to RFC 5952 canonical text', () => {
    const cases: Array<[string, string]> = [
      ['::', '::'],
      ['::1', '::1'],
      ['2001:db8::1', '2001:db8::1'],
      ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of equal runs
      ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // longest run
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
      ['1::', '1::'],
      ['fe80::abcd:ef01', 'fe80::abcd:ef01'],
      // IPv4-mapped: decoded as hex groups, not the mixed "::ffff:1.2.3.4" notation
      ['::ffff:1.2.3.4', '::ffff:102:304'],
    ];
    for (const [input, canonical] of cases) {
      const r = readAddress(encodeAddress(makeAddress(input, 1)));
      assert.deepEqual(r?.value, { kind: 'ipv6', host: canonical, port: 1 }, input);
    }
  });

  test('every truncation of a valid address returns null', () => {
    for (const a of [makeAddress('1.2.3.4', 80), makeAddress('example.com', 443), makeAddress('::1', 53)]) {
      const enc = encodeAddress(a);
      for (let n = 0; n < enc.length; n++) {
        assert.equal(readAddress(enc.subarray(0, n)), null, `${formatAddress(a)} prefix ${n}`);
        assert.equal(readAddress(Buffer.concat([Buffer.from([0]), enc.subarray(0, n)]), 1), null);
        assert.equal(
          code(() => readAddressComplete(enc.subarray(0, n))),
          'truncated',
        );
      }
    }
  });

  test('unknown ATYP and empty domain are WireErrors', () => {
    for (const atyp of [0x00, 0x02, 0x05, 0xff]) {
      assert.equal(
        code(() => readAddress(Buffer.from([atyp, 1, 2, 3, 4, 5, 6]))),
        'bad-atyp',
      );
    }
    assert.equal(
      code(() => readAddress(hex('03 00 0050'))),
      'bad-domain',
    );
    assert.equal(
      code(() => readAddress(hex('03 00'))),
      'bad-domain',
    );
  });

  test('domains with spaces, control bytes or non-ASCII bytes are refused', () => {
    for (const bytes of ['6120', '610a', '00', '7f', 'c3bc']) {
      const name = hex(bytes);
      const msg = Buffer.concat([Buffer.from([ATYP_DOMAIN, name.length]), name, hex('0050')]);
      assert.equal(
        code(() => readAddress(msg)),
        'bad-domain',
        bytes,
      );
    }
  });

  test('an IP literal sent as a domain is classified as an IP', () => {
    const lit = (s: string): Buffer =>
      Buffer.concat([Buffer.from([ATYP_DOMAIN, s.length]), Buffer.from(s), hex('0050')]);
    assert.deepEqual(readAddress(lit('10.0.0.1'))?.value, { kind: 'ipv4', host: '10.0.0.1', port: 80 });
    assert.deepEqual(readAddress(lit('::1'))?.value, { kind: 'ipv6', host: '::1', port: 80 });
  });

  test('ATYP constants', () => {
    assert.deepEqual([ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6], [1, 3, 4]);
  });
});

describe('parseHostPort', () => {
  test('accepts host:port and [v6]:port', () => {
    assert.deepEqual(parseHostPort('example.com:443'), { kind: 'domain', host: 'example.com', port: 443 });
    assert.deepEqual(parseHostPort('1.2.3.4:80'), { kind: 'ipv4', host: '1.2.3.4', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:1080'), { kind: 'ipv6', host: '::1', port: 1080 });
    assert.deepEqual(parseHostPort('a:65535').port, 65535);
    assert.deepEqual(parseHostPort('a:0').port, 0);
  });

  test('rejects malformed text with a WireError', () => {
    for (const t of [
      '',
      'example.com',
      ':80',
      'a:',
      '::1:80',
      '[::1]',
      '[::1]80',
      'a:b',
      'a:123456',
      '[a]:1:2',
    ]) {
      assert.equal(
        code(() => parseHostPort(t)),
        'bad-host-port',
        t,
      );
    }
    assert.equal(
      code(() => parseHostPort('a:65536')),
      'bad-port',
    );
    assert.equal(
      code(() => parseHostPort('a:99999')),
      'bad-port',
    );
    assert.equal(
      code(() => parseHostPort('[1.2.3.4]:80')),
      'bad-host-port',
    );
    assert.equal(
      code(() => parseHostPort('[example.com]:80')),
      'bad-host-port',
    );
  });
});
