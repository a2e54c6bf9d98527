// The `pigeon` command (bin/pigeon.js → dist/cli/main.js) as a child process, on loopback only.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startProcess, waitForLine, waitForTcpPort, waitForUdpPort, type Proc } from './processes.js';
import { freePort, retryOnAddressInUse } from './ports.js';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/pigeon.js');
const START_TIMEOUT_MS = 20_000;

let built = false;

/** Builds dist/ with tsc if dist/cli/main.js is missing (`npm test` builds before running tests). */
export function ensureBuilt(): void {
  if (built || existsSync(join(ROOT, 'dist/cli/main.js'))) {
    built = true;
    return;
  }
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0 || !existsSync(join(ROOT, 'dist/cli/main.js'))) {
    throw new Error(
      `building pigeon (tsc -p tsconfig.json) failed:\n${r.stdout}${r.stderr}${r.error?.message ?? ''}`,
    );
  }
  built = true;
}

function pigeon(t: TestContext, name: string, args: string[]): Proc {
  ensureBuilt();
  // Whatever the process keeps (replay journals, a default store) goes to a directory of this test.
  const data = mkdtempSync(join(tmpdir(), 'pigeon-data-'));
  t.after(() => rmSync(data, { recursive: true, force: true }));
  return startProcess(t, process.execPath, [BIN, ...args], {
    name,
    cwd: ROOT,
    env: { ...process.env, PIGEON_DATA: data },
  });
}

/** The host of an ss:// URI (`ss://userinfo@host:port…`), without brackets. */
function uriHostPort(uri: string): { host: string; port: number } {
  const m = /@(\[[^\]]+\]|[^:/?#]+):(\d+)/.exec(uri);
  if (!m?.[1] || !m[2]) throw new Error(`cannot find host:port in URI ${uri}`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

export interface PigeonServer {
  uri: string;
  port: number;
  proc: Proc;
}

/** `pigeon server` on 127.0.0.1 (TCP and UDP), private destinations allowed; waits for its ss:// line. */
export async function pigeonServer(
  t: TestContext,
  o: { method: string; password: string; port?: number },
): Promise<PigeonServer> {
  return retryOnAddressInUse(
    async () => {
      const port = o.port ?? (await freePort('both'));
      const args = [
        'server',
        '--listen',
        `127.0.0.1:${port}`,
        '--method',
        o.method,
        '--password',
        o.password,
      ];
      args.push('--allow-private', '--public-host', '127.0.0.1', '--no-qr');
      const proc = pigeon(t, 'pigeon server', args);
      const uri = (await waitForLine(proc, /^ss:\/\//, START_TIMEOUT_MS)).trim();
      const where = uriHostPort(uri);
      if (where.host !== '127.0.0.1' || where.port !== port) {
        throw new Error(`pigeon server printed ${uri}, expected host 127.0.0.1 and port ${port}`);
      }
      await waitForTcpPort(port, START_TIMEOUT_MS, proc);
      await waitForUdpPort(port, START_TIMEOUT_MS, proc);
      return { uri, port, proc };
    },
    o.port === undefined ? 3 : 1,
  );
}

/** A `--forward` argument: 127.0.0.1:localPort=127.0.0.1:targetPort. */
export function forward(localPort: number, targetPort: number): string {
  return `127.0.0.1:${localPort}=127.0.0.1:${targetPort}`;
}

export interface PigeonClient {
  port: number;
  proc: Proc;
}

/** A rules file that tunnels loopback destinations (removed after the test). */
export function loopbackRules(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'rules.txt');
  writeFileSync(file, 'IP-CIDR,127.0.0.0/8,proxy\nIP-CIDR6,::1/128,proxy\nDOMAIN,localhost,proxy\n');
  return file;
}

/**
 * `pigeon client --server URI --listen 127.0.0.1:PORT [--forward …]…`; waits until the proxy port
 * and each forward's TCP and UDP ports are bound. The URI must point at loopback.
 */
export async function pigeonClient(
  t: TestContext,
  o: { uri: string; port?: number; forwards?: string[] },
): Promise<PigeonClient> {
  const host = uriHostPort(o.uri).host;
  if (host !== '127.0.0.1' && host !== '::1')
    throw new Error(`refusing a non-loopback server URI in tests: ${o.uri}`);
  const forwards = o.forwards ?? [];
  const forwardPorts = forwards.map((f) => {
    const local = /^127\.0\.0\.1:(\d+)=/.exec(f);
    if (!local?.[1]) throw new Error(`forward "${f}" must listen on 127.0.0.1:PORT`);
    return Number(local[1]);
  });
  return retryOnAddressInUse(
    async () => {
      const port = o.port ?? (await freePort('tcp'));
      // Test targets live on loopback, which every preset keeps direct: send them through the tunnel.
      const args = [
        'client',
        '--server',
        o.uri,
        '--listen',
        `127.0.0.1:${port}`,
        '--rules',
        loopbackRules(t),
      ];
      args.push('--dns', '127.0.0.1:0');
      for (const f of forwards) args.push('--forward', f);
      const proc = pigeon(t, 'pigeon client', args);
      await waitForTcpPort(port, START_TIMEOUT_MS, proc);
      for (const fp of forwardPorts) {
        await waitForTcpPort(fp, START_TIMEOUT_MS, proc);
        await waitForUdpPort(fp, START_TIMEOUT_MS, proc);
      }
      return { port, proc };
    },
    o.port === undefined && forwards.length === 0 ? 3 : 1,
  );
}

/** A SIP002 URI for a third-party server on 127.0.0.1, built here rather than by pigeon. */
export function peerUri(method: string, password: string, port: number): string {
  // SIP002: userinfo is base64url("method:password") without padding
  return `ss://${Buffer.from(`${method}:${password}`).toString('base64url')}@127.0.0.1:${port}#peer`;
}
