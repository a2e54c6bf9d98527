// The three systems under test, each as a Shadowsocks server + client pair on 127.0.0.1 with the same
// ports offered: a TCP forward to the iperf3 server, a TCP+UDP forward to the echo server (like
// ss-tunnel) and a SOCKS5 port. "direct" is the no-tunnel baseline (the forwards are the targets).
//   pigeon: `pigeon server` + one `pigeon client` (--listen for SOCKS, two --forward)
//   libev:  ss-server -u + ss-tunnel (iperf3) + ss-tunnel -u (echo) + ss-local (SOCKS)
//   v2ray:  v2ray shadowsocks inbound/freedom + v2ray with two dokodemo-door inbounds, a socks inbound and
//           a shadowsocks outbound
// Idle timeouts: Pigeon's and v2ray's defaults are 300 s; libev's is 60 s, so libev gets -t 300.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, start, waitLine, waitPort, type Proc } from './procs.js';

export const ROOT = join(import.meta.dirname, '..', '..');
export const PIGEON_BIN = join(ROOT, 'bin', 'pigeon.js');

export type SystemName = 'pigeon' | 'libev' | 'v2ray' | 'direct' | 'node-relay';
export const SYSTEMS: SystemName[] = ['pigeon', 'libev', 'v2ray'];
export const LABEL: Record<SystemName, string> = {
  pigeon: 'Pigeon',
  libev: 'shadowsocks-libev',
  v2ray: 'v2ray',
  direct: 'direct (no tunnel)',
  'node-relay': 'two plain Node.js relays',
};

/** Reference rows, not systems under test: no ratio target applies to them. */
export const BASELINES: SystemName[] = ['direct', 'node-relay'];

export type Method = 'aes-256-gcm' | 'chacha20-ietf-poly1305' | '2022-blake3-aes-128-gcm';
export const METHODS: Method[] = ['aes-256-gcm', 'chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm'];

/** The cipher each system runs for a method row: libev and v2ray 4 have no 2022 methods. */
export function cipherFor(system: SystemName, m: Method): string {
  if (system === 'direct' || system === 'node-relay') return '-';
  if (m === '2022-blake3-aes-128-gcm' && system !== 'pigeon') return 'aes-128-gcm';
  if (m === 'chacha20-ietf-poly1305' && system === 'v2ray') return 'chacha20-poly1305';
  return m;
}

export interface Targets {
  echo: number;
  http: number;
  iperf: number;
}

export interface Setup {
  system: SystemName;
  method: Method;
  cipher: string;
  /** TCP forward to the iperf3 server. */
  iperfPort: number;
  /** TCP+UDP forward to the echo server. */
  echoPort: number;
  /** SOCKS5 port (null: none, the direct baseline). */
  socksPort: number | null;
  server: Proc | null;
  /** The client process carrying the iperf3 forward, and the one carrying the echo forward. */
  iperfClient: Proc | null;
  echoClient: Proc | null;
  stop(): Promise<void>;
}

function secretFor(m: Method): string {
  return m.startsWith('2022-')
    ? randomBytes(16).toString('base64')
    : `bench-${randomBytes(9).toString('base64url')}`;
}

async function retry<T>(what: string, f: () => Promise<T>, tries = 3): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      return await f();
    } catch (e) {
      last = e;
    }
  }
  throw new Error(`${what}: ${String(last)}`);
}

async function stopAllOf(procs: Proc[]): Promise<void> {
  await Promise.all(procs.map((p) => p.stop()));
}

/** Starts procs via `f`; on failure stops whatever it started. */
async function guarded(f: (procs: Proc[]) => Promise<Setup>): Promise<Setup> {
  const procs: Proc[] = [];
  try {
    return await f(procs);
  } catch (e) {
    await stopAllOf(procs);
    throw e;
  }
}

