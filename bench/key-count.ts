// New-connection cost against the number of keys on one port (issue: many keys, one port).
// For each key count, times how long the server takes to find the key of a fresh connection:
//   - SIP004 (aes-128-gcm), by trial decryption: the worst case (the key tried last) and the usual
//     case (the key last used from the same client address, tried first);
//   - SIP022 (2022-blake3-aes-128-gcm) with SIP023 identity headers: one hash lookup.
// Reports medians of repeated runs, and each row as a ratio to the 1-key row.
// Run: npm run bench:keys   (writes bench/results/key-count.md)
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KeyRing } from '../src/server/key-ring.js';
import { StreamWriter, streamKey } from '../src/crypto/ss-stream.js';
import { methodSpec, type MethodName } from '../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../src/wire/socks-address.js';
import type { ServerKey } from '../src/server/users.js';

const COUNTS = (process.env.BENCH_KEY_COUNTS ?? '1,100,1000,10000').split(',').map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const target = makeAddress('example.com', 443);

function secret(m: MethodName): string {
  const spec = methodSpec(m);
  return spec.edition === '2022'
    ? randomBytes(spec.keySize).toString('base64')
    : randomBytes(12).toString('base64url');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Microseconds per identification, median over rounds. */
function measure(ring: KeyRing, firstPackets: Buffer[], clientIp: (i: number) => string): number {
  const per: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < firstPackets.length; i++) {
      const m = ring.matchTcp(firstPackets[i]!, clientIp(i));
      if (m.kind !== 'match') throw new Error('benchmark key not found');
    }
    per.push(Number(process.hrtime.bigint() - t0) / 1000 / firstPackets.length);
  }
  return median(per);
}

function scenario(m: MethodName, n: number) {
  const ipsk = methodSpec(m).edition === '2022' ? secret(m) : undefined;
  const keys: ServerKey[] = Array.from({ length: n }, (_, i) => ({
    id: String(i + 1),
    method: m,
    secret: secret(m),
    port: 1,
  }));
  const ring = new KeyRing(keys, () => ipsk);
  const last = keys[n - 1]!;
  const password = ipsk ? `${ipsk}:${last.secret}` : last.secret;
  const key = streamKey(methodSpec(m), password);
  const samples = Math.max(5, Math.min(200, Math.floor(20_000 / n)));
  const packets = Array.from({ length: samples }, () =>
    new StreamWriter(key, { kind: 'request', target }).write(Buffer.from('GET / HTTP/1.1\r\n\r\n')),
  );
  return { ring, packets };
}

const rows: string[] = [];
const base: Record<string, number> = {};
for (const n of COUNTS) {
  const aead = scenario('aes-128-gcm', n);
  let fresh = 0;
  const worst = measure(aead.ring, aead.packets, () => `client-${fresh++}`); // never seen before: full trial
  aead.ring.remember('203.0.113.9', String(n));
  const mru = measure(aead.ring, aead.packets, () => '203.0.113.9');
  const eih = scenario('2022-blake3-aes-128-gcm', n);
  const s2022 = measure(eih.ring, eih.packets, () => '203.0.113.9');
  base.worst ??= worst;
  base.mru ??= mru;
  base.s2022 ??= s2022;
  const r = (v: number, b: number) => `${v.toFixed(1)} µs (${(v / b).toFixed(2)}×)`;
  rows.push(`| ${n} | ${r(worst, base.worst)} | ${r(mru, base.mru)} | ${r(s2022, base.s2022)} |`);
  process.stdout.write(`${rows[rows.length - 1]}\n`);
}

const table = [
  '# New-connection cost by number of keys on one port',
  '',
  `Median of ${ROUNDS} rounds; time for the server to find the key of one new TCP connection from its first packet.`,
  'Ratios are to the 1-key row of the same column. Machine: 2 cores, noisy; compare ratios, not absolute times.',
  '',
  '| keys | SIP004, key tried last | SIP004, client seen before (MRU) | SIP022 with identity header |',
  '|---:|---:|---:|---:|',
  ...rows,
  '',
  `Command: \`npm run bench:keys\` (BENCH_KEY_COUNTS=${COUNTS.join(',')} BENCH_ROUNDS=${ROUNDS}), ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.`,
  '',
].join('\n');
if (!process.env.BENCH_NO_WRITE) {
  mkdirSync(join(import.meta.dirname, 'results'), { recursive: true });
  writeFileSync(join(import.meta.dirname, 'results', 'key-count.md'), table);
}
