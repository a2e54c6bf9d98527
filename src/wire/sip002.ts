// Shadowsocks server URIs: SIP002 (https://shadowsocks.org/doc/sip002.html) and the legacy
// ss://BASE64(method:password@host:port) form.
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import {
  METHODS,
  isMethodName,
  methodSpec,
  normalizeMethodName,
  type MethodName,
} from './shadowsocks-methods.js';

export interface SsUri {
  method: MethodName;
  password: string;
  /** IP literal (IPv6 without brackets) or host name. */
  host: string;
  port: number;
  tag?: string;
  /** SIP003 plugin: `plugin=name;opt=val;...` split at the first ';'. */
  plugin?: { name: string; options: string };
  /** Other query parameters (e.g. Outline's `prefix`), percent-decoded, kept so that they round-trip. */
  params: Record<string, string>;
}

const bad = (what: string, code = 'bad-uri'): WireError => new WireError(code, `invalid ss:// URI: ${what}`);

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;
const HOSTNAME = /^[A-Za-z0-9._-]{1,253}$/;
const CIPHER_LIKE =
  /^(?:rc4|aes|chacha|xchacha|salsa|bf|camellia|cast|des|idea|rc2|seed|sm4|none|plain|table|2022-)[a-z0-9-]{0,40}$/i;

function pctDecode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw bad(`malformed percent-encoding in the ${what}`);
  }
}

function pctEncode(s: string, what: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    throw bad(`the ${what} is not valid Unicode text`);
  }
}

/** Standard or URL-safe base64, padding optional, that decodes to UTF-8 text; undefined otherwise. */
function decodeBase64Text(s: string): string | undefined {
  if (!BASE64.test(s) || s.replace(/=+$/, '').length % 4 === 1) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(s, 'base64'));
  } catch {
    return undefined;
  }
}

/** Checks that every ':'-separated PSK of a 2022 password is base64 of exactly the key size. */
function checkPsks(method: MethodName, password: string): void {
  const { edition, keySize } = methodSpec(method);
  if (edition !== '2022') return;
  const psks = password.split(':');
  psks.forEach((psk, i) => {
    const len = BASE64.test(psk) ? Buffer.from(psk, 'base64').length : -1;
    if (len === keySize) return;
    const which = psks.length > 1 ? `key ${i + 1} of ${psks.length}` : 'the key';
    throw bad(
      `${method} needs a base64 key of exactly ${keySize} bytes (e.g. from \`openssl rand -base64 ${keySize}\`); ` +
        `${which} ${len < 0 ? 'is not base64' : `has ${len} bytes`}`,
      'bad-key',
    );
  });
}

function checkHost(host: string, bracketed: boolean): void {
  if (bracketed || host.includes(':')) {
    if (!isIPv6(host)) throw bad(`"${host}" is not an IPv6 address`, 'bad-host');
  } else if (!isIPv4(host) && !HOSTNAME.test(host)) {
    throw bad(`"${host}" is not a valid host name`, 'bad-host');
  }
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw bad(`port must be 1..65535, got ${port}`, 'bad-port');
}

/**
 * Parses an ss:// URI: SIP002 with base64(url) or percent-encoded plain `method:password` userinfo, or the
 * legacy all-base64 form. Throws WireError with a readable message (never containing the password).
 */
