// What an access key looks like to apps: the ss:// URI, QR codes, and the subscription documents
// apps refresh by themselves (SIP008 online config, Outline's dynamic key, Clash/mihomo YAML, sing-box).
import { createHash } from 'node:crypto';
import QRCode from 'qrcode';
import { stringify } from 'yaml';
import { formatSsUri } from '../wire/sip002.js';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, DataLimit, KeyUsage, ServerSettings } from './types.js';

/** Whether a method's keys share one port through a SIP023 identity PSK (the 2022 AES methods). */
export function usesIdentityPsk(method: MethodName): boolean {
  const spec = methodSpec(method);
  return spec.edition === '2022' && spec.cipher !== 'chacha20-poly1305';
}

/**
 * The password as clients must give it: "iPSK:uPSK" for a 2022 AES key once the server has that
 * method's identity PSK (SIP023, many users on one port); the key's own secret otherwise.
 */
export function clientPassword(key: AccessKey, s: ServerSettings): string {
  const ipsk = usesIdentityPsk(key.method) ? s.identityPsks[key.method] : undefined;
  return ipsk ? `${ipsk}:${key.secret}` : key.secret;
}

function requireHost(s: ServerSettings): string {
  if (!s.hostname) throw new Error('the server has no hostname for access keys yet');
  return s.hostname;
}

/** The SIP002 ss:// URI for a key, tagged with its name. */
export function accessUri(key: AccessKey, s: ServerSettings): string {
  return formatSsUri({
    method: key.method,
    password: clientPassword(key, s),
    host: requireHost(s),
    port: key.port,
    ...(key.name ? { tag: key.name } : {}),
    // Outline's `prefix` parameter: Pigeon's and Outline's clients disguise the first packet with it;
    // apps that ignore it connect undisguised, which the server accepts on the same port.
    params: key.prefix ? { prefix: key.prefix } : {},
  });
}

