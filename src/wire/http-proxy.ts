// HTTP/1.x forward-proxy request heads (RFC 9110, RFC 9112): CONNECT host:port, and plain requests
// with an absolute http:// URI, which are rewritten to origin form before they go to the server.
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import { makeAddress, type Address, type Decoded } from './socks-address.js';

export interface HttpProxyRequest {
  /** Case-sensitive, as sent ("GET", "CONNECT", ...). */
  method: string;
  version: '1.0' | '1.1';
  isConnect: boolean;
  target: Address;
  /** Origin-form path for non-CONNECT requests, e.g. "/x?y" (fragment removed); "" for CONNECT. */
  path: string;
  /** Every header line in order, name as sent, value without surrounding whitespace. */
  headers: Array<[string, string]>;
  /** From `Proxy-Authorization: Basic ...`; other schemes are left out (and stay in `headers`). */
  proxyAuthorization?: { username: string; password: string };
}

export const DEFAULT_MAX_HEAD_BYTES = 16384;

/** The reply to a successful CONNECT; the tunnel starts after it. */
export const CONNECT_ESTABLISHED: Buffer = Buffer.from(
  'HTTP/1.1 200 Connection Established\r\n\r\n',
  'latin1',
);

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const BAD_VALUE_CHAR = /[\x00-\x08\x0a-\x1f\x7f]/;
const HOP_BY_HOP = [
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'te',
  'trailer',
  'upgrade',
  'host', // replaced by the request target's authority (RFC 9112 §3.2.2)
];
const FRAMING = ['content-length', 'transfer-encoding'];

const isTokenByte = (c: number): boolean => c < 0x80 && c > 0x20 && TOKEN.test(String.fromCharCode(c));

/** Quotes peer-supplied text for an error message, cut to a readable length. */
const quote = (s: string): string => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);

