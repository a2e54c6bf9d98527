#!/usr/bin/env node
// Regenerates the rule lists shipped in data/ (the client's presets) from their public sources:
//   - domains: v2fly/domain-list-community (MIT), a checkout's data/ folder given with --v2fly DIR;
//   - ranges of the messaging companies' own networks: @ip-location-db/asn (CC BY 4.0, RouteViews + DB-IP);
//   - China's address ranges: @ip-location-db/geo-whois-asn-country (CC0, RIR whois + ASN data);
//   - Telegram's ranges: its own published list (core.telegram.org/resources/cidr.txt), kept below.
// The two npm databases are fetched with `npm pack` (the npm registry is the one source always reachable)
// unless --ip-db DIR points at a folder holding both unpacked packages (asn/ and country/).
//
//   node scripts/build-lists.mjs --v2fly ~/src/domain-list-community/data [--ip-db DIR] [--out data]
//
// The output format is documented in docs/client.md: one entry a line, `domain:` (a name and its
// subdomains), `full:`, `keyword:`, `regexp:`, `cidr:`; `#` starts a comment.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    v2fly: { type: 'string' },
    'ip-db': { type: 'string' },
    out: { type: 'string', default: join(import.meta.dirname, '..', 'data') },
  },
});
if (!args.v2fly || !existsSync(join(args.v2fly, 'telegram'))) {
  console.error('usage: build-lists.mjs --v2fly DOMAIN-LIST-COMMUNITY/data [--ip-db DIR] [--out DIR]');
  process.exit(2);
}

// Telegram's published list (core.telegram.org/resources/cidr.txt, as read on 2026-09-11).
const TELEGRAM_CIDRS = [
  '91.105.192.0/23',
  '91.108.4.0/22',
  '91.108.8.0/22',
  '91.108.12.0/22',
  '91.108.16.0/22',
  '91.108.20.0/22',
  '91.108.56.0/22',
  '149.154.160.0/20',
  '185.76.151.0/24',
  '2001:67c:4e8::/48',
  '2001:b28:f23c::/48',
  '2001:b28:f23d::/48',
  '2001:b28:f23f::/48',
  '2a0a:f280::/32',
];

// The messaging preset: per app, its domain lists (v2fly names; `filter` keeps matching entries only)
// and the autonomous systems the company runs itself. Signal and Discord have none: they are served
// from AWS, Google Cloud and Cloudflare, whose ranges would send half the web through the tunnel.
const APPS = [
  { name: 'whatsapp', lists: ['whatsapp'], asns: [11917, 32934] },
  { name: 'telegram', lists: ['telegram'], cidrs: TELEGRAM_CIDRS },
  { name: 'signal', lists: ['signal'] },
  { name: 'line', lists: ['line'], asns: [38631] },
  { name: 'kakao', lists: ['kakao'], asns: [10158, 38099, 7625, 152199, 23588, 131828] },
  { name: 'instagram', lists: ['instagram'], asns: [32934, 63293, 54115] },
  { name: 'messenger', lists: ['messenger', 'facebook'], asns: [32934, 63293, 54115] },
  { name: 'discord', lists: ['discord'] },
  { name: 'viber', lists: ['viber'], asns: [207285] },
  { name: 'skype', lists: ['microsoft'], filter: /skype/, asns: [198097] },
];

const V2FLY_SOURCE = 'v2fly/domain-list-community (MIT licence), data/';

// ---- v2fly lists -------------------------------------------------------------------------------

/** Entries of a v2fly list with includes resolved: {type, value, attrs}. */
function readV2fly(dir, name, seen = new Set()) {
  if (seen.has(name)) return [];
  seen.add(name);
  const text = readFileSync(join(dir, name), 'utf8');
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [head, ...rest] = line.split(/\s+/);
    const attrs = rest.filter((t) => t.startsWith('@')).map((t) => t.slice(1));
    if (head.startsWith('include:')) {
      // `include:x @a` keeps x's entries tagged @a; `@-a` drops them.
      const want = attrs.filter((a) => !a.startsWith('-'));
      const drop = attrs.filter((a) => a.startsWith('-')).map((a) => a.slice(1));
      for (const e of readV2fly(dir, head.slice(8), seen)) {
        if (want.length && !want.every((a) => e.attrs.includes(a))) continue;
        if (drop.some((a) => e.attrs.includes(a))) continue;
        out.push(e);
      }
      continue;
    }
    const m = /^(domain|full|keyword|regexp):(.+)$/.exec(head);
    out.push(m ? { type: m[1], value: m[2], attrs } : { type: 'domain', value: head, attrs });
  }
  return out;
}

function domainLines(entries) {
  const seen = new Set();
  const lines = [];
  for (const e of entries) {
    const value = e.type === 'regexp' ? e.value : e.value.toLowerCase();
    const line = `${e.type}:${value}`;
    if (!seen.has(line)) {
      seen.add(line);
      lines.push(line);
    }
  }
  return lines;
}

// ---- address ranges ----------------------------------------------------------------------------

function ipToBig(ip) {
  if (ip.includes(':')) {
    let [head, tail] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
    const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return { v6: true, n: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  }
  return { v6: false, n: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
}

function bigToIp(n, v6) {
  if (!v6) return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 255n)).join('.');
  const groups = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups, as RFC 5952 says.
  let best = [-1, 0];
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best[1] && j - i > 1) best = [i, j - i];
    i = j;
  }
  if (best[0] < 0) return groups.join(':');
  return `${groups.slice(0, best[0]).join(':')}::${groups.slice(best[0] + best[1]).join(':')}`;
}

