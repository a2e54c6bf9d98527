// `pigeon client`'s configuration: a YAML file (--config) and the stable flags (--server, --preset,
// --rules, --dns), merged into one validated plan. Every mistake is reported as FILE:LINE: what is wrong,
// all of them at once, so a person fixes a config in one pass.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import { WireError } from '../wire/errors.js';
import { parseHostPort, type Address } from '../wire/socks-address.js';
import { parseServerUri, serverName, type ServerUri } from '../client/server-uri.js';
import { parseRule, type Rule } from '../wire/rules.js';
import { PRESETS, presetRules, type Preset } from '../client/presets.js';
import type { GroupConfig } from '../client/index.js';
import type { GroupKind } from '../client/server-group.js';

export type GroupPlan = GroupConfig;

export interface ClientPlan {
  listen: Address;
  auth?: { username: string; password: string };
  forwards: { listen: Address; target: Address }[];
  groups: GroupPlan[];
  preset: Preset;
  /** The user's rules, then the preset's. */
  rules: Rule[];
  /** RULE-SET names defined by the user → list file paths (absolute). */
  ruleSets: Record<string, string>;
  /** Country code (lower-case) → list file of its ranges, overriding the shipped ones. */
  geoip: Record<string, string>;
  dns: { listen?: Address; doh: string; ca?: string; direct?: Address[] };
  control: { listen: Address; token?: string };
  /** Full-VPN mode (--tun): which destinations the system routes into the TUN. */
  tun?: { routes: 'all' | 'preset' };
}

export interface ClientFlags {
  config?: string;
  server?: ServerUri[];
  preset?: string;
  rules?: string;
  dns?: Address;
  listen?: Address;
  auth?: { username: string; password: string };
  forward?: { listen: Address; target: Address }[];
  control?: Address;
  tun?: { routes: 'all' | 'preset' };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

export const DEFAULT_GROUP = 'proxy';
export const DEFAULT_CHECK_URL = 'http://cp.cloudflare.com/generate_204';
export const DEFAULT_DOH = 'https://1.1.1.1/dns-query';

/** "30s", "5m", "1h", "500ms", or a number of seconds. */
export function parseDuration(v: unknown): number | undefined {
  if (typeof v === 'number' && v > 0 && Number.isFinite(v)) return v * 1000;
  if (typeof v !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return undefined;
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(m[1]) * mult;
  return ms > 0 ? ms : undefined;
}

type Path = (string | number)[];

/** Reads a YAML config and reports where each problem is. */
class YamlSource {
  readonly lines = new LineCounter();
  readonly doc: Document;
  readonly problems: string[] = [];

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    for (const e of this.doc.errors) {
      const line = e.linePos?.[0].line ?? this.lines.linePos(e.pos[0]).line;
      this.problems.push(`${file}:${line}: ${e.message.split('\n')[0]}`);
    }
  }

  lineOf(path: Path): number {
    for (let p = path; p.length >= 0; p = p.slice(0, -1)) {
      const node = p.length ? this.doc.getIn(p, true) : this.doc.contents;
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) return this.lines.linePos(range[0]).line;
      // A scalar key's pair: look up the key node in its parent map.
      if (p.length === 0) break;
      const parent = p.length > 1 ? this.doc.getIn(p.slice(0, -1), true) : this.doc.contents;
      if (isMap(parent)) {
        const pair = parent.items.find((it) => (it.key as { value?: unknown } | null)?.value === p.at(-1));
        const krange = (pair?.key as { range?: [number, number, number] } | null)?.range;
        if (krange) return this.lines.linePos(krange[0]).line;
      }
    }
    return 1;
  }

  problem(path: Path, message: string): void {
    this.problems.push(
      `${this.file}:${this.lineOf(path)}: ${path.length ? `${path.join('.')}: ` : ''}${message}`,
    );
  }

  get(path: Path): unknown {
    const v = this.doc.getIn(path, false);
    return v;
  }

  isSeq(path: Path): boolean {
    return isSeq(this.doc.getIn(path, true));
  }
}

