// The DNS leak proof. In a fresh network namespace (loopback only; /etc/netns/NS/resolv.conf makes a
// fake plain DNS on 127.0.0.1:53 the "system resolver") tcpdump captures every packet while
// dns-leak-scenario.ts runs Pigeon's DNS listener, a real Pigeon Shadowsocks server and a DoH server,
// and asks the listener for a proxied and a direct name over UDP and TCP.
//
// Everything shares one loopback, so the capture also holds the app's own queries to the listener
// (that hop never leaves the machine: it is the app talking to Pigeon). The test splits the capture
// by the listener's port: those packets must show the proxied name (proof that the capture sees
// plaintext DNS names at all), and every other packet — what would cross the network — must show the
// direct name in DNS wire form and must not show the proxied name in any form.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startProcess, waitForLine } from '../helpers/processes.js';
import { DIRECT_NAME, DOH_V4, PROXIED_NAME, SYSTEM_V4, type ScenarioResult } from './dns-leak-scenario.js';

const LISTEN_PORT = 5300; // fixed: the namespace is new and empty; tcpdump is running before it binds
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIO = fileURLToPath(new URL('./dns-leak-scenario.ts', import.meta.url));

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeout: 5000 }).status === 0;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

function wire(name: string): Buffer {
  return Buffer.concat(name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])));
}

interface Packet {
  /** Either port is the listener's: the app's own queries to Pigeon. */
  inbound: boolean;
  data: Buffer;
}

