// The servers a client can use, from their share URIs: Shadowsocks (`ss://`, plain or through
// v2ray-plugin's WebSocket carrier) and Trojan (`trojan://`), each made into its Outbound.
import { parseSsUri, type SsUri } from '../wire/sip002.js';
import { parseTrojanUri, type TrojanUri } from '../wire/trojan.js';
import { WireError } from '../wire/errors.js';
import type { Outbound } from './outbound.js';
import { ShadowsocksOutbound } from './shadowsocks-outbound.js';
import { TrojanOutbound } from './trojan-outbound.js';
import { usesWebSocket, WebSocketOutbound } from './websocket-outbound.js';

/** A server's parsed URI; both kinds have host, port and tag. */
export type ServerUri = SsUri | TrojanUri;

export function isTrojan(u: ServerUri): u is TrojanUri {
  return !('method' in u);
}

/** ss:// or trojan://; throws WireError with a message for people. */
export function parseServerUri(text: string): ServerUri {
  const t = text.trim();
  if (/^trojan:\/\//i.test(t)) return parseTrojanUri(t);
  if (/^ss:\/\//i.test(t)) return parseSsUri(t);
  throw new WireError('bad-uri', 'a server is an ss:// or trojan:// URI');
}

/** The name a server goes by in groups and the control API: its tag, else host:port. */
export function serverName(u: ServerUri): string {
  return u.tag || `${u.host}:${u.port}`;
}

export function makeOutbound(u: ServerUri, connectTimeoutMs: number): Outbound {
  const opts = { connectTimeoutMs, headerDelayMs: 100 };
  if (isTrojan(u)) return new TrojanOutbound(u, opts);
  return usesWebSocket(u) ? new WebSocketOutbound(u, opts) : new ShadowsocksOutbound(u, opts);
}