export function parseSsUri(text: string): SsUri {
  let rest = text.trim();
  if (!/^ss:\/\//i.test(rest)) throw bad('it must start with "ss://"');
  rest = rest.slice(5);
  let tag: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    tag = pctDecode(rest.slice(hash + 1), 'tag (after "#")') || undefined;
    rest = rest.slice(0, hash);
  }
  let query: string | undefined;
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  let userinfo: string;
  let hostPort: string;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    hostPort = rest.slice(at + 1).replace(/\/$/, '');
    const raw = pctDecode(rest.slice(0, at), 'method:password part');
    const decoded = raw.includes(':') ? raw : decodeBase64Text(raw);
    if (decoded === undefined || !decoded.includes(':')) {
      throw bad('the part before "@" must be "method:password" or its base64');
    }
    userinfo = decoded;
  } else {
    // Legacy: ss://BASE64(method:password@host:port)
    const decoded = decodeBase64Text(query === undefined ? rest : rest.replace(/\/$/, ''));
    const at2 = decoded?.lastIndexOf('@') ?? -1;
    if (decoded === undefined || at2 < 0) throw bad('missing "@host:port"');
    userinfo = decoded.slice(0, at2);
    hostPort = decoded.slice(at2 + 1);
  }

  const colon = userinfo.indexOf(':');
  const methodText = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const password = colon < 0 ? '' : userinfo.slice(colon + 1);
  if (!methodText) throw bad('missing method (expected "method:password")');
  const method = normalizeMethodName(methodText);
  if (!method) {
    // Name it only if it looks like a cipher: the text might be a password pasted in the wrong order.
    const shown = CIPHER_LIKE.test(methodText) ? ` "${methodText}"` : '';
    throw bad(`unsupported method${shown}; supported: ${METHODS.join(', ')}`, 'unknown-method');
  }
  if (!password) throw bad('missing password (expected "method:password")');
  checkPsks(method, password);

  const m = /^\[([^\]]*)\]:(\d{1,5})$/.exec(hostPort) ?? /^([^:[\]]*):(\d{1,5})$/.exec(hostPort);
  if (!m || !m[1]) throw bad('expected "host:port" (IPv6 as [addr]:port) after the last "@"', 'bad-host');
  const host = m[1];
  checkHost(host, hostPort.startsWith('['));
  const port = Number(m[2]);
  checkPort(port);

  const u: SsUri = { method, password, host, port, params: {} };
  if (tag !== undefined) u.tag = tag;
  const params: Array<[string, string]> = [];
  const seen = new Set<string>();
  for (const part of query?.split('&') ?? []) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = pctDecode(eq < 0 ? part : part.slice(0, eq), 'query');
    const value = eq < 0 ? '' : pctDecode(part.slice(eq + 1), 'query');
    if (!key) throw bad('a query parameter has no name');
    if (seen.has(key)) throw bad(`query parameter "${key}" appears twice`);
    seen.add(key);
    if (key !== 'plugin') params.push([key, value]);
    else if (value) {
      const semi = value.indexOf(';');
      const name = semi < 0 ? value : value.slice(0, semi);
      if (!name) throw bad('the plugin parameter has no plugin name');
      u.plugin = { name, options: semi < 0 ? '' : value.slice(semi + 1) };
    }
  }
  u.params = Object.fromEntries(params); // own properties, even for a key such as "__proto__"
  return u;
}

/**
 * Formats a SIP002 URI. AEAD methods get base64url userinfo without padding (as Outline and
 * shadowsocks-rust emit); 2022 methods get percent-encoded plain `method:password`.
 * parseSsUri(formatSsUri(u)) deep-equals u (given a non-empty tag or none).
 */
export function formatSsUri(u: SsUri): string {
  if (!isMethodName(u.method))
    throw bad(`unsupported method; supported: ${METHODS.join(', ')}`, 'unknown-method');
  if (!u.password) throw bad('missing password');
  checkPsks(u.method, u.password);
  checkHost(u.host, false);
  checkPort(u.port);
  const encoded = pctEncode(u.password, 'password'); // also rejects unpaired surrogates
  const userinfo =
    methodSpec(u.method).edition === '2022'
      ? `${u.method}:${encoded}`
      : Buffer.from(`${u.method}:${u.password}`, 'utf8').toString('base64url');
  const query: string[] = [];
  if (u.plugin) {
    const { name, options } = u.plugin;
    if (!name || name.includes(';')) throw bad('the plugin name must be non-empty and without ";"');
    query.push(`plugin=${pctEncode(options ? `${name};${options}` : name, 'plugin')}`);
  }
  for (const [key, value] of Object.entries(u.params)) {
    if (!key || key === 'plugin') throw bad(`query parameter name "${key}" is not allowed in params`);
    query.push(`${pctEncode(key, 'query')}=${pctEncode(value, 'query')}`);
  }
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  const tail = (query.length ? `/?${query.join('&')}` : '') + (u.tag ? `#${pctEncode(u.tag, 'tag')}` : '');
  return `ss://${userinfo}@${host}:${u.port}${tail}`;
}