/** The packets of a pcap file with Ethernet framing (tcpdump -i lo), each tagged by its ports. */
function readPcap(file: Buffer, listenPort: number): Packet[] {
  assert.ok(file.length >= 24, 'the capture file has no header');
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = file.readUInt32BE(0) === 0xa1b2c3d4 || file.readUInt32BE(0) === 0xa1b23c4d;
  assert.ok(le || be, `not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  assert.equal(u32(20), 1, 'expected Ethernet link type (tcpdump -i lo)');
  const out: Packet[] = [];
  for (let o = 24; o + 16 <= file.length && out.length < 1_000_000;) {
    const len = u32(o + 8);
    const data = file.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    let inbound = false;
    const ethertype = data.length >= 14 ? data.readUInt16BE(12) : 0;
    let l4 = -1;
    let proto = -1;
    if (ethertype === 0x0800 && data.length >= 34) {
      l4 = 14 + (data[14]! & 0x0f) * 4;
      proto = data[23]!;
    } else if (ethertype === 0x86dd && data.length >= 54) {
      l4 = 54;
      proto = data[20]!;
    }
    if ((proto === 6 || proto === 17) && data.length >= l4 + 4) {
      inbound = data.readUInt16BE(l4) === listenPort || data.readUInt16BE(l4 + 2) === listenPort;
    }
    out.push({ inbound, data });
  }
  return out;
}

function requireLab(t: TestContext): boolean {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const cmd of ['ip', 'tcpdump']) if (!have(cmd)) missing.push(`the "${cmd}" program`);
  if (missing.length === 0) return true;
  const why = `the DNS leak test needs ${missing.join(', ')} (network namespace and packet capture)`;
  if (process.env.CI && !/^(0|false)$/i.test(process.env.CI))
    throw new Error(`${why}; in CI this is a failure, not a skip`);
  t.skip(`${why}; skipped outside CI`);
  return false;
}

test('no plaintext DNS for a proxied name leaves the machine', { timeout: 120_000 }, async (t) => {
  if (!requireLab(t)) return;
  const ns = `pigeon-dns-${process.pid}-${randomBytes(3).toString('hex')}`;
  const etc = join('/etc/netns', ns);
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-dns-leak-'));
  const pcap = join(dir, 'capture.pcap');
  // Cleanup runs even when setup fails half way (after hooks run last-registered first, so the
  // processes started below are stopped before this removes their namespace).
  t.after(() => {
    spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    rmSync(etc, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  run('ip', ['netns', 'add', ns]);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');

  const tcpdump = startProcess(
    t,
    'ip',
    // --immediate-mode: packets reach tcpdump at once, not in TPACKET_V3 blocks that a stop discards.
    [
      'netns',
      'exec',
      ns,
      'tcpdump',
      '-i',
      'lo',
      '-n',
      '-s',
      '0',
      '--immediate-mode',
      '-U',
      '-Z',
      'root',
      '-w',
      pcap,
    ],
    { name: 'tcpdump' },
  );
  await waitForLine(tcpdump, /listening on lo/, 15_000);

  const scenario = startProcess(
    t,
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', SCENARIO, String(LISTEN_PORT)],
    { name: 'dns-leak-scenario', cwd: ROOT, env: { ...process.env, PIGEON_LOG: 'silent' } },
  );
  const line = await waitForLine(scenario, /^RESULT /, 60_000);
  const result = JSON.parse(line.slice('RESULT '.length)) as ScenarioResult & { error?: string };
  assert.equal(result.error, undefined, `the scenario failed: ${result.error}`);

  // Stop the capture once the file has stopped growing, and let tcpdump write its last packets.
  let size = -1;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = statSync(pcap, { throwIfNoEntry: false })?.size ?? 0;
    if (now === size && now > 24) break;
    size = now;
  }
  tcpdump.child.kill('SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([
    tcpdump.exited,
    new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000))),
  ]);
  clearTimeout(timer);
  assert.ok(stopped, 'tcpdump did not stop within 10 s of SIGINT');

  // What the resolvers saw, and that both names did resolve, over UDP and TCP.
  assert.deepEqual(result.systemServers, ['127.0.0.1'], 'the namespace resolv.conf is not in effect');
  for (const via of ['udp', 'tcp'] as const) {
    assert.ok(result[via].proxied.length > 0, `${via}: the proxied name did not resolve`);
    assert.ok(result[via].direct.length > 0, `${via}: the direct name did not resolve`);
  }
  assert.ok(
    result.udp.proxied.every((ip) => ip.startsWith(`${DOH_V4}.`)),
    'proxied answer not from DoH',
  );
  assert.ok(
    result.udp.direct.every((ip) => ip.startsWith(`${SYSTEM_V4}.`)),
    'direct answer not from the system DNS',
  );
  assert.ok(
    result.tcp.proxied.every((ip) => ip.startsWith('2001:db8:d:')),
    'proxied AAAA not from DoH',
  );
  assert.deepEqual([...new Set(result.systemDnsSaw)], [DIRECT_NAME], 'the system DNS heard another name');
  assert.deepEqual([...new Set(result.dohSaw)], [PROXIED_NAME]);
  // Both queries went by DoH through the tunnel, on one kept-alive connection or more.
  assert.ok(result.tunnelDials >= 1, 'DoH was not dialled through the Shadowsocks tunnel');

  // The capture.
  const packets = readPcap(readFileSync(pcap), LISTEN_PORT);
  const inbound = Buffer.concat(packets.filter((p) => p.inbound).map((p) => p.data));
  const outside = Buffer.concat(packets.filter((p) => !p.inbound).map((p) => p.data));
  t.diagnostic(`captured ${packets.length} packets (${inbound.length} bytes to/from the listener)`);
  const lower = (b: Buffer): string => b.toString('latin1').toLowerCase();
  assert.ok(
    inbound.includes(wire(PROXIED_NAME)),
    'control: the capture does not show the app query to Pigeon',
  );
  assert.ok(outside.includes(wire(DIRECT_NAME)), 'the direct name is not in the capture in DNS wire form');
  assert.ok(lower(outside).includes('\x05baidu\x03com'));
  const o = lower(outside);
  for (const form of [lower(wire(PROXIED_NAME)), PROXIED_NAME, 'telegram']) {
    assert.ok(!o.includes(form), `the proxied name left Pigeon in plaintext (found ${JSON.stringify(form)})`);
  }
});
