// SIP003 plugin options (`SS_PLUGIN_OPTIONS`, and the part of an ss:// URI's `plugin` parameter after the
// plugin name): `key=value;flag;key=value`, with `\` escaping `;`, `=` and `\`. Parsed the way
// shadowsocks' v2ray-plugin parses them (args.go): a key without `=` has the value "1", the first
// value of a repeated key wins. Then the options of v2ray-plugin's client, with its defaults.
import { WireError } from './errors.js';

const bad = (what: string, code = 'bad-plugin'): WireError =>
  new WireError(code, `invalid plugin options: ${what}`);

/** Splits SIP003 options into key → first value. Throws WireError on an empty key or a dangling `\`. */
export function parseSip003Options(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  // Reads up to an unescaped byte of `stops` (each pass consumes a character, so at most text.length).
  const read = (stops: string): string => {
    let s = '';
    for (; i < text.length && !stops.includes(text[i]!); i++) {
      if (text[i] === '\\') {
        i++;
        if (i >= text.length) throw bad('nothing follows the final "\\"');
      }
      s += text[i];
    }
    return s;
  };
  while (i < text.length) {
    const key = read('=;');
    if (!key) throw bad('an option has no name');
    let value = '1';
    if (text[i] === '=') {
      i++;
      value = read(';');
    }
    i++; // the ';'
    if (!out.has(key)) out.set(key, value);
  }
  return out;
}

/** Escapes a value for SIP003 options. */
export function escapeSip003(value: string): string {
  return value.replace(/[\\;=]/g, (c) => `\\${c}`);
}

/** The client-side options of shadowsocks' v2ray-plugin (websocket mode). */
export interface V2rayPluginOptions {
  /** `tls` present (whatever its value, as v2ray-plugin reads it). */
  tls: boolean;
  /** The Host header and TLS server name; v2ray-plugin's default is "cloudfront.com". */
  host: string;
  /** The WebSocket path; default "/". */
  path: string;
  /** Mux.Cool inside the WebSocket: `mux` not 0 (v2ray-plugin's default is 1: on). */
  mux: boolean;
  /** `cert`: a file with the CA (or self-signed) certificate to trust, in PEM. */
  certFile?: string;
  /** `certRaw`: the base64 body of such a certificate (v2ray-plugin wraps it in PEM markers). */
  certPem?: string;
}

const PLUGIN_NAME = /(?:^|[/\\])(?:ss-)?v2ray-plugin(?:\.exe)?$/;

/** Whether a SIP003 plugin name is v2ray-plugin (also Debian's `ss-v2ray-plugin`, or a path to it). */
export function isV2rayPlugin(name: string): boolean {
  return PLUGIN_NAME.test(name);
}

/** v2ray-plugin's client options from SIP003 text; refuses what only its server or QUIC mode would take. */
export function parseV2rayPluginOptions(text: string): V2rayPluginOptions {
  const o = parseSip003Options(text);
  if (o.has('server')) throw bad('"server" is an option of the server side, not of a client');
  const mode = o.get('mode') ?? 'websocket';
  if (mode !== 'websocket') throw bad(`v2ray-plugin mode "${mode}" is not supported (only websocket)`);
  const path = o.get('path') ?? '/';
  if (!path.startsWith('/')) throw bad(`the path must start with "/", got "${path}"`);
  const host = o.get('host') ?? 'cloudfront.com';
  if (!host || /[\s/]/.test(host)) throw bad(`"${host}" is not a host name`);
  // As v2ray-plugin: a mux value that is not a number leaves the default.
  const muxText = o.get('mux');
  const mux = muxText !== undefined && /^[-+]?\d+$/.test(muxText) ? Number(muxText) !== 0 : true;
  const out: V2rayPluginOptions = { tls: o.has('tls'), host, path, mux };
  const certFile = o.get('cert');
  if (certFile) out.certFile = certFile;
  const raw = o.get('certRaw');
  if (raw) out.certPem = `-----BEGIN CERTIFICATE-----\n${raw}\n-----END CERTIFICATE-----\n`;
  return out;
}
