// What an access key looks like to apps: the ss:// URI, QR codes, and subscription documents
// (SIP008 online config, Clash/mihomo YAML, sing-box JSON) that apps refresh by themselves.
import QRCode from 'qrcode';
import { stringify } from 'yaml';
import { formatSsUri } from '../wire/sip002.js';
import { methodSpec } from '../wire/shadowsocks-methods.js';
import type { AccessKey, KeyUsage, ServerSettings } from './types.js';

/** The password as clients must give it: "iPSK:uPSK" for 2022 AES keys on a multi-user port. */
export function clientPassword(key: AccessKey, s: ServerSettings): string {
  const spec = methodSpec(key.method);
  const ipsk =
    spec.edition === '2022' && spec.cipher !== 'chacha20-poly1305' ? s.identityPsks[key.method] : undefined;
  return ipsk ? `${ipsk}:${key.secret}` : key.secret;
}

export function accessUri(key: AccessKey, s: ServerSettings): string {
  return formatSsUri({
    method: key.method,
    password: clientPassword(key, s),
    host: s.hostname,
    port: key.port,
    tag: key.name,
    params: {},
  });
}

/** SIP008 online configuration for one key (https://shadowsocks.org/doc/sip008.html). */
export function sip008Json(key: AccessKey, s: ServerSettings, usage?: KeyUsage) {
  const limit = key.dataLimit ?? s.defaultDataLimit;
  const used = usage ? (limit?.window === 'total' ? usage.total : usage.last30d) : undefined;
  return {
    version: 1,
    servers: [
      {
        id: `${s.serverId}-${key.id}`,
        remarks: key.name,
        server: s.hostname,
        server_port: key.port,
        password: clientPassword(key, s),
        method: key.method,
      },
    ],
    ...(used !== undefined ? { bytes_used: used } : {}),
    ...(used !== undefined && limit ? { bytes_remaining: Math.max(0, limit.bytes - used) } : {}),
  };
}

export function clashYaml(key: AccessKey, s: ServerSettings): string {
  const name = key.name || `Pigeon ${key.id}`;
  return stringify({
    proxies: [
      {
        name,
        type: 'ss',
        server: s.hostname,
        port: key.port,
        cipher: key.method,
        password: clientPassword(key, s),
        udp: true,
      },
    ],
    'proxy-groups': [{ name: 'Pigeon', type: 'select', proxies: [name] }],
    rules: ['MATCH,Pigeon'],
  });
}

export function singBoxJson(key: AccessKey, s: ServerSettings) {
  return {
    outbounds: [
      {
        type: 'shadowsocks',
        tag: key.name || `pigeon-${key.id}`,
        server: s.hostname,
        server_port: key.port,
        method: key.method,
        password: clientPassword(key, s),
      },
    ],
  };
}

/** Outline's dynamic access key: the SIP008 URL with the ssconf:// scheme. */
export function ssconfUrl(sip008Url: string): string {
  return sip008Url.replace(/^https:\/\//, 'ssconf://');
}

export function qrTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'L' });
}
