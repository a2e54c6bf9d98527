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
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startProcess, waitForLine } from '../helpers/processes.js';
import { readPcap, requireCapture, startCapture, type Packet } from '../helpers/capture.js';
import { DIRECT_NAME, DOH_V4, PROXIED_NAME, SYSTEM_V4, type ScenarioResult } from './dns-leak-scenario.js';

const LISTEN_PORT = 5300; // fixed: the namespace is new and empty; tcpdump is running before it binds
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCENARIO = fileURLToPath(new URL('./dns-leak-scenario.ts', import.meta.url));

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
}

function wire(name: string): Buffer {
  return Buffer.concat(name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])));
}

test('no plaintext DNS for a proxied name leaves the machine', { timeout: 120_000 }, async (t) => {
  if (!requireCapture(t, 'the DNS leak test', ['ip', 'tcpdump'])) return;
  const ns = `pigeon-dns-${process.pid}-${randomBytes(3).toString('hex')}`;
  const etc = join('/etc/netns', ns);
  // Cleanup runs even when setup fails half way (after hooks run last-registered first, so the
  // processes started below are stopped before this removes their namespace).
  t.after(() => {
    spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    rmSync(etc, { recursive: true, force: true });
  });
  run('ip', ['netns', 'add', ns]);
  run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, 'resolv.conf'), 'nameserver 127.0.0.1\n');

  const capture = await startCapture(t, { netns: ns });

  const scenario = startProcess(
    t,
    'ip',
    ['netns', 'exec', ns, process.execPath, '--import', 'tsx', SCENARIO, String(LISTEN_PORT)],
    { name: 'dns-leak-scenario', cwd: ROOT, env: { ...process.env, PIGEON_LOG: 'silent' } },
  );
  const line = await waitForLine(scenario, /^RESULT /, 60_000);
  const result = JSON.parse(line.slice('RESULT '.length)) as ScenarioResult & { error?: string };
  assert.equal(result.error, undefined, `the scenario failed: ${result.error}`);

  const pcapBytes = await capture.stop();

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
  // Either port the listener's: the app's own queries to Pigeon.
  const packets = readPcap(pcapBytes);
  const atListener = (p: Packet): boolean => {
    const l4 = p.tcp ?? p.udp;
    return !!l4 && (l4.srcPort === LISTEN_PORT || l4.dstPort === LISTEN_PORT);
  };
  const inbound = Buffer.concat(packets.filter(atListener).map((p) => p.frame));
  const outside = Buffer.concat(packets.filter((p) => !atListener(p)).map((p) => p.frame));
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
