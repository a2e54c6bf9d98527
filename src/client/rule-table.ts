// Rule matching: compiled domain and address sets, and the ordered rule table that picks a target for
// each connection or datagram. First match wins; a table always ends in a MATCH rule.
import type { HostKind } from '../wire/socks-address.js';
import { ipToInteger, type Cidr, type ListEntry, type Rule, type Target } from '../wire/rules.js';

/** Names: exact, suffix (the name and its subdomains), keyword and regular expression entries. */
export class DomainSet {
  private readonly full = new Set<string>();
  private readonly suffix = new Set<string>();
  private readonly keywords: string[] = [];
  private readonly regexes: RegExp[] = [];

  get size(): number {
    return this.full.size + this.suffix.size + this.keywords.length + this.regexes.length;
  }

  addFull(name: string): void {
    this.full.add(name);
  }

  addSuffix(name: string): void {
    this.suffix.add(name);
  }

  addKeyword(k: string): void {
    this.keywords.push(k);
  }

  addRegex(r: RegExp): void {
    this.regexes.push(r);
  }

  /** `name` is lower-case without a trailing dot. */
  has(name: string): boolean {
    if (this.full.has(name)) return true;
    if (this.suffix.size) {
      // The name itself, then each parent at a dot: a.example.com, example.com, com (at most 128 labels).
      let from = 0;
      for (let labels = 0; labels < 128; labels++) {
        if (this.suffix.has(from ? name.slice(from) : name)) return true;
        const dot = name.indexOf('.', from);
        if (dot < 0) break;
        from = dot + 1;
      }
    }
    for (const k of this.keywords) if (name.includes(k)) return true;
    for (const r of this.regexes) if (r.test(name)) return true;
    return false;
  }
}

/** Address ranges, merged and sorted once, looked up by binary search (IPv4 and IPv6 apart). */
export class IpRangeSet {
  private pending: Cidr[] = [];
  private v4: { first: number[]; last: number[] } = { first: [], last: [] };
  private v6: { first: bigint[]; last: bigint[] } = { first: [], last: [] };

  get size(): number {
    return this.v4.first.length + this.v6.first.length + this.pending.length;
  }

  add(c: Cidr): void {
    this.pending.push(c);
  }

  private compile(): void {
    if (!this.pending.length) return;
    const all = [
      ...this.v4.first.map((f, i) => ({ v6: false, first: BigInt(f), last: BigInt(this.v4.last[i]!) })),
      ...this.v6.first.map((f, i) => ({ v6: true, first: f, last: this.v6.last[i]! })),
      ...this.pending,
    ];
    this.pending = [];
    for (const v6 of [false, true]) {
      const ranges = all
        .filter((r) => r.v6 === v6)
        .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
      const first: bigint[] = [];
      const last: bigint[] = [];
      for (const r of ranges) {
        const n = last.length;
        if (n && r.first <= last[n - 1]! + 1n) {
          if (r.last > last[n - 1]!) last[n - 1] = r.last;
        } else {
          first.push(r.first);
          last.push(r.last);
        }
      }
      if (v6) this.v6 = { first, last };
      else this.v4 = { first: first.map(Number), last: last.map(Number) };
    }
  }

  has(ip: string): boolean {
    this.compile();
    const a = ipToInteger(ip);
    if (!a) return false;
    // IPv4-mapped IPv6 (::ffff:a.b.c.d) is the IPv4 address.
    if (a.v6 && a.n >> 32n === 0xffffn) return search(this.v4.first, this.v4.last, Number(a.n & 0xffffffffn));
    return a.v6 ? search(this.v6.first, this.v6.last, a.n) : search(this.v4.first, this.v4.last, Number(a.n));
  }
}

