import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeRequestFixedHeader,
  decodeRequestVarHeader,
  decodeResponseFixedHeader,
  encodeRequestFixedHeader,
  encodeRequestVarHeader,
  encodeResponseFixedHeader,
  readUdpMessage,
  udpMessageLength,
  writeUdpMessage,
  checkTimestamp,
} from '../../src/wire/shadowsocks-2022.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { wireCode } from '../helpers/wire-error.js';

const code = wireCode;

test('request fixed header: type 0, u64 BE timestamp, u16 BE length', () => {
  const h = encodeRequestFixedHeader(0x0102030405, 0x0a0b);
  assert.equal(h.toString('hex'), '00' + '0000000102030405' + '0a0b');
  assert.deepEqual(decodeRequestFixedHeader(h), { timestamp: 0x0102030405, length: 0x0a0b });
  const t1 = Buffer.from(h);
  t1[0] = 1;
  assert.equal(
    code(() => decodeRequestFixedHeader(t1)),
    'bad-type',
  );
  assert.equal(
    code(() => decodeRequestFixedHeader(encodeRequestFixedHeader(1, 0))),
    'bad-length',
  );
});

test('request variable header: address, padding length, padding, payload', () => {
  const a = makeAddress('a.io', 443);
  const h = encodeRequestVarHeader(a, 2, Buffer.from('hi'));
  assert.equal(h.toString('hex'), '0304612e696f01bb' + '0002' + '0000' + '6869');
  const d = decodeRequestVarHeader(h);
  assert.deepEqual(d.address, a);
  assert.equal(d.payload.toString(), 'hi');
  assert.equal(
    code(() => decodeRequestVarHeader(encodeRequestVarHeader(a, 0, Buffer.alloc(0)))),
    'bad-padding',
  );
  assert.equal(
    code(() => decodeRequestVarHeader(encodeRequestVarHeader(a, 901, Buffer.alloc(0)))),
    'bad-padding',
  );
  // padding that claims to run past the chunk
  const over = Buffer.from(h);
  over.writeUInt16BE(50, 8);
  assert.equal(
    code(() => decodeRequestVarHeader(over)),
    'bad-padding',
  );
  assert.equal(
    code(() => decodeRequestVarHeader(h.subarray(0, 9))),
    'truncated',
  );
});

test('response fixed header echoes the request salt', () => {
  const salt = Buffer.alloc(16, 0xee);
  const h = encodeResponseFixedHeader(7, salt, 300);
  assert.equal(h.length, 27);
  const d = decodeResponseFixedHeader(h, 16);
  assert.equal(d.timestamp, 7);
  assert.ok(d.requestSalt.equals(salt));
  assert.equal(d.length, 300);
  assert.equal(
    code(() => decodeResponseFixedHeader(h, 32)),
    'truncated',
  );
});

test('UDP messages round-trip for both directions; padding is bounded', () => {
  const address = makeAddress('2001:db8::1', 3478);
  for (const type of [0, 1] as const) {
    const m = {
      type,
      timestamp: 99,
      address,
      payload: Buffer.from('stun'),
      ...(type === 1 ? { clientSessionId: Buffer.alloc(8, 3) } : {}),
    };
    const out = Buffer.alloc(udpMessageLength(m, 5));
    assert.equal(writeUdpMessage(m, 5, out, 0), out.length);
    assert.deepEqual(readUdpMessage(out, type), m);
    assert.equal(
      code(() => readUdpMessage(out, type === 0 ? 1 : 0)),
      'bad-type',
    );
  }
});

test('timestamps more than 30 s away are rejected', () => {
  assert.equal(
    code(() => checkTimestamp(100, 130)),
    'no error',
  );
  assert.equal(
    code(() => checkTimestamp(100, 131)),
    'bad-timestamp',
  );
  assert.equal(
    code(() => checkTimestamp(131, 100)),
    'bad-timestamp',
  );
});
