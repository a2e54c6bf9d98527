import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeAddress } from '../../src/wire/socks-address.js';
import {
  METHOD_NONE_ACCEPTABLE,
  METHOD_NO_AUTH,
  METHOD_USER_PASS,
  REP,
  SOCKS_VERSION,
  decodeUdpDatagram,
  encodeAuthReply,
  encodeMethodSelection,
  encodeReply,
  encodeUdpDatagram,
  parseGreeting,
  parseRequest,
  parseUserPassAuth,
  udpDatagramHeaderLength,
} from '../../src/wire/socks5.js';
import { wireCode } from '../helpers/wire-error.js';

const code = wireCode;
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Every proper prefix of `msg` must parse as null ("need more bytes"). */
function assertPrefixesNeedMore(parse: (b: Uint8Array) => unknown, msg: Buffer): void {
  for (let n = 0; n < msg.length; n++) assert.equal(parse(msg.subarray(0, n)), null, `prefix of ${n} bytes`);
}

test('constants', () => {
  assert.equal(SOCKS_VERSION, 5);
  assert.deepEqual([METHOD_NO_AUTH, METHOD_USER_PASS, METHOD_NONE_ACCEPTABLE], [0, 2, 0xff]);
  assert.deepEqual(REP, {
    succeeded: 0,
    generalFailure: 1,
    notAllowed: 2,
    networkUnreachable: 3,
    hostUnreachable: 4,
    connectionRefused: 5,
    ttlExpired: 6,
    commandNotSupported: 7,
    addressTypeNotSupported: 8,
  });
});

describe('greeting and method selection', () => {
  test("curl's greeting 05 01 00", () => {
    assert.deepEqual(parseGreeting(hex('050100')), { value: { methods: [0] }, length: 3 });
    assertPrefixesNeedMore(parseGreeting, hex('050100'));
  });

  test('several methods; bytes after the greeting are not consumed', () => {
    const msg = hex('05 03 00 01 02 05 01 00');
    assert.deepEqual(parseGreeting(msg), { value: { methods: [0, 1, 2] }, length: 5 });
    assertPrefixesNeedMore(parseGreeting, msg.subarray(0, 5));
    const all = Buffer.concat([Buffer.from([5, 255]), Buffer.alloc(255, 7)]);
    assert.equal(parseGreeting(all)?.value.methods.length, 255);
  });

  test('wrong version (even in the first byte alone) and no methods are WireErrors', () => {
    assert.equal(
      code(() => parseGreeting(hex('04'))),
      'bad-version',
    );
    assert.equal(
      code(() => parseGreeting(hex('040100'))),
      'bad-version',
    );
    assert.equal(
      code(() => parseGreeting(hex('47455420'))),
      'bad-version',
    ); // "GET "
    assert.equal(
      code(() => parseGreeting(hex('0500'))),
      'no-methods',
    );
  });

  test('method selection bytes', () => {
    assert.deepEqual(encodeMethodSelection(METHOD_NO_AUTH), hex('0500'));
    assert.deepEqual(encodeMethodSelection(METHOD_USER_PASS), hex('0502'));
    assert.deepEqual(encodeMethodSelection(METHOD_NONE_ACCEPTABLE), hex('05ff'));
    assert.equal(
      code(() => encodeMethodSelection(256)),
      'bad-value',
    );
    assert.equal(
      code(() => encodeMethodSelection(-1)),
      'bad-value',
    );
  });
});

describe('username/password authentication (RFC 1929)', () => {
  const msg = hex('01 04 75736572 06 736563726574'); // user / secret

  test('parses and consumes exactly the request', () => {
    assert.deepEqual(parseUserPassAuth(msg), { value: { username: 'user', password: 'secret' }, length: 13 });
    assert.deepEqual(parseUserPassAuth(Buffer.concat([msg, hex('0501')]))?.length, 13);
    assertPrefixesNeedMore(parseUserPassAuth, msg);
  });

  test('UTF-8 and empty fields', () => {
    const u = Buffer.from('jürgen');
    const m = Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([0])]);
    assert.deepEqual(parseUserPassAuth(m), { value: { username: 'jürgen', password: '' }, length: m.length });
    assert.deepEqual(parseUserPassAuth(hex('010000')), { value: { username: '', password: '' }, length: 3 });
  });

  test('wrong subnegotiation version', () => {
    assert.equal(
      code(() => parseUserPassAuth(hex('05'))),
      'bad-version',
    );
    assert.equal(
      code(() => parseUserPassAuth(hex('00 01 61 01 62'))),
      'bad-version',
    );
  });

  test('auth reply', () => {
    assert.deepEqual(encodeAuthReply(true), hex('0100'));
    assert.deepEqual(encodeAuthReply(false), hex('0101'));
  });
});

