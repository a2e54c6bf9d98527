// WebSocket carrier helpers: self-signed certificates, Pigeon's WebSocket inbound in-process, ss://
// URIs with the v2ray-plugin parameter, and shadowsocks-libev with Debian's ss-v2ray-plugin as a
// SIP003 plugin (server and client), all on loopback.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { generate } from 'selfsigned';
import { SaltPool } from '../../src/crypto/replay.js';
import { silentLog } from '../../src/log.js';
import { ConnectionRegistry } from '../../src/server/connections.js';
import { StaticUsers } from '../../src/server/index.js';
import { KeyRing } from '../../src/server/key-ring.js';
import type { TcpInboundOptions } from '../../src/server/shadowsocks-tcp.js';
import type { ServerEvents } from '../../src/server/users.js';
import {
  startWebSocketInbound,
  type WebSocketInbound,
  type WebSocketInboundConfig,
} from '../../src/server/websocket-inbound.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import type { MethodName } from '../../src/wire/shadowsocks-methods.js';
import { escapeSip003 } from '../../src/wire/sip003.js';
import {
  requireBinary,
  startProcess,
  waitForLine,
  waitForTcpPort,
  waitForUdpPort,
  type Proc,
} from './processes.js';
import { freePort, retryOnAddressInUse } from './ports.js';

export interface TestCert {
  cert: string;
  key: string;
  /** The certificate written to a file (for v2ray-plugin's `cert` option). */
  certFile: string;
  keyFile: string;
}