/** Offset just past the first empty line ("\n\n" or "\n\r\n") within buf[0, limit), or -1. */
function findHeadEnd(buf: Uint8Array, limit: number): number {
  for (let i = buf.indexOf(0x0a); i >= 0 && i < limit; i = buf.indexOf(0x0a, i + 1)) {
    if (i + 1 < limit && buf[i + 1] === 0x0a) return i + 2;
    if (i + 2 < limit && buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** Rejects an incomplete head early when it cannot start with "METHOD ". */
function checkMethodPrefix(buf: Uint8Array): void {
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (c === 0x20 && i > 0) return;
    if (!isTokenByte(c)) {
      throw new WireError(
        'bad-method',
        'not an HTTP request: the request line must start with a method name',
      );
    }
  }
}

/**
 * Parses an HTTP/1.0 or HTTP/1.1 proxy request head from everything received so far. Returns null until
 * the empty line that ends the head arrives ("\r\n\r\n", bare "\n\n" accepted); `length` covers the head
 * including that line, so any bytes after it are the body or tunnel data. Throws WireError for a head
 * larger than maxHeadBytes ('head-too-large') or any malformed or unsupported request.
 */
export function parseProxyRequestHead(
  buf: Uint8Array,
  maxHeadBytes = DEFAULT_MAX_HEAD_BYTES,
): Decoded<HttpProxyRequest> | null {
  const end = findHeadEnd(buf, Math.min(buf.length, maxHeadBytes));
  if (end < 0) {
    checkMethodPrefix(buf);
    if (buf.length >= maxHeadBytes) {
      throw new WireError('head-too-large', `HTTP request head is larger than ${maxHeadBytes} bytes`);
    }
    return null;
  }
  const text = Buffer.from(buf.buffer, buf.byteOffset, end).toString('latin1');
  const lines = text.split(/\r?\n/).slice(0, -2);
  const requestLine = lines[0]!;
  const m = /^([^ ]+) ([^ ]+) ([^ ]+)$/.exec(requestLine);
  if (!m) throw new WireError('bad-request-line', `malformed HTTP request line ${quote(requestLine)}`);
  const [, method, rawTarget, rawVersion] = m as unknown as [string, string, string, string];
  if (!TOKEN.test(method)) throw new WireError('bad-method', `invalid HTTP method ${quote(method)}`);
  const v = /^HTTP\/1\.([01])$/.exec(rawVersion);
  if (!v) {
    throw new WireError(
      'bad-version',
      `unsupported HTTP version ${quote(rawVersion)} (need HTTP/1.0 or HTTP/1.1)`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(rawTarget)) {
    throw new WireError('bad-target', 'control or non-ASCII character in the HTTP request target');
  }
  const headers = lines.slice(1).map(parseHeaderLine);
  const isConnect = method === 'CONNECT';
  const { target, path } = isConnect
    ? { target: parseAuthority(rawTarget, undefined), path: '' }
    : parseAbsoluteUri(rawTarget);
  const req: HttpProxyRequest = {
    method,
    version: v[1] === '0' ? '1.0' : '1.1',
    isConnect,
    target,
    path,
    headers,
  };
  const auth = headers.find(([name]) => name.toLowerCase() === 'proxy-authorization');
  const creds = auth && parseBasicCredentials(auth[1]);
  if (creds) req.proxyAuthorization = creds;
  return { value: req, length: end };
}

function parseHeaderLine(line: string): [string, string] {
  if (/^[ \t]/.test(line)) throw new WireError('bad-header', 'folded HTTP header lines are not supported');
  const colon = line.indexOf(':');
  if (colon < 0) throw new WireError('bad-header', `HTTP header line without ":": ${quote(line)}`);
  const name = line.slice(0, colon);
  if (!TOKEN.test(name)) throw new WireError('bad-header', `invalid HTTP header name ${quote(name)}`);
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (BAD_VALUE_CHAR.test(value)) {
    throw new WireError('bad-header', `control character in the value of HTTP header ${quote(name)}`);
  }
  return [name, value];
}

/** "host:port" or "[v6]:port"; the port may be omitted only when a default is given. */
function parseAuthority(text: string, defaultPort: number | undefined): Address {
  const m = /^\[([^\]]*)\](?::(\d*))?$/.exec(text) ?? /^([^:[\]]*)(?::(\d*))?$/.exec(text);
  if (!m) throw new WireError('bad-target', `expected host:port (IPv6 as [addr]:port), got ${quote(text)}`);
  const host = m[1]!;
  const bracketed = text.startsWith('[');
  if (bracketed ? !isIPv6(host) : !isIPv4(host) && !/^[A-Za-z0-9._-]{1,255}$/.test(host)) {
    throw new WireError('bad-host', `invalid host name ${quote(host)} in ${quote(text)}`);
  }
  const portText = m[2] ?? '';
  if (portText === '' && defaultPort === undefined) {
    throw new WireError('bad-target', `CONNECT needs host:port, got ${quote(text)}`);
  }
  const port = portText === '' ? defaultPort! : Number(portText);
  if (portText.length > 5 || port < 1 || port > 65535) {
    throw new WireError('bad-port', `port must be 1..65535, got ${quote(portText)}`);
  }
  return makeAddress(host, port);
}

function parseAbsoluteUri(text: string): { target: Address; path: string } {
  if (text.startsWith('/') || text === '*') {
    throw new WireError(
      'not-proxy-request',
      `${quote(text)} is not a proxy request: a proxy needs an absolute URI (http://host/path) or CONNECT`,
    );
  }
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(text);
  if (!m) throw new WireError('bad-target', `expected an absolute http:// URI, got ${quote(text)}`);
  const scheme = m[1]!.toLowerCase();
  if (scheme === 'https') {
    throw new WireError(
      'https-not-supported',
      'https:// URIs cannot be fetched through a plain HTTP proxy; the client should use CONNECT',
    );
  }
  if (scheme !== 'http') throw new WireError('bad-scheme', `unsupported URI scheme ${quote(scheme)}`);
  const authority = m[2]!;
  if (authority.includes('@'))
    throw new WireError('bad-target', 'user:password@ in a proxied URI is not supported');
  const target = parseAuthority(authority, 80);
  const rest = m[3]!.replace(/#.*$/, '');
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { target, path };
}

/** `Basic base64(user:pass)` → credentials; undefined for other schemes; WireError if malformed. */
function parseBasicCredentials(value: string): { username: string; password: string } | undefined {
  const m = /^(\S+)(?:[ \t]+(.*))?$/.exec(value);
  if (!m || m[1]!.toLowerCase() !== 'basic') return undefined;
  const b64 = (m[2] ?? '').trim();
  const decoded = /^[A-Za-z0-9+/]+={0,2}$/.test(b64) ? Buffer.from(b64, 'base64').toString('utf8') : '';
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    throw new WireError(
      'bad-proxy-auth',
      'Proxy-Authorization: Basic credentials must be base64 of "user:password"',
    );
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** The Host header value for a target: IPv6 bracketed, port left out when it is 80. */
function hostHeader(a: Address): string {
  const host = a.kind === 'ipv6' ? `[${a.host}]` : a.host;
  return a.port === 80 ? host : `${host}:${a.port}`;
}

/**
 * The head to send to the origin server for a non-CONNECT request: origin-form request line, Host taken
 * from the request target (replacing any Host header), hop-by-hop headers (including those named in
 * Connection) removed, and "Connection: close" added, since each proxied connection carries one request.
 */
export function buildForwardHead(req: HttpProxyRequest): Buffer {
  if (req.isConnect) throw new WireError('bad-request', 'a CONNECT request has no head to forward');
  const drop = new Set(HOP_BY_HOP);
  for (const [name, value] of req.headers) {
    if (name.toLowerCase() !== 'connection') continue;
    for (const t of value.split(',')) {
      const token = t.trim().toLowerCase();
      if (token && !FRAMING.includes(token)) drop.add(token);
    }
  }
  const lines = [`${req.method} ${req.path} HTTP/${req.version}`, `Host: ${hostHeader(req.target)}`];
  for (const [name, value] of req.headers) if (!drop.has(name.toLowerCase())) lines.push(`${name}: ${value}`);
  lines.push('Connection: close', '', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

/**
 * A complete bodiless HTTP/1.1 response that ends the connection, e.g.
 * encodeSimpleResponse(407, 'Proxy Authentication Required', [['Proxy-Authenticate', 'Basic realm="pigeon"']]).
 * Content-Length: 0 and Connection: close are added unless given.
 */
export function encodeSimpleResponse(
  status: number,
  reason: string,
  headers: Array<[string, string]> = [],
): Buffer {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new WireError('bad-status', `HTTP status must be 100..599, got ${status}`);
  }
  if (BAD_VALUE_CHAR.test(reason))
    throw new WireError('bad-reason', 'control character in HTTP reason phrase');
  const lines = [`HTTP/1.1 ${status} ${reason}`];
  const names = new Set<string>();
  const add = (name: string, value: string): void => {
    if (!TOKEN.test(name)) throw new WireError('bad-header', `invalid HTTP header name ${quote(name)}`);
    if (BAD_VALUE_CHAR.test(value))
      throw new WireError('bad-header', `control character in header ${quote(name)}`);
    names.add(name.toLowerCase());
    lines.push(`${name}: ${value}`);
  };
  for (const [name, value] of headers) add(name, value);
  if (!names.has('content-length')) add('Content-Length', '0');
  if (!names.has('connection')) add('Connection', 'close');
  lines.push('', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}