const TOP_KEYS = [
  'listen',
  'auth',
  'preset',
  'rules',
  'rule-sets',
  'geoip',
  'groups',
  'dns',
  'control',
  'forwards',
];
const GROUP_KEYS = ['name', 'type', 'servers', 'subscriptions', 'check'];
const DNS_KEYS = ['listen', 'doh', 'ca', 'direct'];
const CHECK_KEYS = ['url', 'interval', 'timeout'];
const SUB_KEYS = ['url', 'interval'];
const CONTROL_KEYS = ['listen', 'token'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(src: YamlSource, path: Path, v: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k))
      src.problem([...path, k], `unknown setting (expected one of: ${allowed.join(', ')})`);
  }
}

function addr(src: YamlSource, path: Path, v: unknown): Address | undefined {
  if (typeof v !== 'string') {
    src.problem(path, 'expected HOST:PORT');
    return undefined;
  }
  try {
    return parseHostPort(v);
  } catch (e) {
    src.problem(path, (e as Error).message);
    return undefined;
  }
}

function str(src: YamlSource, path: Path, v: unknown, what: string): string | undefined {
  if (typeof v === 'string' && v.length > 0) return v;
  src.problem(path, `expected ${what}`);
  return undefined;
}

function httpUrl(src: YamlSource, path: Path, v: unknown, schemes = ['http:', 'https:']): string | undefined {
  const s = str(src, path, v, 'a URL');
  if (s === undefined) return undefined;
  try {
    const u = new URL(s);
    if (!schemes.includes(u.protocol)) throw new Error();
    return s;
  } catch {
    src.problem(path, `"${s}" is not a ${schemes.map((x) => x.slice(0, -1)).join(' or ')} URL`);
    return undefined;
  }
}

function duration(src: YamlSource, path: Path, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  const ms = parseDuration(v);
  if (ms === undefined) src.problem(path, `"${String(v)}" is not a duration (e.g. 30s, 5m, 1h)`);
  return ms ?? dflt;
}