function search<T extends number | bigint>(first: T[], last: T[], x: T): boolean {
  let lo = 0;
  let hi = first.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (x < first[mid]!) hi = mid - 1;
    else if (x > last[mid]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/** A named rule list (RULE-SET): its names and its ranges. */
export class RuleList {
  readonly domains = new DomainSet();
  readonly ips = new IpRangeSet();

  constructor(entries: Iterable<ListEntry> = []) {
    for (const e of entries) this.add(e);
  }

  add(e: ListEntry): void {
    switch (e.type) {
      case 'domain':
        return this.domains.addSuffix(e.value);
      case 'full':
        return this.domains.addFull(e.value);
      case 'keyword':
        return this.domains.addKeyword(e.value);
      case 'regexp':
        return this.domains.addRegex(e.value);
      case 'cidr':
        return this.ips.add(e.value);
    }
  }

  get size(): number {
    return this.domains.size + this.ips.size;
  }
}

export interface RouteQuery {
  /** The destination as the app gave it: a name or an IP literal. */
  host: string;
  kind: HostKind;
  port: number;
  network: 'tcp' | 'udp';
  inbound: string;
  /** For an IP destination: the name the local DNS answered it for, if any (so name rules still apply). */
  domain?: string;
}

export interface RouteDecision {
  target: Target;
  /** The rule that matched, as written (or "MATCH" for the default). */
  rule: string;
}

export interface RuleTableSources {
  /** A RULE-SET by name; undefined when there is none (the table refuses to build). */
  list(name: string): RuleList | undefined;
  /** A country's ranges for GEOIP; undefined when none are available. */
  country(code: string): IpRangeSet | undefined;
}

type Compiled = (q: RouteQuery, name: string | undefined) => boolean;

/** The ordered rules, compiled. Throws an Error naming the rule when a list or country is missing. */
export class RuleTable {
  private readonly compiled: { test: Compiled; rule: Rule }[] = [];
  private readonly fallback: RouteDecision;

  constructor(rules: readonly Rule[], sources: RuleTableSources, defaultTarget: Target = { kind: 'direct' }) {
    let fallback: RouteDecision | undefined;
    for (const rule of rules) {
      if (rule.matcher.type === 'match') {
        fallback = { target: rule.target, rule: rule.text };
        break; // rules after MATCH can never apply
      }
      this.compiled.push({ test: compile(rule, sources), rule });
    }
    this.fallback = fallback ?? { target: defaultTarget, rule: 'MATCH (default)' };
  }

  get rules(): readonly Rule[] {
    return this.compiled.map((c) => c.rule);
  }

  decide(q: RouteQuery): RouteDecision {
    const name = q.kind === 'domain' ? q.host.toLowerCase().replace(/\.$/, '') : q.domain;
    for (const c of this.compiled) if (c.test(q, name)) return { target: c.rule.target, rule: c.rule.text };
    return this.fallback;
  }
}

function compile(rule: Rule, sources: RuleTableSources): Compiled {
  const m = rule.matcher;
  switch (m.type) {
    case 'domain':
      return (_q, name) => name === m.value;
    case 'domain-suffix': {
      const dotted = `.${m.value}`;
      return (_q, name) => name !== undefined && (name === m.value || name.endsWith(dotted));
    }
    case 'domain-keyword':
      return (_q, name) => name !== undefined && name.includes(m.value);
    case 'domain-regex':
      return (_q, name) => name !== undefined && m.value.test(name);
    case 'ip-cidr': {
      const set = new IpRangeSet();
      set.add(m.value);
      return (q) => q.kind !== 'domain' && set.has(q.host);
    }
    case 'geoip': {
      const set = sources.country(m.value);
      if (!set) throw new Error(`${rule.text}: no address ranges for country "${m.value.toUpperCase()}"`);
      return (q) => q.kind !== 'domain' && set.has(q.host);
    }
    case 'dst-port':
      return (q) => m.value.some((r) => q.port >= r.from && q.port <= r.to);
    case 'network':
      return (q) => q.network === m.value;
    case 'inbound':
      return (q) => q.inbound === m.value;
    case 'rule-set': {
      const list = sources.list(m.value);
      if (!list) throw new Error(`${rule.text}: no rule list named "${m.value}"`);
      return (q, name) =>
        (name !== undefined && list.domains.has(name)) || (q.kind !== 'domain' && list.ips.has(q.host));
    }
    case 'match':
      return () => true;
  }
}