/** Inclusive ranges → the fewest CIDRs covering exactly them (after merging touching ranges). */
function rangesToCidrs(ranges, v6) {
  const bits = v6 ? 128n : 32n;
  ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const merged = [];
  for (const [s, e] of ranges) {
    const last = merged.at(-1);
    if (last && s <= last[1] + 1n) {
      if (e > last[1]) last[1] = e;
    } else merged.push([s, e]);
  }
  const out = [];
  for (let [s, e] of merged) {
    while (s <= e) {
      let size = 0n;
      while (size < bits && (s & ((1n << (size + 1n)) - 1n)) === 0n && s + (1n << (size + 1n)) - 1n <= e)
        size++;
      out.push(`${bigToIp(s, v6)}/${bits - size}`);
      s += 1n << size;
    }
  }
  return out;
}

function readCsvRanges(file, keep) {
  const ranges = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const cols = line.split(',');
    if (!keep(cols)) continue;
    ranges.push([ipToBig(cols[0]).n, ipToBig(cols[1]).n]);
  }
  return ranges;
}

function npmPackage(name, into) {
  mkdirSync(into, { recursive: true });
  const tgz = execFileSync('npm', ['pack', name, '--silent'], { cwd: into, encoding: 'utf8' }).trim();
  execFileSync('tar', ['xzf', tgz, '-C', into]);
  const version = JSON.parse(readFileSync(join(into, 'package', 'package.json'), 'utf8')).version;
  return { dir: join(into, 'package'), version };
}

function ipDatabases() {
  if (args['ip-db']) {
    const read = (sub) => ({
      dir: join(args['ip-db'], sub, 'package'),
      version: JSON.parse(readFileSync(join(args['ip-db'], sub, 'package', 'package.json'), 'utf8')).version,
    });
    return { asn: read('asn'), country: read('country') };
  }
  const tmp = mkdtempSync(join(tmpdir(), 'pigeon-lists-'));
  return {
    asn: npmPackage('@ip-location-db/asn', join(tmp, 'asn')),
    country: npmPackage('@ip-location-db/geo-whois-asn-country', join(tmp, 'country')),
  };
}

// ---- output ------------------------------------------------------------------------------------

function write(file, header, lines) {
  mkdirSync(join(file, '..'), { recursive: true });
  const head = header.map((h) => `# ${h}`.trimEnd()).join('\n');
  writeFileSync(file, `${head}\n${lines.join('\n')}\n`);
  console.log(`${file}: ${lines.length} entries`);
}

const db = ipDatabases();
const asnCsv = (v6) => join(db.asn.dir, v6 ? 'asn-ipv6.csv' : 'asn-ipv4.csv');
const countryCsv = (v6) =>
  join(db.country.dir, v6 ? 'geo-whois-asn-country-ipv6.csv' : 'geo-whois-asn-country-ipv4.csv');
const asnSource = `@ip-location-db/asn ${db.asn.version} (CC BY 4.0: RouteViews, DB-IP, NRO)`;

function cidrsOfAsns(asns) {
  const want = new Set(asns.map(String));
  const out = [];
  for (const v6 of [false, true])
    out.push(
      ...rangesToCidrs(
        readCsvRanges(asnCsv(v6), (c) => want.has(c[2])),
        v6,
      ),
    );
  return out;
}

for (const app of APPS) {
  let entries = app.lists.flatMap((l) => readV2fly(args.v2fly, l));
  if (app.filter) entries = entries.filter((e) => app.filter.test(e.value));
  const lines = domainLines(entries);
  const header = [
    `${app.name}: domains and address ranges for the messaging preset. Generated by scripts/build-lists.mjs.`,
    `Domains: ${V2FLY_SOURCE}${app.lists.join(', ')}${app.filter ? ` (entries matching ${app.filter})` : ''}.`,
  ];
  if (app.cidrs) {
    header.push('Ranges: Telegram publishes them at core.telegram.org/resources/cidr.txt (read 2026-09-11).');
    lines.push(...app.cidrs.map((c) => `cidr:${c}`));
  }
  if (app.asns) {
    header.push(`Ranges: announced by AS${app.asns.join(', AS')}, from ${asnSource}.`);
    lines.push(...cidrsOfAsns(app.asns).map((c) => `cidr:${c}`));
  }
  write(join(args.out, 'rules', 'messaging', `${app.name}.txt`), header, lines);
}

const cnDomains = domainLines(readV2fly(args.v2fly, 'cn'));
write(
  join(args.out, 'rules', 'china-domains.txt'),
  [
    'Domains served from mainland China, for the bypass-china preset. Generated by scripts/build-lists.mjs.',
    `Source: ${V2FLY_SOURCE}cn (tld-cn + geolocation-cn, includes resolved).`,
  ],
  cnDomains,
);

const cnCidrs = [];
for (const v6 of [false, true])
  cnCidrs.push(
    ...rangesToCidrs(
      readCsvRanges(countryCsv(v6), (c) => c[2] === 'CN'),
      v6,
    ),
  );
write(
  join(args.out, 'geoip', 'cn.txt'),
  [
    "Mainland China's address ranges (country CN), for GEOIP,CN rules. Generated by scripts/build-lists.mjs.",
    `Source: @ip-location-db/geo-whois-asn-country ${db.country.version} (CC0; RIR whois and ASN data).`,
    'Update: `npm run update-lists -- --v2fly DIR`, or point `geoip:` in the client config at your own file.',
  ],
  cnCidrs.map((c) => `cidr:${c}`),
);

if (!readdirSync(args.out).length) process.exit(1);
