// Server subscriptions: the documents apps refresh to learn their servers. Reads SIP008 JSON
// (https://shadowsocks.org/doc/sip008.html), Outline's dynamic-key JSON (behind ssconf://), base64 or
// plain lists of ss:// lines, and — since Pigeon's own server publishes them too — Clash/mihomo YAML
// `proxies` and sing-box `outbounds`. Text in, servers out; no I/O.
import { parse as parseYaml } from 'yaml';
import { WireError } from './errors.js';
import { normalizeMethodName } from './shadowsocks-methods.js';
import { formatSsUri, parseSsUri, type SsUri } from './sip002.js';

export interface SubscriptionEntry {
  uri: SsUri;
  /** Unique within one parse: the server's own name (tag, remarks), else "host:port"; repeats get " (2)"… */
  name: string;
}

/** Larger documents are refused; more servers than this are counted as skipped. */
export const MAX_SUBSCRIPTION_BYTES = 8 * 1024 * 1024;
export const MAX_SUBSCRIPTION_ENTRIES = 1000;

const BASE64_BODY = /^[A-Za-z0-9+/_-]+={0,2}$/;
const SCHEME_LINE = /^[a-z][a-z0-9+.-]{0,31}:\/\//i;
const COMMENT = /^(?:#|\/\/|;|!)/;
/** sing-box outbounds that are not servers: neither used nor counted as skipped. */
const SING_BOX_NON_SERVERS = new Set(['direct', 'block', 'dns', 'selector', 'urltest']);

const err = (code: string, what: string): WireError => new WireError(code, `invalid subscription: ${what}`);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Strings, and numbers that some providers write for ports and passwords. */
function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function portOf(v: unknown): number | undefined {
  const t = text(v)?.trim();
  if (t === undefined || !/^\d{1,5}$/.test(t)) return undefined;
  return Number(t);
}

interface Collected {
  uris: SsUri[];
  skipped: number;
}

/**
 * A server from the fields of a JSON or YAML entry, validated the way an ss:// URI is (method,
 * 2022 key sizes, host, port); undefined when unusable (unknown method, missing field…).
 */
function serverFrom(f: {
  host: unknown;
  port: unknown;
  method: unknown;
  password: unknown;
  name?: unknown;
  plugin?: unknown;
  pluginOpts?: unknown;
  prefix?: unknown;
}): SsUri | undefined {
  const methodText = text(f.method);
  const method = methodText === undefined ? undefined : normalizeMethodName(methodText);
  const password = text(f.password);
  let host = text(f.host)?.trim();
  const port = portOf(f.port);
  if (!method || !password || !host || port === undefined) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const u: SsUri = { method, password, host, port, params: {} };
  const name = text(f.name)?.trim();
  if (name) u.tag = name;
  const plugin = text(f.plugin)?.trim();
  if (plugin) u.plugin = { name: plugin, options: text(f.pluginOpts) ?? '' };
  const prefix = text(f.prefix);
  if (prefix) u.params = Object.fromEntries([['prefix', prefix]]);
  try {
    formatSsUri(u); // validates every field, without putting the password in a message
  } catch (e) {
    if (e instanceof WireError) return undefined;
    throw e;
  }
  return u;
}

/** Clash's plugin-opts map as SIP003 "key=value;flag" options. */
function clashPluginOpts(v: unknown): string {
  if (!isObj(v)) return '';
  const parts: string[] = [];
  for (const [k, val] of Object.entries(v)) {
    if (val === true) parts.push(k);
    else if (typeof val === 'string' || typeof val === 'number') parts.push(`${k}=${val}`);
  }
  return parts.join(';');
}

function fromSip008(servers: unknown[], out: Collected): void {
  for (const s of servers) {
    const u = isObj(s)
      ? serverFrom({
          host: s.server,
          port: s.server_port,
          method: s.method,
          password: s.password,
          name: s.remarks,
          plugin: s.plugin,
          pluginOpts: s.plugin_opts,
        })
      : undefined;
    if (u) out.uris.push(u);
    else out.skipped++;
  }
}

function fromSingBox(outbounds: unknown[], out: Collected): void {
  for (const o of outbounds) {
    if (!isObj(o)) {
      out.skipped++;
      continue;
    }
    if (typeof o.type === 'string' && SING_BOX_NON_SERVERS.has(o.type)) continue;
    const u =
      o.type === 'shadowsocks'
        ? serverFrom({
            host: o.server,
            port: o.server_port,
            method: o.method,
            password: o.password,
            name: o.tag,
            plugin: o.plugin,
            pluginOpts: o.plugin_opts,
          })
        : undefined;
    if (u) out.uris.push(u);
    else out.skipped++;
  }
}

function fromJson(body: string, out: Collected): void {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    throw err('bad-json', 'it starts like JSON but is not valid JSON');
  }
  if (!isObj(doc)) throw err('unknown-format', 'a JSON subscription must be an object');
  if (Array.isArray(doc.servers)) return fromSip008(doc.servers, out);
  if (Array.isArray(doc.outbounds)) return fromSingBox(doc.outbounds, out);
  if (isObj(doc.error)) {
    // Outline's dynamic keys may answer {"error": {"message": "…"}} instead of a server.
    const message = text(doc.error.message)?.slice(0, 200);
    throw err('server-error', `the provider says: ${message ?? 'error (no message)'}`);
  }
  if ('server' in doc || 'server_port' in doc) {
    // Outline's dynamic key: one server, optionally with a salt prefix.
    const u = serverFrom({
      host: doc.server,
      port: doc.server_port,
      method: doc.method,
      password: doc.password,
      prefix: doc.prefix,
    });
    if (u) out.uris.push(u);
    else out.skipped++;
    return;
  }
  throw err(
    'unknown-format',
    'JSON without "servers" (SIP008), "outbounds" (sing-box) or "server" (Outline dynamic key)',
  );
}

