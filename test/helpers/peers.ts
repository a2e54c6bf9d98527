// Third-party Shadowsocks implementations as child processes, bound to loopback only:
// shadowsocks-libev (ss-server, ss-local, ss-tunnel) and v2ray 4.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { TestContext } from 'node:test';
import { requireBinary, startProcess, waitForTcpPort, waitForUdpPort, type Proc } from './processes.js';
import { freePort, retryOnAddressInUse } from './ports.js';

export const SIP004_METHODS = ['aes-128-gcm', 'aes-256-gcm', 'chacha20-ietf-poly1305'] as const;
export type Sip004Method = (typeof SIP004_METHODS)[number];

const START_TIMEOUT_MS = 15_000;

/** A random SIP004 password with a few characters that need escaping in URIs and JSON. */
export function randomPassword(): string {
  return `${randomBytes(12).toString('base64url')}-${randomBytes(6).toString('hex')}`;
}

export interface Peer {
  port: number;
  proc: Proc;
}

async function ready(proc: Proc, port: number, udp: boolean): Promise<void> {
  await waitForTcpPort(port, START_TIMEOUT_MS, proc);
  if (udp) await waitForUdpPort(port, START_TIMEOUT_MS, proc);
}

/** `ss-server` (shadowsocks-libev) on 127.0.0.1, TCP and UDP. */
export async function libevServer(
  t: TestContext,
  o: { method: Sip004Method; password: string; port?: number },
): Promise<Peer> {
  requireBinary('ss-server', 'shadowsocks-libev');
  return retryOnAddressInUse(
    async () => {
      const port = o.port ?? (await freePort('both'));
      const args = ['-s', '127.0.0.1', '-p', `${port}`, '-k', o.password, '-m', o.method, '-u'];
      const proc = startProcess(t, 'ss-server', args, { name: 'ss-server' });
      await ready(proc, port, true);
      return { port, proc };
    },
    o.port === undefined ? 3 : 1,
  );
}

/** `ss-local` (shadowsocks-libev): a SOCKS5 proxy on 127.0.0.1 for the server at 127.0.0.1:serverPort. */
export async function libevLocal(
  t: TestContext,
  o: { method: Sip004Method; password: string; serverPort: number; udp?: boolean },
): Promise<Peer> {
  requireBinary('ss-local', 'shadowsocks-libev');
  return retryOnAddressInUse(async () => {
    const port = await freePort('both');
    const args = ['-s', '127.0.0.1', '-p', `${o.serverPort}`, '-b', '127.0.0.1', '-l', `${port}`];
    args.push('-k', o.password, '-m', o.method);
    if (o.udp) args.push('-u');
    const proc = startProcess(t, 'ss-local', args, { name: 'ss-local' });
    await ready(proc, port, o.udp ?? false);
    return { port, proc };
  });
}

/** `ss-tunnel` (shadowsocks-libev): 127.0.0.1:port (TCP and UDP) → the server → 127.0.0.1:targetPort. */
export async function libevTunnel(
  t: TestContext,
  o: { method: Sip004Method; password: string; serverPort: number; targetPort: number },
): Promise<Peer> {
  requireBinary('ss-tunnel', 'shadowsocks-libev');
  return retryOnAddressInUse(async () => {
    const port = await freePort('both');
    const args = ['-s', '127.0.0.1', '-p', `${o.serverPort}`, '-b', '127.0.0.1', '-l', `${port}`];
    args.push('-L', `127.0.0.1:${o.targetPort}`, '-k', o.password, '-m', o.method, '-u');
    const proc = startProcess(t, 'ss-tunnel', args, { name: 'ss-tunnel' });
    await ready(proc, port, true);
    return { port, proc };
  });
}

/** v2ray 4.34 calls IETF ChaCha20-Poly1305 "chacha20-poly1305" (it also accepts the libev name). */
export function v2rayMethod(m: Sip004Method): string {
  return m === 'chacha20-ietf-poly1305' ? 'chacha20-poly1305' : m;
}

/** Runs `v2ray -config FILE` with the given v4 JSON config (written to a temp dir removed afterwards). */
export async function v2ray(
  t: TestContext,
  config: Record<string, unknown>,
  waitFor: { tcp?: number[]; udp?: number[] },
): Promise<Proc> {
  requireBinary('v2ray', 'v2ray');
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-v2ray-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ log: { loglevel: 'warning' }, ...config }, null, 2));
  // v2ray looks for geoip/geosite data next to itself or in V2RAY_LOCATION_ASSET; we use neither.
  const proc = startProcess(t, 'v2ray', ['-config', file], {
    name: 'v2ray',
    env: { ...process.env, V2RAY_LOCATION_ASSET: dir },
  });
  for (const p of waitFor.tcp ?? []) await waitForTcpPort(p, START_TIMEOUT_MS, proc);
  for (const p of waitFor.udp ?? []) await waitForUdpPort(p, START_TIMEOUT_MS, proc);
  return proc;
}

/**
 * v2ray as a Shadowsocks client of the server at 127.0.0.1:serverPort, with two dokodemo-door
 * inbounds on 127.0.0.1: `tcpPort` (TCP) → 127.0.0.1:tcpTarget and `udpPort` (UDP) → 127.0.0.1:udpTarget.
 */
export async function v2rayTunnel(
  t: TestContext,
  o: { method: Sip004Method; password: string; serverPort: number; tcpTarget: number; udpTarget: number },
): Promise<{ tcpPort: number; udpPort: number; proc: Proc }> {
  return retryOnAddressInUse(async () => {
    const tcpPort = await freePort('tcp');
    const udpPort = await freePort('udp');
    const door = (listen: number, target: number, network: string) => ({
      listen: '127.0.0.1',
      port: listen,
      protocol: 'dokodemo-door',
      settings: { address: '127.0.0.1', port: target, network },
    });
    const server = {
      address: '127.0.0.1',
      port: o.serverPort,
      method: v2rayMethod(o.method),
      password: o.password,
    };
    const proc = await v2ray(
      t,
      {
        inbounds: [door(tcpPort, o.tcpTarget, 'tcp'), door(udpPort, o.udpTarget, 'udp')],
        outbounds: [{ protocol: 'shadowsocks', settings: { servers: [server] } }],
      },
      { tcp: [tcpPort], udp: [udpPort] },
    );
    return { tcpPort, udpPort, proc };
  });
}

/** v2ray as a Shadowsocks server on 127.0.0.1 (TCP and UDP) with a freedom outbound. */
export async function v2rayServer(
  t: TestContext,
  o: { method: Sip004Method; password: string },
): Promise<Peer> {
  return retryOnAddressInUse(async () => {
    const port = await freePort('both');
    const inbound = {
      listen: '127.0.0.1',
      port,
      protocol: 'shadowsocks',
      settings: { method: v2rayMethod(o.method), password: o.password, network: 'tcp,udp' },
    };
    const proc = await v2ray(
      t,
      { inbounds: [inbound], outbounds: [{ protocol: 'freedom' }] },
      { tcp: [port], udp: [port] },
    );
    return { port, proc };
  });
}