/** A stable UUID (version 5 layout) for a key on this server: SIP008 clients keep per-server state by it. */
export function keyUuid(key: AccessKey, s: ServerSettings): string {
  const h = createHash('sha1').update(`pigeon:${s.serverId}:${key.id}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export interface Sip008Server {
  id: string;
  remarks: string;
  server: string;
  server_port: number;
  password: string;
  method: MethodName;
}

export interface Sip008Document {
  version: 1;
  servers: Sip008Server[];
  bytes_used?: number;
  bytes_remaining?: number;
}

/** SIP008's optional data usage fields: bytes_remaining only where a limit applies. */
export interface Sip008Traffic {
  bytesUsed: number;
  bytesRemaining?: number;
}

/**
 * The data usage a key's subscription reports: bytes in the window of the limit that applies to it
 * (its own, else the server's default; rolling 30 days when there is none), and what is left.
 */
export function keyTraffic(key: AccessKey, s: ServerSettings, usage: KeyUsage): Sip008Traffic {
  const limit: DataLimit | null = key.dataLimit ?? s.defaultDataLimit;
  const used = limit?.window === 'total' ? usage.total : usage.last30d;
  return limit ? { bytesUsed: used, bytesRemaining: Math.max(0, limit.bytes - used) } : { bytesUsed: used };
}

/** SIP008 online configuration (https://shadowsocks.org/doc/sip008.html). */
export function sip008Json(keys: AccessKey[], s: ServerSettings, traffic?: Sip008Traffic): Sip008Document {
  const host = requireHost(s);
  const doc: Sip008Document = {
    version: 1,
    servers: keys.map((k) => ({
      id: keyUuid(k, s),
      remarks: k.name || `Pigeon ${k.id}`,
      server: host,
      server_port: k.port,
      password: clientPassword(k, s),
      method: k.method,
    })),
  };
  if (traffic) {
    doc.bytes_used = traffic.bytesUsed;
    if (traffic.bytesRemaining !== undefined) doc.bytes_remaining = traffic.bytesRemaining;
  }
  return doc;
}

/**
 * What Outline's client accepts behind an ssconf:// dynamic key: these four fields and, for a disguised
 * key, `prefix` (it rejects unknown ones, so a SIP008 document does not work there).
 */
export function outlineJson(key: AccessKey, s: ServerSettings) {
  return {
    server: requireHost(s),
    server_port: key.port,
    password: clientPassword(key, s),
    method: key.method,
    ...(key.prefix ? { prefix: key.prefix } : {}),
  };
}

/** Names that must be unique: the key's name, else "Pigeon N"; repeats and reserved names get " (key N)". */
function uniqueNames(keys: AccessKey[], reserved: readonly string[]): string[] {
  const taken = new Set(reserved.map((r) => r.toUpperCase()));
  return keys.map((k) => {
    let name = k.name || `Pigeon ${k.id}`;
    if (taken.has(name.toUpperCase())) name = `${name} (key ${k.id})`;
    taken.add(name.toUpperCase());
    return name;
  });
}

const CLASH_GROUP = 'Pigeon';
const CLASH_RESERVED = [CLASH_GROUP, 'DIRECT', 'REJECT', 'REJECT-DROP', 'PASS', 'COMPATIBLE', 'GLOBAL'];

/** A Clash / mihomo profile: the keys as ss proxies, a select group "Pigeon", and everything through it. */
export function clashYaml(keys: AccessKey[], s: ServerSettings): string {
  const host = requireHost(s);
  const names = uniqueNames(keys, CLASH_RESERVED);
  return stringify({
    proxies: keys.map((k, i) => ({
      name: names[i],
      type: 'ss',
      server: host,
      port: k.port,
      cipher: k.method,
      password: clientPassword(k, s),
      udp: true,
    })),
    'proxy-groups': [{ name: CLASH_GROUP, type: 'select', proxies: names }],
    rules: [`MATCH,${CLASH_GROUP}`],
  });
}

export interface SingBoxOutbound {
  type: 'shadowsocks';
  tag: string;
  server: string;
  server_port: number;
  method: MethodName;
  password: string;
}

/** sing-box outbounds for the keys (tags unique). */
export function singBoxJson(keys: AccessKey[], s: ServerSettings): { outbounds: SingBoxOutbound[] } {
  const host = requireHost(s);
  const tags = uniqueNames(keys, ['direct', 'block', 'dns']);
  return {
    outbounds: keys.map((k, i) => ({
      type: 'shadowsocks',
      tag: tags[i]!,
      server: host,
      server_port: k.port,
      method: k.method,
      password: clientPassword(k, s),
    })),
  };
}

/** The subscription paths of a key, relative to the API's public base URL. */
export const SUBSCRIPTION_FILES = {
  sip008: 'sip008.json',
  outline: 'outline.json',
  clash: 'clash.yaml',
  singBox: 'sing-box.json',
  uri: 'uri.txt',
} as const;

/** https://HOST:PORT/sub/TOKEN/FILE (a trailing slash on the base is ignored). */
export function subscriptionUrl(publicBaseUrl: string, token: string, file: string): string {
  return `${publicBaseUrl.replace(/\/+$/, '')}/sub/${encodeURIComponent(token)}/${file}`;
}

/**
 * Outline's dynamic access key: ssconf://HOST:PORT/sub/TOKEN/outline.json. The client swaps the
 * scheme back to https:// and reads the Outline JSON there (SIP008's `servers` list is not a form it
 * reads).
 */
export function ssconfUrl(publicBaseUrl: string, token: string): string {
  return subscriptionUrl(publicBaseUrl, token, SUBSCRIPTION_FILES.outline).replace(
    /^https?:\/\//i,
    'ssconf://',
  );
}

/** A QR code drawn with block characters, for a terminal. */
export function qrTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' });
}

/** A QR code as a PNG image. */
export function qrPng(text: string): Promise<Buffer> {
  return QRCode.toBuffer(text, { type: 'png', errorCorrectionLevel: 'M', margin: 2, scale: 6 });
}