function fromClashYaml(body: string, out: Collected): void {
  let doc: unknown;
  try {
    doc = parseYaml(body, { maxAliasCount: 100, uniqueKeys: false, logLevel: 'error' });
  } catch {
    throw err('bad-yaml', 'it looks like a Clash profile but is not valid YAML');
  }
  if (!isObj(doc) || !Array.isArray(doc.proxies)) throw err('unknown-format', 'Clash YAML without proxies');
  for (const p of doc.proxies) {
    const u =
      isObj(p) && p.type === 'ss'
        ? serverFrom({
            host: p.server,
            port: p.port,
            method: p.cipher,
            password: p.password,
            name: p.name,
            plugin: p.plugin,
            pluginOpts: clashPluginOpts(p['plugin-opts']),
          })
        : undefined;
    if (u) out.uris.push(u);
    else out.skipped++;
  }
}

/** ss:// lines; other URI schemes (vmess://, trojan://…) count as skipped; other lines are ignored. */
function fromLines(body: string, out: Collected): void {
  for (const raw of body.split(/\r\n|\r|\n/)) {
    const line = raw.trim();
    if (!line || COMMENT.test(line)) continue;
    if (/^ss:\/\//i.test(line)) {
      try {
        out.uris.push(parseSsUri(line));
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        out.skipped++;
      }
    } else if (SCHEME_LINE.test(line)) out.skipped++;
  }
}

/** Base64 (standard or URL-safe, padded or not, wrapped or not) of UTF-8 text; undefined otherwise. */
function decodeBase64Body(body: string): string | undefined {
  const compact = body.replace(/\s+/g, '');
  if (!compact || !BASE64_BODY.test(compact) || compact.replace(/=+$/, '').length % 4 === 1) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(compact, 'base64'));
  } catch {
    return undefined;
  }
}