/** A self-signed EC certificate for `host` (and 127.0.0.1), with files removed after the test. */
export async function selfSignedCert(t: TestContext, host: string): Promise<TestCert> {
  const pems = await generate([{ name: 'commonName', value: host }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 3_600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: host },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  return { cert: pems.cert, key: pems.private, certFile, keyFile };
}

export interface EventCounts {
  opened: number;
  closed: number;
  authFailures: string[];
  dialErrors: string[];
}

/** The Shadowsocks handler's options for one key (private destinations allowed), with counted events. */
export function shadowsocksOptions(
  method: MethodName,
  password: string,
  o: { handshakeTimeoutMs?: number; idleTimeoutMs?: number } = {},
): { options: TcpInboundOptions; counts: EventCounts } {
  const counts: EventCounts = { opened: 0, closed: 0, authFailures: [], dialErrors: [] };
  const events: ServerEvents = {
    bytes: () => undefined,
    connectionOpened: () => counts.opened++,
    connectionClosed: () => counts.closed++,
    authFailure: (r) => counts.authFailures.push(r),
    connectionError: (k) => counts.dialErrors.push(k),
  };
  const users = new StaticUsers([{ id: 'k1', method, secret: password, port: 0 }]);
  const ring = new KeyRing(users.keys(), () => undefined);
  const options: TcpInboundOptions = {
    ring: () => ring,
    users,
    events,
    registry: new ConnectionRegistry(),
    saltPools: { aead: new SaltPool(3_600_000, 10_000), '2022': new SaltPool(60_000, 10_000) },
    policy: { allowPrivate: true, connectTimeoutMs: 5000 },
    handshakeTimeoutMs: o.handshakeTimeoutMs ?? 10_000,
    idleTimeoutMs: o.idleTimeoutMs ?? 30_000,
    log: silentLog,
  };
  return { options, counts };
}

export interface TestWsInbound extends WebSocketInbound {
  counts: EventCounts;
}

/** Pigeon's WebSocket inbound on 127.0.0.1 (closed after the test). */
export async function pigeonWsInbound(
  t: TestContext,
  o: {
    method: MethodName;
    password: string;
    path: string;
    host?: string;
    tls?: TestCert;
    handshakeTimeoutMs?: number;
  } & Partial<Omit<WebSocketInboundConfig, 'shadowsocks' | 'tls' | 'path' | 'host'>>,
): Promise<TestWsInbound> {
  const { options, counts } = shadowsocksOptions(o.method, o.password, o);
  const inbound = await startWebSocketInbound({
    ...o,
    listen: o.listen ?? makeAddress('127.0.0.1', 0),
    tls: o.tls ? { cert: o.tls.cert, key: o.tls.key } : undefined,
    shadowsocks: options,
  });
  t.after(() => inbound.close());
  return { ...inbound, counts };
}

/** An ss:// URI for 127.0.0.1:port with a v2ray-plugin parameter built from `opts` (escaped). */
export function pluginUri(
  method: string,
  password: string,
  port: number,
  opts: Record<string, string | true>,
): string {
  const text = Object.entries(opts)
    .map(([k, v]) => (v === true ? k : `${k}=${escapeSip003(v)}`))
    .join(';');
  const userinfo = Buffer.from(`${method}:${password}`).toString('base64url');
  return `ss://${userinfo}@127.0.0.1:${port}/?plugin=${encodeURIComponent(`v2ray-plugin;${text}`)}#ws`;
}

export interface PluginPeer {
  port: number;
  proc: Proc;
}

/** What the plugin (v2ray core inside) prints once it listens; ss-local/ss-server pass its output on. */
const PLUGIN_STARTED = /V2Ray [\d.]+ started/;

function pluginArgs(opts: string): string[] {
  return ['--plugin', requireBinary('ss-v2ray-plugin', 'shadowsocks-v2ray-plugin'), '--plugin-opts', opts];
}

/**
 * `ss-server --plugin ss-v2ray-plugin --plugin-opts "server;…"`: the plugin listens on 127.0.0.1:port
 * (TCP); with `udp`, ss-server itself takes plain Shadowsocks UDP on the same port, as SIP003 has it.
 */
export async function libevPluginServer(
  t: TestContext,
  o: { method: string; password: string; pluginOpts: string; udp?: boolean },
): Promise<PluginPeer> {
  requireBinary('ss-server', 'shadowsocks-libev');
  return retryOnAddressInUse(async () => {
    const port = await freePort(o.udp ? 'both' : 'tcp');
    const args = ['-s', '127.0.0.1', '-p', `${port}`, '-k', o.password, '-m', o.method];
    if (o.udp) args.push('-u');
    const proc = startProcess(t, 'ss-server', [...args, ...pluginArgs(o.pluginOpts)], {
      name: 'ss-server+v2ray-plugin',
    });
    await waitForLine(proc, PLUGIN_STARTED, 15_000);
    await waitForTcpPort(port, 15_000, proc);
    if (o.udp) await waitForUdpPort(port, 15_000, proc);
    return { port, proc };
  });
}

/** `ss-local --plugin ss-v2ray-plugin --plugin-opts "…"`: SOCKS5 on 127.0.0.1:port. */
export async function libevPluginLocal(
  t: TestContext,
  o: { method: string; password: string; serverPort: number; pluginOpts: string },
): Promise<PluginPeer> {
  requireBinary('ss-local', 'shadowsocks-libev');
  return retryOnAddressInUse(async () => {
    const port = await freePort('tcp');
    const args = ['-s', '127.0.0.1', '-p', `${o.serverPort}`, '-b', '127.0.0.1', '-l', `${port}`];
    args.push('-k', o.password, '-m', o.method);
    const proc = startProcess(t, 'ss-local', [...args, ...pluginArgs(o.pluginOpts)], {
      name: 'ss-local+v2ray-plugin',
    });
    await waitForLine(proc, PLUGIN_STARTED, 15_000); // ss-local listens before its plugin does
    await waitForTcpPort(port, 15_000, proc);
    return { port, proc };
  });
}

/**
 * Writes `data` through any Duplex and collects what comes back: until that many bytes (default), or
 * until the peer ends the stream (`untilEnd`, for targets that close first). Destroys `s` at the end.
 */
export function echoDuplex(
  s: Duplex,
  data: Buffer,
  o: { untilEnd?: boolean; ms?: number } = {},
): Promise<Buffer> {
  const ms = o.ms ?? 15_000;
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    const finish = (e?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (e) reject(e);
      else resolve(Buffer.concat(got));
    };
    const timer = setTimeout(
      () => finish(new Error(`echo: got ${n} of ${data.length} bytes within ${ms} ms`)),
      ms,
    );
    s.on('data', (d: Buffer) => {
      got.push(d);
      n += d.length;
      if (!o.untilEnd && n >= data.length) finish();
    });
    s.on('end', () =>
      o.untilEnd ? finish() : finish(new Error(`echo: ended after ${n} of ${data.length} bytes`)),
    );
    s.on('error', (e) => finish(new Error(`echo: ${e.message} after ${n} of ${data.length} bytes`)));
    s.resume();
    s.write(data);
  });
}
