// The client's routing rules and rule lists, as text. Pure parsing: no files, no matching.
//
// A rule is one line in Clash's widely known form, TYPE,VALUE,TARGET[,no-resolve]:
//   DOMAIN,web.telegram.org,proxy        DOMAIN-SUFFIX,telegram.org,proxy
//   DOMAIN-KEYWORD,whatsapp,proxy        DOMAIN-REGEX,^(.+\.)?signal\.org$,proxy
//   IP-CIDR,91.108.4.0/22,proxy          IP-CIDR6,2001:67c:4e8::/48,proxy
//   GEOIP,CN,direct                      DST-PORT,443/8000-9000,proxy
//   NETWORK,udp,proxy                    INBOUND,mixed,direct
//   RULE-SET,telegram,proxy              MATCH,direct
// TARGET is DIRECT, REJECT or the name of a server group (case-insensitive for DIRECT and REJECT).
//
// A rule list (for RULE-SET) is one entry a line, in v2fly/domain-list-community's form plus CIDRs:
//   example.com | domain:example.com   the name and its subdomains
//   full:example.com                   the name only
//   keyword:example                    names containing it
//   regexp:^ex.*\.com$                 names matching it
//   cidr:91.108.4.0/22 | 91.108.4.0/22 addresses in the range (IPv4 or IPv6)
// `#` starts a comment; `@attr` tags after an entry are ignored. docs/client.md documents both forms.
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import { ipv6ToBytes } from './socks-address.js';

export interface Cidr {
  readonly v6: boolean;
  /** First and last address as integers (IPv4 in the low 32 bits). */
  readonly first: bigint;
  readonly last: bigint;
  readonly text: string;
}

export interface PortRange {
  readonly from: number;
  readonly to: number;
}

export type Matcher =
  | { readonly type: 'domain' | 'domain-suffix' | 'domain-keyword'; readonly value: string }
  | { readonly type: 'domain-regex'; readonly value: RegExp }
  | { readonly type: 'ip-cidr'; readonly value: Cidr }
  | { readonly type: 'geoip'; readonly value: string }
  | { readonly type: 'dst-port'; readonly value: readonly PortRange[] }
  | { readonly type: 'network'; readonly value: 'tcp' | 'udp' }
  | { readonly type: 'inbound'; readonly value: string }
  | { readonly type: 'rule-set'; readonly value: string }
  | { readonly type: 'match' };

export type Target =
  | { readonly kind: 'direct' }
  | { readonly kind: 'reject' }
  | { readonly kind: 'group'; readonly name: string };

export interface Rule {
  readonly matcher: Matcher;
  readonly target: Target;
  /** The rule as written, for logs and the connection list. */
  readonly text: string;
}

export type ListEntry =
  | { readonly type: 'domain' | 'full' | 'keyword'; readonly value: string }
  | { readonly type: 'regexp'; readonly value: RegExp }
  | { readonly type: 'cidr'; readonly value: Cidr };

