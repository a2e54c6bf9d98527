// Mux.Cool frames (src/wire/mux-cool.ts) against bytes captured from Debian's ss-v2ray-plugin 1.3.1,
// every split of the input, every malformed metadata field; the mux/plain sniffer; SIP003 options.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeMuxFrame, MuxFrameParser, sniffMuxCool, type MuxFrame } from '../../src/wire/mux-cool.js';
import { escapeSip003, parseSip003Options, parseV2rayPluginOptions } from '../../src/wire/sip003.js';
import { WireError } from '../../src/wire/errors.js';

// ss-local → ss-v2ray-plugin (client, default options) writing "hello world", then "second", then
// closing: three WebSocket messages, as seen by a WebSocket server.
const CAPTURED = [
  '000c00010101010000017f000001000b68656c6c6f20776f726c64',
  '00040001020100067365636f6e64',
  '000400010300',
].map((h) => Buffer.from(h, 'hex'));

const EXPECTED: MuxFrame[] = [
  {
    session: 1,
    status: 'new',
    target: { network: 'tcp', address: { kind: 'ipv4', host: '127.0.0.1', port: 0 } },
    data: Buffer.from('hello world'),
  },
  { session: 1, status: 'keep', data: Buffer.from('second') },
  { session: 1, status: 'end' },
];

test('parses what v2ray-plugin sends, and encodes the same bytes', () => {
  const p = new MuxFrameParser();
  assert.deepEqual(
    CAPTURED.flatMap((m) => p.push(m)),
    EXPECTED,
  );
  assert.equal(p.atBoundary, true);
  assert.deepEqual(EXPECTED.map(encodeMuxFrame), CAPTURED);
});

test('the same frames split at every byte give the same result', () => {
  const all = Buffer.concat(CAPTURED);
  for (let cut = 1; cut < all.length; cut++) {
    const p = new MuxFrameParser();
    const got = [...p.push(all.subarray(0, cut)), ...p.push(all.subarray(cut))];
    assert.deepEqual(got, EXPECTED, `cut at ${cut}`);
  }
  const p = new MuxFrameParser();
  const got: MuxFrame[] = [];
  for (const b of all) got.push(...p.push(Buffer.from([b])));
  assert.deepEqual(got, EXPECTED);
});

test('round trip: every status, address kind, error option, empty and largest data', () => {
  const frames: MuxFrame[] = [
    {
      session: 7,
      status: 'new',
      target: { network: 'udp', address: { kind: 'ipv6', host: '2001:db8::1', port: 53 } },
    },
    {
      session: 65535,
      status: 'new',
      target: { network: 'tcp', address: { kind: 'domain', host: 'example.com', port: 443 } },
      data: Buffer.alloc(0),
    },
    { session: 2, status: 'keep', data: randomBytes(0xffff) },
    { session: 2, status: 'end', error: true },
    { session: 0, status: 'keep-alive' },
  ];
  const p = new MuxFrameParser();
  assert.deepEqual(p.push(Buffer.concat(frames.map(encodeMuxFrame))), frames);
  assert.throws(() => encodeMuxFrame({ session: 1, status: 'keep', data: Buffer.alloc(0x10000) }), WireError);
  assert.throws(() => encodeMuxFrame({ session: 1, status: 'new' }), WireError);
});

test('malformed frames are WireErrors', () => {
  const cases: Array<[string, string]> = [
    ['0201', 'metadata length 513'],
    ['0003000101', 'metadata length 3'],
    ['0004000109', 'unknown status'],
    ['0006000101000300', 'new frame without a target'],
    ['000c000101000300007f000001', 'unknown network'],
    ['000c000101000100000900000100', 'bad target address'],
    ['000800010100010000037f', 'bad target address'], // IPv6 cut short
    ['000900010100010000020000', 'bad target address'], // empty domain
  ];
  for (const [hex, what] of cases) {
    const p = new MuxFrameParser();
    assert.throws(
      () => p.push(Buffer.concat([Buffer.from(hex, 'hex'), Buffer.alloc(32)])),
      (e: unknown) => e instanceof WireError && e.code === 'bad-mux',
      what,
    );
  }
});

test('sniffing: v2ray-plugin frames are mux; random Shadowsocks salts are not', () => {
  assert.equal(sniffMuxCool(CAPTURED[0]!), 'mux');
  assert.equal(sniffMuxCool(CAPTURED[0]!.subarray(0, 9)), 'need-more');
  let mux = 0;
  for (let i = 0; i < 200_000; i++) if (sniffMuxCool(randomBytes(32)) === 'mux') mux++;
  assert.equal(mux, 0);
  // An Outline-style printable prefix is not mux either.
  assert.equal(sniffMuxCool(Buffer.from('POST /upload HTTP/1.1')), 'plain');
});

test('SIP003 options: flags, escapes, first value wins, errors', () => {
  const o = parseSip003Options('tls;host=a\\;b\\=c;path=/x\\\\y;host=ignored;mux=0');
  assert.deepEqual(Object.fromEntries(o), { tls: '1', host: 'a;b=c', path: '/x\\y', mux: '0' });
  assert.equal(parseSip003Options('').size, 0);
  assert.throws(() => parseSip003Options('=x'), WireError);
  assert.throws(() => parseSip003Options('a;;b'), WireError);
  assert.throws(() => parseSip003Options('host=x\\'), WireError);
  assert.equal(escapeSip003('a;b=c\\d'), 'a\\;b\\=c\\\\d');
  assert.deepEqual(Object.fromEntries(parseSip003Options(`path=${escapeSip003('/a;b')}`)), { path: '/a;b' });
});

test('v2ray-plugin client options: its defaults, mux off only with mux=0, server/quic refused', () => {
  assert.deepEqual(parseV2rayPluginOptions(''), { tls: false, host: 'cloudfront.com', path: '/', mux: true });
  const o = parseV2rayPluginOptions('tls;host=cdn.example.org;path=/ws;mux=0;cert=/etc/ca.pem');
  assert.deepEqual(o, {
    tls: true,
    host: 'cdn.example.org',
    path: '/ws',
    mux: false,
    certFile: '/etc/ca.pem',
  });
  assert.equal(parseV2rayPluginOptions('mux=8').mux, true);
  assert.equal(parseV2rayPluginOptions('mux=x').mux, true); // unparsable: the default, as v2ray-plugin
  assert.match(parseV2rayPluginOptions('certRaw=QUJD').certPem ?? '', /^-----BEGIN CERTIFICATE-----\nQUJD\n/);
  assert.throws(() => parseV2rayPluginOptions('server;tls'), /server side/);
  assert.throws(() => parseV2rayPluginOptions('mode=quic'), /not supported/);
  assert.throws(() => parseV2rayPluginOptions('path=ws'), /must start with/);
});