describe('requests', () => {
  const connectExample = hex('05 01 00 03 0b 6578616d706c652e636f6d 01bb');

  test('CONNECT example.com:443 as exact bytes', () => {
    assert.deepEqual(parseRequest(connectExample), {
      value: { command: 'connect', address: { kind: 'domain', host: 'example.com', port: 443 } },
      length: 18,
    });
    assertPrefixesNeedMore(parseRequest, connectExample);
    // the first payload bytes may arrive in the same chunk
    assert.equal(parseRequest(Buffer.concat([connectExample, Buffer.from('GET /')]))?.length, 18);
  });

  test('every command and address type', () => {
    const ipv4 = hex('05 03 00 01 00000000 0000');
    assert.deepEqual(parseRequest(ipv4), {
      value: { command: 'udp-associate', address: { kind: 'ipv4', host: '0.0.0.0', port: 0 } },
      length: 10,
    });
    assertPrefixesNeedMore(parseRequest, ipv4);
    const ipv6 = hex('05 02 00 04 20010db8000000000000000000000001 0050');
    assert.deepEqual(parseRequest(ipv6), {
      value: { command: 'bind', address: { kind: 'ipv6', host: '2001:db8::1', port: 80 } },
      length: 22,
    });
    assertPrefixesNeedMore(parseRequest, ipv6);
  });

  test('a non-zero RSV byte is tolerated', () => {
    assert.equal(parseRequest(hex('05 01 ff 01 7f000001 0050'))?.value.address.host, '127.0.0.1');
  });

  test('errors map to the codes the caller turns into replies', () => {
    assert.equal(
      code(() => parseRequest(hex('04'))),
      'bad-version',
    );
    assert.equal(
      code(() => parseRequest(hex('04 01 00 01 7f000001 0050'))),
      'bad-version',
    );
    // the command is judged as soon as it arrives
    assert.equal(
      code(() => parseRequest(hex('05 04'))),
      'bad-command',
    );
    assert.equal(
      code(() => parseRequest(hex('05 00 00 01 7f000001 0050'))),
      'bad-command',
    );
    assert.equal(
      code(() => parseRequest(hex('05 01 00 02'))),
      'bad-atyp',
    );
    assert.equal(
      code(() => parseRequest(hex('05 01 00 05 7f000001 0050'))),
      'bad-atyp',
    );
    assert.equal(
      code(() => parseRequest(hex('05 01 00 03 00 0050'))),
      'bad-domain',
    );
    assert.equal(
      code(() => parseRequest(hex('05 01 00 03 01 20 0050'))),
      'bad-domain',
    );
  });
});

describe('replies', () => {
  test('default bound address is 0.0.0.0:0', () => {
    assert.deepEqual(encodeReply(REP.succeeded), hex('05 00 00 01 00000000 0000'));
    assert.deepEqual(encodeReply(REP.commandNotSupported), hex('05 07 00 01 00000000 0000'));
  });

  test('bound addresses of each kind', () => {
    assert.deepEqual(
      encodeReply(REP.succeeded, makeAddress('127.0.0.1', 1080)),
      hex('05 00 00 01 7f000001 0438'),
    );
    assert.deepEqual(
      encodeReply(REP.succeeded, makeAddress('::1', 1)),
      hex('05 00 00 04' + '00'.repeat(15) + '01 0001'),
    );
    assert.deepEqual(
      encodeReply(REP.hostUnreachable, makeAddress('a.b', 2)),
      hex('05 04 00 03 03 612e62 0002'),
    );
  });

  test('a reply code outside a byte is refused', () => {
    assert.equal(
      code(() => encodeReply(256)),
      'bad-value',
    );
    assert.equal(
      code(() => encodeReply(1.5)),
      'bad-value',
    );
  });
});

describe('UDP datagrams', () => {
  test('encodes RSV FRAG address payload', () => {
    const a = makeAddress('8.8.8.8', 53);
    const dg = encodeUdpDatagram(a, Buffer.from('hi'));
    assert.deepEqual(dg, hex('0000 00 01 08080808 0035 6869'));
    assert.equal(udpDatagramHeaderLength(a), 10);
    assert.equal(udpDatagramHeaderLength(makeAddress('::1', 1)), 22);
    assert.equal(udpDatagramHeaderLength(makeAddress('ab.c', 1)), 3 + 1 + 1 + 4 + 2);
  });

  test('decodes and round-trips', () => {
    for (const a of [
      makeAddress('8.8.8.8', 53),
      makeAddress('dns.google', 853),
      makeAddress('2001:db8::53', 5353),
    ]) {
      for (const payload of [Buffer.alloc(0), Buffer.from('query'), Buffer.alloc(1400, 0xab)]) {
        const d = decodeUdpDatagram(encodeUdpDatagram(a, payload));
        assert.deepEqual(d, { frag: 0, address: a, payload });
      }
    }
    const fragged = hex('0000 05 01 01020304 0001 ff');
    assert.deepEqual(decodeUdpDatagram(new Uint8Array(fragged)), {
      frag: 5,
      address: makeAddress('1.2.3.4', 1),
      payload: hex('ff'),
    });
  });

  test('a truncated datagram is a WireError at every length', () => {
    const dg = encodeUdpDatagram(makeAddress('example.com', 80), Buffer.alloc(0));
    for (let n = 0; n < dg.length; n++)
      assert.equal(
        code(() => decodeUdpDatagram(dg.subarray(0, n))),
        'truncated',
      );
    assert.equal(
      code(() => decodeUdpDatagram(hex('0000 00 09 00'))),
      'bad-atyp',
    );
  });
});
