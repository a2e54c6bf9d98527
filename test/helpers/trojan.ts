// Trojan test fixtures: a self-signed certificate for "test.example" and 127.0.0.1 (made once per
// process, also written to files for the peers), and the third-party Trojan peers as child processes
// bound to loopback: Debian's trojan (trojan-gfw 1.16) as client or server, v2ray 4's trojan in and out.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { selfSignedCertificate } from '../../src/server/trojan.js';
import { requireBinary, startProcess, waitForTcpPort, waitForUdpPort, type Proc } from './processes.js';
import { freePort, retryOnAddressInUse } from './ports.js';
import { v2ray } from './peers.js';

export const TEST_SNI = 'test.example';

export interface TestCertificate {
  cert: string;
  key: string;
  /** Uppercase hex SHA-256, for `pcs=`. */
  sha256: string;
  certFile: string;
  keyFile: string;
}

let cached: Promise<TestCertificate> | undefined;

/** One self-signed certificate for test.example and 127.0.0.1, shared by every test of the process. */
export function testCertificate(): Promise<TestCertificate> {
  cached ??= (async () => {
    const c = await selfSignedCertificate([TEST_SNI, '127.0.0.1']);
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-trojan-cert-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    writeFileSync(certFile, c.cert);
    writeFileSync(keyFile, c.key, { mode: 0o600 });
    return { ...c, certFile, keyFile };
  })();
  return cached;
}

const START_TIMEOUT_MS = 15_000;

/** Runs Debian's `trojan -c FILE` with the given config (written to a temp dir removed afterwards). */
async function trojanGfw(
  t: TestContext,
  config: Record<string, unknown>,
  port: number,
  udp: boolean,
): Promise<Proc> {
  requireBinary('trojan', 'trojan');
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-trojan-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ log_level: 2, ...config }, null, 2));
  const proc = startProcess(t, 'trojan', ['-c', file], { name: `trojan-${String(config.run_type)}` });
  await waitForTcpPort(port, START_TIMEOUT_MS, proc);
  if (udp) await waitForUdpPort(port, START_TIMEOUT_MS, proc);
  return proc;
}

/**
 * trojan-gfw as a client: a SOCKS5 proxy (CONNECT and UDP ASSOCIATE) on 127.0.0.1 for the Trojan
 * server at 127.0.0.1:serverPort, verifying its certificate against the test certificate and SNI.
 */
export async function trojanGfwClient(
  t: TestContext,
  o: { password: string; serverPort: number },
): Promise<{ port: number; proc: Proc }> {
  const cert = await testCertificate();
  return retryOnAddressInUse(async () => {
    const port = await freePort('both');
    const proc = await trojanGfw(
      t,
      {
        run_type: 'client',
        local_addr: '127.0.0.1',
        local_port: port,
        remote_addr: '127.0.0.1',
        remote_port: o.serverPort,
        password: [o.password],
        ssl: {
          verify: true,
          verify_hostname: true,
          cert: cert.certFile,
          sni: TEST_SNI,
          alpn: ['h2', 'http/1.1'],
        },
      },
      port,
      false, // it binds its UDP port only when a UDP ASSOCIATE arrives
    );
    return { port, proc };
  });
}

/** trojan-gfw as a server on 127.0.0.1 with the test certificate; non-Trojan traffic goes to `fallbackPort`. */
export async function trojanGfwServer(
  t: TestContext,
  o: { password: string; fallbackPort: number },
): Promise<{ port: number; proc: Proc }> {
  const cert = await testCertificate();
  return retryOnAddressInUse(async () => {
    const port = await freePort('tcp');
    const proc = await trojanGfw(
      t,
      {
        run_type: 'server',
        local_addr: '127.0.0.1',
        local_port: port,
        remote_addr: '127.0.0.1',
        remote_port: o.fallbackPort,
        password: [o.password],
        ssl: { cert: cert.certFile, key: cert.keyFile, alpn: ['http/1.1'] },
      },
      port,
      false,
    );
    return { port, proc };
  });
}

/** v2ray as a Trojan server on 127.0.0.1 (TLS with the test certificate) with a freedom outbound. */
export async function v2rayTrojanServer(
  t: TestContext,
  o: { password: string },
): Promise<{ port: number; proc: Proc }> {
  const cert = await testCertificate();
  return retryOnAddressInUse(async () => {
    const port = await freePort('tcp');
    const inbound = {
      listen: '127.0.0.1',
      port,
      protocol: 'trojan',
      settings: { clients: [{ password: o.password }] },
      streamSettings: {
        network: 'tcp',
        security: 'tls',
        tlsSettings: { certificates: [{ certificateFile: cert.certFile, keyFile: cert.keyFile }] },
      },
    };
    const proc = await v2ray(
      t,
      { inbounds: [inbound], outbounds: [{ protocol: 'freedom' }] },
      { tcp: [port] },
    );
    return { port, proc };
  });
}

/**
 * v2ray as a Trojan client of the server at 127.0.0.1:serverPort (SNI test.example, certificate not
 * verified: `allowInsecure`), with dokodemo-door inbounds on 127.0.0.1: `tcpPort` → 127.0.0.1:tcpTarget
 * and `udpPort` → 127.0.0.1:udpTarget.
 */
export async function v2rayTrojanTunnel(
  t: TestContext,
  o: { password: string; serverPort: number; tcpTarget: number; udpTarget: number },
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
    const outbound = {
      protocol: 'trojan',
      settings: { servers: [{ address: '127.0.0.1', port: o.serverPort, password: o.password }] },
      streamSettings: {
        network: 'tcp',
        security: 'tls',
        tlsSettings: { serverName: TEST_SNI, allowInsecure: true },
      },
    };
    const proc = await v2ray(
      t,
      {
        inbounds: [door(tcpPort, o.tcpTarget, 'tcp'), door(udpPort, o.udpTarget, 'udp')],
        outbounds: [outbound],
      },
      { tcp: [tcpPort], udp: [udpPort] },
    );
    return { tcpPort, udpPort, proc };
  });
}