async function startPigeon(m: Method, t: Targets): Promise<Setup> {
  return guarded(async (procs) => {
    const sp = await freePort();
    const secret = secretFor(m);
    const server = start('pigeon server', process.execPath, [
      PIGEON_BIN,
      'server',
      '--listen',
      `127.0.0.1:${sp}`,
      '--method',
      m,
      '--password',
      secret,
      '--allow-private',
      '--public-host',
      '127.0.0.1',
      '--no-qr',
    ]);
    procs.push(server);
    let uri = await waitLine(server, /^ss:\/\//, 20_000);
    // Never let a client dial anything but loopback: use our own URI if the printed one differs.
    if (!uri.includes(`@127.0.0.1:${sp}`)) {
      uri = `ss://${Buffer.from(`${m}:${secret}`).toString('base64url')}@127.0.0.1:${sp}`;
    }
    await waitPort(sp, server, { udp: true, timeoutMs: 20_000 });
    const [socks, ip, ep] = [await freePort(), await freePort(), await freePort()];
    const client = start('pigeon client', process.execPath, [
      PIGEON_BIN,
      'client',
      '--server',
      uri,
      '--listen',
      `127.0.0.1:${socks}`,
      '--forward',
      `127.0.0.1:${ip}=127.0.0.1:${t.iperf}`,
      '--forward',
      `127.0.0.1:${ep}=127.0.0.1:${t.echo}`,
    ]);
    procs.push(client);
    await waitPort(socks, client, { timeoutMs: 20_000 });
    await waitPort(ip, client);
    await waitPort(ep, client, { udp: true });
    return {
      system: 'pigeon',
      method: m,
      cipher: cipherFor('pigeon', m),
      iperfPort: ip,
      echoPort: ep,
      socksPort: socks,
      server,
      iperfClient: client,
      echoClient: client,
      stop: () => stopAllOf(procs),
    };
  });
}

async function startLibev(m: Method, t: Targets): Promise<Setup> {
  const cipher = cipherFor('libev', m);
  return guarded(async (procs) => {
    const sp = await freePort();
    const pw = secretFor('aes-256-gcm');
    const common = ['-k', pw, '-m', cipher, '-t', '300'];
    const server = start('ss-server', 'ss-server', ['-s', '127.0.0.1', '-p', `${sp}`, '-u', ...common]);
    procs.push(server);
    await waitPort(sp, server, { udp: true });
    const cl = ['-s', '127.0.0.1', '-p', `${sp}`, '-b', '127.0.0.1'];
    const [ip, ep, socks] = [await freePort(), await freePort(), await freePort()];
    const iperfTunnel = start('ss-tunnel (iperf3)', 'ss-tunnel', [
      ...cl,
      '-l',
      `${ip}`,
      '-L',
      `127.0.0.1:${t.iperf}`,
      ...common,
    ]);
    procs.push(iperfTunnel);
    const echoTunnel = start('ss-tunnel (echo)', 'ss-tunnel', [
      ...cl,
      '-l',
      `${ep}`,
      '-L',
      `127.0.0.1:${t.echo}`,
      '-u',
      ...common,
    ]);
    procs.push(echoTunnel);
    const local = start('ss-local', 'ss-local', [...cl, '-l', `${socks}`, ...common]);
    procs.push(local);
    await waitPort(ip, iperfTunnel);
    await waitPort(ep, echoTunnel, { udp: true });
    await waitPort(socks, local);
    return {
      system: 'libev',
      method: m,
      cipher,
      iperfPort: ip,
      echoPort: ep,
      socksPort: socks,
      server,
      iperfClient: iperfTunnel,
      echoClient: echoTunnel,
      stop: () => stopAllOf(procs),
    };
  });
}

function startV2rayProc(name: string, dir: string, config: Record<string, unknown>): Proc {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ log: { loglevel: 'warning' }, ...config }, null, 2));
  // v2ray looks for geoip/geosite data in V2RAY_LOCATION_ASSET; the configs use none.
  return start(`v2ray ${name}`, 'v2ray', ['-config', file], { ...process.env, V2RAY_LOCATION_ASSET: dir });
}