const DOMAIN_RE =
  /^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const NAME_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function ipToBigint(ip: string): { v6: boolean; n: bigint } | undefined {
  if (isIPv4(ip))
    return { v6: false, n: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (isIPv6(ip)) return { v6: true, n: BigInt(`0x${ipv6ToBytes(ip).toString('hex')}`) };
  return undefined;
}

/** An address as the integer the CIDR bounds use; undefined for anything that is not an IP literal. */
export function ipToInteger(ip: string): { v6: boolean; n: bigint } | undefined {
  return ipToBigint(ip);
}

/** "a.b.c.d/n" or "v6/n"; a bare address is a /32 or /128. Host bits must be zero. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const ip = ipToBigint(addr);
  if (!ip) throw new WireError('bad-cidr', `"${text}" is not an IP range (expected e.g. 91.108.4.0/22)`);
  const bits = ip.v6 ? 128 : 32;
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new WireError('bad-cidr', `"${text}": the prefix length must be 0..${bits}`);
    }
    prefix = Number(p);
  }
  const hostBits = BigInt(bits - prefix);
  const mask = (1n << hostBits) - 1n;
  if ((ip.n & mask) !== 0n) {
    throw new WireError('bad-cidr', `"${text}": address has bits set after the /${prefix} prefix`);
  }
  return { v6: ip.v6, first: ip.n, last: ip.n | mask, text };
}

/** Lower-cases and checks a domain name (a trailing dot is dropped). */
export function normalizeDomain(text: string): string {
  const d = text.toLowerCase().replace(/\.$/, '');
  if (!DOMAIN_RE.test(d)) throw new WireError('bad-domain', `"${text}" is not a domain name`);
  return d;
}

function compileRegex(text: string): RegExp {
  if (text.length > 512) throw new WireError('bad-regex', 'regular expression longer than 512 characters');
  try {
    return new RegExp(text, 'i');
  } catch (e) {
    throw new WireError('bad-regex', `"${text}" is not a valid regular expression: ${(e as Error).message}`);
  }
}

function parsePorts(text: string): PortRange[] {
  const out: PortRange[] = [];
  for (const part of text.split('/')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    const from = m ? Number(m[1]) : NaN;
    const to = m?.[2] !== undefined ? Number(m[2]) : from;
    if (!m || from < 1 || to > 65535 || from > to) {
      throw new WireError('bad-port', `"${part}" is not a port or port range (e.g. 443 or 8000-9000)`);
    }
    out.push({ from, to });
  }
  return out;
}

export function parseTarget(text: string): Target {
  const t = text.trim();
  const upper = t.toUpperCase();
  if (upper === 'DIRECT') return { kind: 'direct' };
  if (upper === 'REJECT') return { kind: 'reject' };
  if (!NAME_RE.test(t)) throw new WireError('bad-target', `"${t}" is not DIRECT, REJECT or a group name`);
  return { kind: 'group', name: t };
}

const RULE_TYPES = [
  'DOMAIN',
  'DOMAIN-SUFFIX',
  'DOMAIN-KEYWORD',
  'DOMAIN-REGEX',
  'IP-CIDR',
  'IP-CIDR6',
  'GEOIP',
  'DST-PORT',
  'NETWORK',
  'INBOUND',
  'RULE-SET',
  'MATCH',
] as const;

/** One rule line. Throws WireError naming what is wrong. */
export function parseRule(line: string): Rule {
  const text = line.trim();
  const parts = text.split(',').map((p) => p.trim());
  const type = parts[0]!.toUpperCase();
  if (!(RULE_TYPES as readonly string[]).includes(type)) {
    throw new WireError(
      'bad-rule',
      `unknown rule type "${parts[0]}" (expected one of ${RULE_TYPES.join(', ')})`,
    );
  }
  if (type === 'MATCH') {
    if (parts.length !== 2) throw new WireError('bad-rule', 'MATCH takes one target: MATCH,TARGET');
    return { matcher: { type: 'match' }, target: parseTarget(parts[1]!), text };
  }
  // Regular expressions may contain commas: the target is the last field (or the one before no-resolve).
  let options: string[] = [];
  if (parts.length > 3 && parts.at(-1)!.toLowerCase() === 'no-resolve') options = ['no-resolve'];
  const fieldCount = parts.length - options.length;
  if (fieldCount < 3 || (fieldCount > 3 && type !== 'DOMAIN-REGEX')) {
    throw new WireError('bad-rule', `expected ${type},VALUE,TARGET — got ${parts.length} fields`);
  }
  const value = parts.slice(1, fieldCount - 1).join(',');
  const target = parseTarget(parts[fieldCount - 1]!);
  if (!value) throw new WireError('bad-rule', `${type} needs a value`);
  let matcher: Matcher;
  switch (type) {
    case 'DOMAIN':
      matcher = { type: 'domain', value: normalizeDomain(value) };
      break;
    case 'DOMAIN-SUFFIX':
      matcher = { type: 'domain-suffix', value: normalizeDomain(value.replace(/^\./, '')) };
      break;
    case 'DOMAIN-KEYWORD':
      matcher = { type: 'domain-keyword', value: value.toLowerCase() };
      break;
    case 'DOMAIN-REGEX':
      matcher = { type: 'domain-regex', value: compileRegex(value) };
      break;
    case 'IP-CIDR':
    case 'IP-CIDR6':
      matcher = { type: 'ip-cidr', value: parseCidr(value) };
      break;
    case 'GEOIP':
      if (!/^[A-Za-z]{2}$/.test(value))
        throw new WireError('bad-rule', `"${value}" is not a two-letter country code`);
      matcher = { type: 'geoip', value: value.toLowerCase() };
      break;
    case 'DST-PORT':
      matcher = { type: 'dst-port', value: parsePorts(value) };
      break;
    case 'NETWORK': {
      const n = value.toLowerCase();
      if (n !== 'tcp' && n !== 'udp')
        throw new WireError('bad-rule', `NETWORK is tcp or udp, not "${value}"`);
      matcher = { type: 'network', value: n };
      break;
    }
    case 'INBOUND':
      if (!NAME_RE.test(value)) throw new WireError('bad-rule', `"${value}" is not an inbound name`);
      matcher = { type: 'inbound', value };
      break;
    default: // RULE-SET
      if (!/^[\w./~-]{1,255}$/.test(value))
        throw new WireError('bad-rule', `"${value}" is not a rule-set name`);
      matcher = { type: 'rule-set', value };
  }
  return { matcher, target, text };
}

export interface LineError {
  /** 1-based line number in the text. */
  readonly line: number;
  readonly message: string;
}

/** A rule list's entries, and every bad line with its number (the caller decides whether to fail). */
export function parseRuleList(text: string): { entries: ListEntry[]; errors: LineError[] } {
  const entries: ListEntry[] = [];
  const errors: LineError[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const head = line.split(/\s+/)[0]!;
    try {
      entries.push(parseListEntry(head));
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      errors.push({ line: i + 1, message: e.message });
    }
  }
  return { entries, errors };
}

function parseListEntry(head: string): ListEntry {
  const colon = head.indexOf(':');
  const prefix = colon > 0 ? head.slice(0, colon).toLowerCase() : '';
  const rest = head.slice(colon + 1);
  switch (prefix) {
    case 'domain':
    case 'full':
      return { type: prefix, value: normalizeDomain(rest) };
    case 'keyword':
      if (!rest) throw new WireError('bad-entry', 'keyword: needs a value');
      return { type: 'keyword', value: rest.toLowerCase() };
    case 'regexp':
      return { type: 'regexp', value: compileRegex(rest) };
    case 'cidr':
      return { type: 'cidr', value: parseCidr(rest) };
    default:
      if (head.includes('/') || isIPv4(head) || isIPv6(head)) return { type: 'cidr', value: parseCidr(head) };
      if (colon > 0 && !isIPv6(head)) {
        throw new WireError(
          'bad-entry',
          `unknown entry type "${prefix}:" (domain, full, keyword, regexp, cidr)`,
        );
      }
      return { type: 'domain', value: normalizeDomain(head) };
  }
}