function collect(body: string, out: Collected, base64Allowed: boolean): void {
  if (body.startsWith('{') || body.startsWith('[')) return fromJson(body, out);
  if (body.startsWith('<')) {
    throw err('unknown-format', 'got an HTML/XML page, not a subscription (a login, error or block page?)');
  }
  if (/^proxies[ \t]*:/m.test(body)) return fromClashYaml(body, out);
  if (base64Allowed && !body.includes('://')) {
    const decoded = decodeBase64Body(body);
    if (decoded !== undefined) return collect(decoded.replace(/^\uFEFF/, '').trim(), out, false);
  }
  fromLines(body, out);
}

/** Names unique within the list: "x", "x (2)", "x (3)"… (compared case-insensitively). */
export function uniqueNames(names: readonly string[]): string[] {
  const taken = new Set<string>();
  return names.map((base) => {
    let name = base;
    for (let i = 2; taken.has(name.toLowerCase()) && i < 100_000; i++) name = `${base} (${i})`;
    taken.add(name.toLowerCase());
    return name;
  });
}

/**
 * SIP008 JSON, Outline dynamic-key JSON, base64 (std or url-safe, padded or not) of ss:// lines, or
 * plain ss:// lines (also Clash YAML and sing-box JSON). Entries that are not usable Shadowsocks
 * servers (other protocols, unsupported methods, bad fields) are skipped and counted. Throws
 * WireError when the text is not a subscription or holds no usable server; messages never contain
 * a password.
 */
export function parseSubscription(text: string): { entries: SubscriptionEntry[]; skipped: number } {
  if (text.length > MAX_SUBSCRIPTION_BYTES) {
    throw err('too-large', `larger than ${MAX_SUBSCRIPTION_BYTES} bytes`);
  }
  const body = text.replace(/^\uFEFF/, '').trim();
  if (!body) throw err('empty', 'the document is empty');
  const out: Collected = { uris: [], skipped: 0 };
  collect(body, out, true);
  if (out.uris.length > MAX_SUBSCRIPTION_ENTRIES) {
    out.skipped += out.uris.length - MAX_SUBSCRIPTION_ENTRIES;
    out.uris.length = MAX_SUBSCRIPTION_ENTRIES;
  }
  if (out.uris.length === 0) {
    throw err(
      'no-servers',
      out.skipped > 0
        ? `none of its ${out.skipped} server(s) is a Shadowsocks server with a supported method`
        : 'no servers found (expected SIP008 JSON, an Outline key, or ss:// lines, plain or base64)',
    );
  }
  const names = uniqueNames(out.uris.map((u) => u.tag ?? hostPort(u)));
  return { entries: out.uris.map((uri, i) => ({ uri, name: names[i]! })), skipped: out.skipped };
}

function hostPort(u: SsUri): string {
  return u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
}

/**
 * Where to fetch a subscription: ssconf://host/path (Outline's dynamic key) → https://host/path;
 * http(s) passes through. The fragment (a display name) is dropped. Anything else throws WireError.
 */
export function subscriptionFetchUrl(url: string): string {
  const trimmed = url.trim();
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme !== 'ssconf' && scheme !== 'https' && scheme !== 'http') {
    throw new WireError(
      'bad-url',
      `a subscription URL must start with https://, http:// or ssconf://${scheme ? `, not ${scheme}:` : ''}`,
    );
  }
  const candidate = scheme === 'ssconf' ? `https:${trimmed.slice('ssconf:'.length)}` : trimmed;
  let u: URL;
  try {
    u = new URL(candidate);
  } catch {
    throw new WireError('bad-url', 'the subscription URL is malformed');
  }
  if (!u.hostname || !candidate.slice(u.protocol.length).startsWith('//')) {
    throw new WireError('bad-url', 'the subscription URL has no host');
  }
  u.hash = '';
  return u.toString();
}

/** The display name an ssconf:// (or any) URL carries after '#', if any. */
export function subscriptionUrlName(url: string): string | undefined {
  const hash = url.indexOf('#');
  if (hash < 0) return undefined;
  try {
    return decodeURIComponent(url.slice(hash + 1)).trim() || undefined;
  } catch {
    return undefined;
  }
}