async function startV2ray(m: Method, t: Targets): Promise<Setup> {
  const cipher = cipherFor('v2ray', m);
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-bench-v2ray-'));
  const cleanDir = (): void => rmSync(dir, { recursive: true, force: true });
  try {
    return await guarded(async (procs) => {
      const sp = await freePort();
      const pw = secretFor('aes-256-gcm');
      const server = startV2rayProc('server', dir, {
        inbounds: [
          {
            listen: '127.0.0.1',
            port: sp,
            protocol: 'shadowsocks',
            settings: { method: cipher, password: pw, network: 'tcp,udp' },
          },
        ],
        outbounds: [{ protocol: 'freedom' }],
      });
      procs.push(server);
      const [ip, ep, socks] = [await freePort(), await freePort(), await freePort()];
      const door = (port: number, target: number, network: string) => ({
        listen: '127.0.0.1',
        port,
        protocol: 'dokodemo-door',
        settings: { address: '127.0.0.1', port: target, network },
      });
      const client = startV2rayProc('client', dir, {
        inbounds: [
          door(ip, t.iperf, 'tcp'),
          door(ep, t.echo, 'tcp,udp'),
          { listen: '127.0.0.1', port: socks, protocol: 'socks', settings: { auth: 'noauth', udp: false } },
        ],
        outbounds: [
          {
            protocol: 'shadowsocks',
            settings: { servers: [{ address: '127.0.0.1', port: sp, method: cipher, password: pw }] },
          },
        ],
      });
      procs.push(client);
      await waitPort(sp, server, { udp: true });
      await waitPort(ip, client);
      await waitPort(ep, client, { udp: true });
      await waitPort(socks, client);
      return {
        system: 'v2ray',
        method: m,
        cipher,
        iperfPort: ip,
        echoPort: ep,
        socksPort: socks,
        server,
        iperfClient: client,
        echoClient: client,
        stop: async () => {
          await stopAllOf(procs);
          cleanDir();
        },
      };
    });
  } catch (e) {
    cleanDir();
    throw e;
  }
}

export function startSetup(system: SystemName, m: Method, t: Targets): Promise<Setup> {
  if (system === 'direct') {
    return Promise.resolve({
      system,
      method: m,
      cipher: '-',
      iperfPort: t.iperf,
      echoPort: t.echo,
      socksPort: null,
      server: null,
      iperfClient: null,
      echoClient: null,
      stop: async () => {},
    });
  }
  if (system === 'node-relay') return retry('starting the node relays', () => startNodeRelay(t));
  const f = system === 'pigeon' ? startPigeon : system === 'libev' ? startLibev : startV2ray;
  return retry(`starting ${system} (${m})`, () => f(m, t));
}

/**
 * The floor of any Node.js tunnel for the latency figure: two plain TCP relays in a row (bench/gen/
 * relay.ts: no encryption, no protocol), shaped like a tunnel's client and server. Echo only.
 */
async function startNodeRelay(t: Targets): Promise<Setup> {
  return guarded(async (procs) => {
    const [a, b] = [await freePort(), await freePort()];
    const relay = join(ROOT, 'bench', 'gen', 'relay.ts');
    const far = start('node relay (server side)', process.execPath, [
      '--import',
      'tsx',
      relay,
      `${b}`,
      `${t.echo}`,
    ]);
    procs.push(far);
    await waitPort(b, far, { timeoutMs: 20_000 });
    const near = start('node relay (client side)', process.execPath, [
      '--import',
      'tsx',
      relay,
      `${a}`,
      `${b}`,
    ]);
    procs.push(near);
    await waitPort(a, near, { timeoutMs: 20_000 });
    return {
      system: 'node-relay',
      method: 'aes-256-gcm',
      cipher: '-',
      iperfPort: a,
      echoPort: a,
      socksPort: null,
      server: far,
      iperfClient: near,
      echoClient: near,
      stop: () => stopAllOf(procs),
    };
  });
}