function credentialsOf(src: YamlSource, v: unknown): { username: string; password: string } | undefined {
  const s = str(src, ['auth'], v, 'USER:PASSWORD');
  if (!s) return undefined;
  const i = s.indexOf(':');
  if (i <= 0) {
    src.problem(['auth'], 'expected USER:PASSWORD');
    return undefined;
  }
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

function groupOf(src: YamlSource, i: number, g: unknown): GroupPlan | undefined {
  const path: Path = ['groups', i];
  if (!isPlainObject(g)) {
    src.problem(path, 'a group is a mapping with name, type, servers and/or subscriptions');
    return undefined;
  }
  checkKeys(src, path, g, GROUP_KEYS);
  const name = str(src, [...path, 'name'], g.name, 'a group name');
  if (name !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) {
    src.problem([...path, 'name'], `"${name}": names are letters, digits, _ . - (at most 64)`);
  }
  if (name && ['direct', 'reject'].includes(name.toLowerCase())) {
    src.problem([...path, 'name'], `"${name}" is reserved for the built-in targets`);
  }
  const kind = (g.type ?? 'fallback') as GroupKind;
  if (!['fallback', 'url-test', 'select'].includes(kind)) {
    src.problem([...path, 'type'], `"${String(g.type)}" is not a group type (fallback, url-test, select)`);
  }
  const servers: GroupPlan['servers'] = [];
  if (g.servers !== undefined && !Array.isArray(g.servers))
    src.problem([...path, 'servers'], 'expected a list of ss:// or trojan:// URIs');
  (Array.isArray(g.servers) ? g.servers : []).forEach((s: unknown, j) => {
    const p = [...path, 'servers', j];
    const text = str(src, p, s, 'an ss:// or trojan:// URI');
    if (!text) return;
    try {
      const uri = parseServerUri(text);
      servers.push({ uri, name: serverName(uri) });
    } catch (e) {
      src.problem(p, (e as Error).message);
    }
  });
  const subscriptions: GroupPlan['subscriptions'] = [];
  if (g.subscriptions !== undefined && !Array.isArray(g.subscriptions)) {
    src.problem([...path, 'subscriptions'], 'expected a list of URLs or {url, interval}');
  }
  (Array.isArray(g.subscriptions) ? g.subscriptions : []).forEach((s: unknown, j) => {
    const p = [...path, 'subscriptions', j];
    const spec = typeof s === 'string' ? { url: s } : s;
    if (!isPlainObject(spec)) return src.problem(p, 'expected a URL or {url, interval}');
    checkKeys(src, p, spec, SUB_KEYS);
    const url = httpUrl(src, typeof s === 'string' ? p : [...p, 'url'], spec.url, [
      'http:',
      'https:',
      'ssconf:',
    ]);
    const intervalMs = duration(src, [...p, 'interval'], spec.interval, 3_600_000);
    if (url) subscriptions.push({ url, intervalMs });
  });
  if (!servers.length && !subscriptions.length && Array.isArray(g.servers) === false && !g.subscriptions) {
    src.problem(path, 'a group needs servers or subscriptions');
  }
  const check = { url: DEFAULT_CHECK_URL, intervalMs: 30_000, timeoutMs: 5_000 };
  if (g.check !== undefined) {
    if (!isPlainObject(g.check)) src.problem([...path, 'check'], 'expected {url, interval, timeout}');
    else {
      checkKeys(src, [...path, 'check'], g.check, CHECK_KEYS);
      if (g.check.url !== undefined)
        check.url = httpUrl(src, [...path, 'check', 'url'], g.check.url) ?? check.url;
      check.intervalMs = duration(src, [...path, 'check', 'interval'], g.check.interval, check.intervalMs);
      check.timeoutMs = duration(src, [...path, 'check', 'timeout'], g.check.timeout, check.timeoutMs);
    }
  }
  return name ? { name, kind, servers, subscriptions, check } : undefined;
}

/** Parses rule lines, reporting FILE:LINE for each bad one. */
function rulesOf(lines: { text: string; where: string }[], problems: string[]): Rule[] {
  const out: Rule[] = [];
  for (const l of lines) {
    try {
      out.push(parseRule(l.text));
    } catch (e) {
      if (!(e instanceof WireError)) throw e;
      problems.push(`${l.where}: ${e.message}`);
    }
  }
  return out;
}

/** Reads a plain-text rules file (--rules): one Clash-style rule a line, `#` comments. */
export function readRulesFile(path: string, problems: string[]): Rule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    problems.push(`${path}: cannot read the rules file (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return [];
  }
  const lines = text
    .split(/\r?\n/)
    .map((t, i) => ({ text: t.replace(/(^|\s)#.*$/, '').trim(), where: `${path}:${i + 1}` }))
    .filter((l) => l.text);
  return rulesOf(lines, problems);
}

/** Builds the plan from the flags and, if given, the YAML file. Throws ConfigError listing every problem. */
export function loadClientPlan(flags: ClientFlags): ClientPlan {
  const problems: string[] = [];
  let src: YamlSource | undefined;
  let raw: Record<string, unknown> = {};
  let base = process.cwd();
  if (flags.config) {
    let text: string | undefined;
    try {
      text = readFileSync(flags.config, 'utf8');
    } catch (e) {
      throw new ConfigError([
        `${flags.config}: cannot read the config (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      ]);
    }
    src = new YamlSource(flags.config, text);
    base = dirname(resolve(flags.config));
    if (!src.problems.length) {
      const js: unknown = src.doc.toJS();
      if (js === null || js === undefined) raw = {};
      else if (isPlainObject(js)) raw = js;
      else src.problem([], 'the config must be a mapping of settings');
    }
  }
  const y = src ?? new YamlSource('(flags)', '');
  if (src) checkKeys(y, [], raw, TOP_KEYS);

  const listen =
    flags.listen ??
    (raw.listen !== undefined ? addr(y, ['listen'], raw.listen) : undefined) ??
    parseHostPort('127.0.0.1:1080');
  const auth = flags.auth ?? (raw.auth !== undefined ? credentialsOf(y, raw.auth) : undefined);

  // Groups: from the file, then --server replaces (or creates) the default group's servers.
  const groups: GroupPlan[] = [];
  if (raw.groups !== undefined && !Array.isArray(raw.groups))
    y.problem(['groups'], 'expected a list of groups');
  (Array.isArray(raw.groups) ? raw.groups : []).forEach((g: unknown, i) => {
    const plan = groupOf(y, i, g);
    if (!plan) return;
    if (groups.some((x) => x.name === plan.name))
      y.problem(['groups', i, 'name'], `a group named "${plan.name}" is already defined`);
    else groups.push(plan);
  });
  if (flags.server?.length) {
    const servers = flags.server.map((uri) => ({ uri, name: serverName(uri) }));
    const existing = groups.find((g) => g.name === DEFAULT_GROUP);
    if (existing) existing.servers = servers;
    else
      groups.unshift({
        name: DEFAULT_GROUP,
        kind: 'fallback',
        servers,
        subscriptions: [],
        check: { url: DEFAULT_CHECK_URL, intervalMs: 30_000, timeoutMs: 5_000 },
      });
  }
  if (!groups.length) problems.push('no server: give --server ss://… or define groups in --config');
  // Server names are what the control API selects by: make them unique within a group.
  for (const g of groups) {
    const seen = new Map<string, number>();
    for (const s of g.servers) {
      const n = (seen.get(s.name) ?? 0) + 1;
      seen.set(s.name, n);
      if (n > 1) s.name = `${s.name} (${n})`;
    }
  }

  const presetText =
    flags.preset ??
    (typeof raw.preset === 'string' ? raw.preset : raw.preset === undefined ? 'messaging' : '');
  let preset: Preset = 'messaging';
  if ((PRESETS as readonly string[]).includes(presetText)) preset = presetText as Preset;
  else if (flags.preset !== undefined)
    problems.push(`--preset: "${flags.preset}" is not one of ${PRESETS.join(', ')}`);
  else y.problem(['preset'], `"${String(raw.preset)}" is not one of ${PRESETS.join(', ')}`);

  const rules: Rule[] = [];
  if (flags.rules) rules.push(...readRulesFile(flags.rules, problems));
  if (raw.rules !== undefined && !Array.isArray(raw.rules))
    y.problem(['rules'], 'expected a list of rules, e.g. - DOMAIN-SUFFIX,example.com,proxy');
  if (Array.isArray(raw.rules)) {
    const lines: { text: string; where: string }[] = [];
    raw.rules.forEach((r: unknown, i) => {
      if (typeof r !== 'string') y.problem(['rules', i], 'a rule is one line: TYPE,VALUE,TARGET');
      else lines.push({ text: r, where: `${y.file}:${y.lineOf(['rules', i])}` });
    });
    rules.push(...rulesOf(lines, problems));
  }
  const mainGroup = groups[0]?.name ?? DEFAULT_GROUP;
  rules.push(...presetRules(preset, mainGroup).map((r) => parseRule(r)));

  const ruleSets: Record<string, string> = {};
  if (raw['rule-sets'] !== undefined) {
    if (!isPlainObject(raw['rule-sets'])) y.problem(['rule-sets'], 'expected a mapping of NAME: FILE');
    else
      for (const [name, file] of Object.entries(raw['rule-sets'])) {
        const f = str(y, ['rule-sets', name], file, 'a file path');
        if (f) ruleSets[name] = resolve(base, f);
      }
  }
  const geoip: Record<string, string> = {};
  if (raw.geoip !== undefined) {
    if (!isPlainObject(raw.geoip)) y.problem(['geoip'], 'expected a mapping of COUNTRY: FILE');
    else
      for (const [cc, file] of Object.entries(raw.geoip)) {
        if (!/^[A-Za-z]{2}$/.test(cc)) y.problem(['geoip', cc], `"${cc}" is not a two-letter country code`);
        const f = str(y, ['geoip', cc], file, 'a file path');
        if (f) geoip[cc.toLowerCase()] = resolve(base, f);
      }
  }

  // Every group a rule names must exist.
  const groupNames = new Set(groups.map((g) => g.name));
  for (const r of rules) {
    if (r.target.kind === 'group' && !groupNames.has(r.target.name) && groups.length) {
      problems.push(
        `rule "${r.text}": no server group named "${r.target.name}" (groups: ${[...groupNames].join(', ')})`,
      );
    }
  }

  const dns: ClientPlan['dns'] = { doh: DEFAULT_DOH };
  if (raw.dns !== undefined) {
    if (!isPlainObject(raw.dns)) y.problem(['dns'], 'expected {listen, doh, ca, direct}');
    else {
      checkKeys(y, ['dns'], raw.dns, DNS_KEYS);
      if (raw.dns.listen !== undefined) dns.listen = addr(y, ['dns', 'listen'], raw.dns.listen);
      if (raw.dns.doh !== undefined)
        dns.doh = httpUrl(y, ['dns', 'doh'], raw.dns.doh, ['https:']) ?? DEFAULT_DOH;
      if (raw.dns.ca !== undefined) {
        const f = str(y, ['dns', 'ca'], raw.dns.ca, 'a PEM file path');
        if (f) {
          try {
            dns.ca = readFileSync(resolve(base, f), 'utf8');
          } catch {
            y.problem(['dns', 'ca'], `cannot read ${f}`);
          }
        }
      }
      if (raw.dns.direct !== undefined && raw.dns.direct !== 'system') {
        if (!Array.isArray(raw.dns.direct))
          y.problem(['dns', 'direct'], 'expected "system" or a list of HOST:PORT');
        else
          dns.direct = raw.dns.direct
            .map((d: unknown, i) => addr(y, ['dns', 'direct', i], d))
            .filter((a): a is Address => !!a);
      }
    }
  }
  if (flags.dns) dns.listen = flags.dns;

  const control: ClientPlan['control'] = { listen: parseHostPort('127.0.0.1:0') };
  if (raw.control !== undefined) {
    if (!isPlainObject(raw.control)) y.problem(['control'], 'expected {listen, token}');
    else {
      checkKeys(y, ['control'], raw.control, CONTROL_KEYS);
      if (raw.control.listen !== undefined)
        control.listen = addr(y, ['control', 'listen'], raw.control.listen) ?? control.listen;
      if (raw.control.token !== undefined) {
        const t = str(y, ['control', 'token'], raw.control.token, 'a token of at least 16 characters');
        if (t && t.length < 16) y.problem(['control', 'token'], 'the token must be at least 16 characters');
        else control.token = t;
      }
    }
  }
  if (flags.control) control.listen = flags.control;

  const forwards = [...(flags.forward ?? [])];
  if (raw.forwards !== undefined) {
    if (!Array.isArray(raw.forwards)) y.problem(['forwards'], 'expected a list of LHOST:LPORT=DHOST:DPORT');
    else
      raw.forwards.forEach((f: unknown, i) => {
        const s = str(y, ['forwards', i], f, 'LHOST:LPORT=DHOST:DPORT');
        const eq = s?.indexOf('=') ?? -1;
        if (!s || eq < 0)
          return s ? y.problem(['forwards', i], 'expected LHOST:LPORT=DHOST:DPORT') : undefined;
        const l = addr(y, ['forwards', i], s.slice(0, eq));
        const t = addr(y, ['forwards', i], s.slice(eq + 1));
        if (l && t) forwards.push({ listen: l, target: t });
      });
  }

  // File problems in line order, then the rest (flags, rules files) in the order found.
  const lineOf = (p: string): number => Number(/^[^\n]*?:(\d+): /.exec(p)?.[1] ?? 0);
  const fileProblems = y.problems.filter((p) => src !== undefined || !p.startsWith('(flags)'));
  const all = [...fileProblems.sort((a, b) => lineOf(a) - lineOf(b)), ...problems];
  if (all.length) throw new ConfigError(all);
  return {
    listen,
    auth,
    forwards,
    groups,
    preset,
    rules,
    ruleSets,
    geoip,
    dns,
    control,
    ...(flags.tun ? { tun: flags.tun } : {}),
  };
}
