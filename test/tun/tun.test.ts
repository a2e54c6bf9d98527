// Full-VPN mode in a lab of network namespaces (nothing here touches the host's own namespace):
//
//   client ns ── c0 10.77.1.1 ═══ 10.77.1.2 s0 ── server ns ── s1 10.77.2.1 ═══ 10.77.2.2 d0 ── dest ns
//   pigeon client --tun                    pigeon server (forwards IP)             HTTP, UDP echo, DoH
//
// The server namespace also routes between the two links, so anything the client host sent in the
// clear would reach the destination: the destination's capture is the leak detector. The client's
// rules tunnel 10.77.2.0/24 (a private range, which the presets would otherwise keep direct).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { startProcess, waitForLine, type Proc } from '../helpers/processes.js';
import { ensureBuilt } from '../helpers/pigeon.js';
import { readPcap, type Packet } from '../helpers/capture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const BIN = join(ROOT, 'bin/pigeon.js');
const SERVICES = fileURLToPath(new URL('./lab-services.ts', import.meta.url));
const PROBE = fileURLToPath(new URL('./lab-probe.mjs', import.meta.url));
const DEST = '10.77.2.2';
const DEST6 = 'fd77:2::2';
const SERVER = '10.77.1.2';
const SERVER_PORT = 8388;
/** A resolver address on the destination's subnet where nothing listens: only Pigeon can answer it. */
const NAMESERVER = '10.77.2.53';
const METHOD = 'chacha20-ietf-poly1305';

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeout: 5000 }).status === 0;
}

function requireLab(t: TestContext): boolean {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const cmd of ['ip', 'nft', 'tcpdump', 'curl']) if (!have(cmd)) missing.push(`the "${cmd}" program`);
  try {
    statSync('/dev/net/tun');
  } catch {
    missing.push('/dev/net/tun');
  }
  if (missing.length === 0) return true;
  const why = `the TUN lab needs ${missing.join(', ')} (network namespaces, a TUN device, packet capture)`;
  if (process.env.CI && !/^(0|false)$/i.test(process.env.CI))
    throw new Error(`${why}; in CI this is a failure, not a skip`);
  t.skip(`${why}; skipped outside CI`);
  return false;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

/** Runs a command without blocking the event loop; never rejects. */
function sh(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

interface Lab {
  client: string;
  server: string;
  dest: string;
  dir: string;
}

function makeLab(t: TestContext): Lab {
  const id = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const lab: Lab = {
    client: `pg-tunc-${id}`,
    server: `pg-tuns-${id}`,
    dest: `pg-tund-${id}`,
    dir: mkdtempSync(join(tmpdir(), 'pigeon-tun-')),
  };
  // Registered first, so it runs after every process of the test has been stopped.
  t.after(() => {
    for (const ns of [lab.client, lab.server, lab.dest]) {
      spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
      rmSync(join('/etc/netns', ns), { recursive: true, force: true });
    }
    rmSync(lab.dir, { recursive: true, force: true });
  });
  for (const ns of [lab.client, lab.server, lab.dest]) {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  // The veth pairs are created directly inside the namespaces, never in the host's.
  run('ip', [
    '-n',
    lab.client,
    'link',
    'add',
    'c0',
    'type',
    'veth',
    'peer',
    'name',
    's0',
    'netns',
    lab.server,
  ]);
  run('ip', ['-n', lab.server, 'link', 'add', 's1', 'type', 'veth', 'peer', 'name', 'd0', 'netns', lab.dest]);
  const addr = (ns: string, dev: string, cidr: string): void => {
    run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  };
  const addr6 = (ns: string, dev: string, cidr: string): void =>
    void run('ip', ['-n', ns, '-6', 'addr', 'add', cidr, 'dev', dev, 'nodad']);
  for (const ns of [lab.client, lab.server, lab.dest]) {
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=0']);
    run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=0']);
  }
  addr(lab.client, 'c0', '10.77.1.1/24');
  addr(lab.server, 's0', '10.77.1.2/24');
  addr(lab.server, 's1', '10.77.2.1/24');
  addr(lab.dest, 'd0', `${DEST}/24`);
  addr6(lab.client, 'c0', 'fd77:1::1/64');
  addr6(lab.server, 's0', 'fd77:1::2/64');
  addr6(lab.server, 's1', 'fd77:2::1/64');
  addr6(lab.dest, 'd0', `${DEST6}/64`);
  run('ip', ['-n', lab.client, 'route', 'add', 'default', 'via', SERVER]);
  run('ip', ['-n', lab.dest, 'route', 'add', 'default', 'via', '10.77.2.1']);
  run('ip', ['-n', lab.client, '-6', 'route', 'add', 'default', 'via', 'fd77:1::2']);
  run('ip', ['-n', lab.dest, '-6', 'route', 'add', 'default', 'via', 'fd77:2::1']);
  run('ip', ['netns', 'exec', lab.server, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  run('ip', ['netns', 'exec', lab.server, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
  return lab;
}

/** Waits (bounded) for the client link's IPv6 link-local address to settle, so snapshots do not race with it. */
async function settle(lab: Lab): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ll = run('ip', ['-n', lab.client, '-6', 'addr', 'show', 'dev', 'c0', 'scope', 'link']);
    if (/inet6 fe80::/.test(ll) && !/tentative/.test(ll)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('c0 got no IPv6 link-local address within 5 s');
}

function resolvers(lab: Lab, nameserver: string): void {
  // Every namespace resolves through an address of the lab, never the host's resolver.
  for (const ns of [lab.client, lab.server, lab.dest]) {
    mkdirSync(join('/etc/netns', ns), { recursive: true });
    writeFileSync(join('/etc/netns', ns, 'resolv.conf'), `nameserver ${nameserver}\n`);
  }
}

/** What the client host's network configuration looks like, for before/after comparisons. */
function snapshot(ns: string): string {
  const parts = [
    ['-4', 'route', 'show', 'table', 'all'],
    ['-6', 'route', 'show', 'table', 'all'],
    ['-4', 'rule', 'show'],
    ['-6', 'rule', 'show'],
    ['-o', 'link', 'show'],
    ['-o', 'addr', 'show'],
  ].map((args) => `# ip ${args.join(' ')}\n${run('ip', ['-n', ns, ...args])}`);
  parts.push(`# nft list ruleset\n${run('ip', ['netns', 'exec', ns, 'nft', 'list', 'ruleset'])}`);
  // Interface counters and the like are not configuration.
  return parts.join('\n').replace(/ valid_lft \S+ preferred_lft \S+/g, '');
}

function startClient(t: TestContext, lab: Lab, args: string[], name: string): Proc {
  return startProcess(
    t,
    'ip',
    ['netns', 'exec', lab.client, process.execPath, '--import', 'tsx', MAIN, 'client', '--tun', ...args],
    { name, cwd: ROOT, env: { ...process.env, PIGEON_LOG: 'info' } },
  );
}

interface Running {
  lab: Lab;
  services: Proc;
  server: Proc;
  uri: string;
  /** The client's config file: tunnel the destination's subnets, DoH at the destination. */
  config: string;
}

/** The namespaces, the destination's services and a Pigeon server. */
async function startLab(t: TestContext, nameserver = NAMESERVER): Promise<Running> {
  ensureBuilt();
  const lab = makeLab(t);
  resolvers(lab, nameserver);
  await settle(lab);
  const caFile = join(lab.dir, 'ca.pem');
  const services = startProcess(
    t,
    'ip',
    ['netns', 'exec', lab.dest, process.execPath, '--import', 'tsx', SERVICES, DEST, DEST6, caFile],
    { name: 'lab services', cwd: ROOT },
  );
  await waitForLine(services, /^READY/, 30_000);
  const password = randomBytes(12).toString('hex');
  const server = startProcess(
    t,
    'ip',
    [
      'netns',
      'exec',
      lab.server,
      process.execPath,
      BIN,
      'server',
      '--listen',
      `${SERVER}:${SERVER_PORT}`,
      '--method',
      METHOD,
      '--password',
      password,
      '--allow-private',
      '--no-qr',
    ],
    { name: 'pigeon server', cwd: ROOT, env: { ...process.env, PIGEON_DATA: lab.dir } },
  );
  const uri = (await waitForLine(server, /^ss:\/\//, 30_000)).trim();
  const config = join(lab.dir, 'client.yaml');
  writeFileSync(
    config,
    [
      'rules:',
      '  - IP-CIDR,10.77.2.0/24,proxy',
      '  - IP-CIDR6,fd77:2::/64,proxy',
      'dns:',
      `  doh: https://${DEST}:8443/dns-query`,
      '  ca: ca.pem',
      '',
    ].join('\n'),
  );
  return { lab, services, server, uri, config };
}

interface Capture {
  stop(): Promise<Packet[]>;
}

async function captureOn(
  t: TestContext,
  ns: string,
  dev: string,
  dir: string,
  label: string,
): Promise<Capture> {
  const file = join(dir, `${label}.pcap`);
  const proc = startProcess(
    t,
    'ip',
    [
      'netns',
      'exec',
      ns,
      'tcpdump',
      '-i',
      dev,
      '-n',
      '-s',
      '0',
      '--immediate-mode',
      '-U',
      '-Z',
      'root',
      '-w',
      file,
    ],
    { name: `tcpdump ${label}` },
  );
  await waitForLine(proc, /listening on/, 15_000);
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 500));
      proc.child.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        proc.exited,
        new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000))),
      ]);
      clearTimeout(timer);
      assert.ok(stopped, 'tcpdump did not stop within 10 s of SIGINT');
      return readPcap(readFileSync(file));
    },
  };
}

/** The client host's own addresses (readPcap writes IPv6 uncompressed: fd77:1:0:0:0:0:0:1). */
const fromClientHost = (p: Packet): boolean =>
  !!p.ip && ['10.77.1.', '172.19.0.', 'fd77:1:', 'fd00:19:'].some((prefix) => p.ip!.src.startsWith(prefix));
const isDns = (p: Packet): boolean =>
  p.udp?.srcPort === 53 || p.udp?.dstPort === 53 || p.tcp?.srcPort === 53 || p.tcp?.dstPort === 53;

async function probe(lab: Lab, ...args: string[]): Promise<{ code: number; out: string }> {
  return sh('ip', ['netns', 'exec', lab.client, process.execPath, PROBE, ...args], 8000);
}

async function curl(lab: Lab, host = DEST): Promise<{ code: number; out: string }> {
  const url = `http://${host.includes(':') ? `[${host}]` : host}:8080/`;
  return sh('ip', ['netns', 'exec', lab.client, 'curl', '-gsS', '-m', '4', url], 8000);
}

async function stopAndWait(
  proc: Proc,
  signal: NodeJS.Signals,
  ms: number,
): Promise<{ code: number | null; signal: string | null }> {
  proc.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    proc.exited,
    new Promise<null>((res) => (timer = setTimeout(() => res(null), ms))),
  ]);
  clearTimeout(timer);
  assert.ok(r, `${proc.name} did not exit within ${ms} ms of ${signal}`);
  return r;
}

test(
  'pigeon client --tun: TCP, UDP and DNS through the tunnel; no leak when the server dies; clean exit and crash recovery',
  { timeout: 240_000 },
  async (t) => {
    if (!requireLab(t)) return;
    const { lab, services, server, uri, config } = await startLab(t);
    const args = ['--server', uri, '--preset', 'global', '--config', config];

    // Without Pigeon the client host reaches the destination directly (the leak path exists).
    const direct = await curl(lab);
    assert.equal(direct.code, 0, `the lab is broken: ${direct.out}`);
    assert.match(direct.out, /you are 10\.77\.1\.1/);
    const direct6 = await curl(lab, DEST6);
    assert.equal(direct6.code, 0, `the lab is broken (IPv6): ${direct6.out}`);
    assert.match(direct6.out, /you are fd77:1::1/);

    const before = snapshot(lab.client);

    // --- the tunnel works ---------------------------------------------------------------------------
    let client = startClient(t, lab, args, 'pigeon client --tun');
    await waitForLine(client, /TUN pigeon0 up/, 30_000);

    const viaTcp = await curl(lab);
    assert.equal(viaTcp.code, 0, `curl through the TUN failed: ${viaTcp.out}`);
    assert.match(viaTcp.out, /you are 10\.77\.2\.1/, 'the HTTP request did not come from the server');
    const viaUdp = await probe(lab, 'udp', DEST, '7007');
    assert.equal(viaUdp.code, 0, `UDP echo through the TUN failed: ${viaUdp.out}`);
    assert.match(viaUdp.out, /echo from 10\.77\.2\.1: ping/);
    const cone = await probe(lab, 'udp', DEST, '7008');
    assert.equal(cone.code, 0, `a reply from another port did not come back (not full cone): ${cone.out}`);
    assert.equal(cone.out, 'other port');
    const viaTcp6 = await curl(lab, DEST6);
    assert.equal(viaTcp6.code, 0, `curl over IPv6 through the TUN failed: ${viaTcp6.out}`);
    assert.match(viaTcp6.out, /you are fd77:2::1/, 'the IPv6 request did not come from the server');
    const viaUdp6 = await probe(lab, 'udp', DEST6, '7007');
    assert.equal(viaUdp6.code, 0, `UDP echo over IPv6 through the TUN failed: ${viaUdp6.out}`);
    assert.match(viaUdp6.out, /echo from fd77:2::1: ping/);
    const viaDns = await probe(lab, 'dns', 'web.telegram.org');
    assert.equal(viaDns.code, 0, `DNS through the TUN failed: ${viaDns.out}`);
    assert.match(viaDns.out, /^203\.0\.113\.\d+$/, 'the answer did not come from the DoH server');
    const viaDnsTcp = await probe(lab, 'dns-tcp', NAMESERVER, 'signal.org');
    assert.equal(viaDnsTcp.code, 0, `DNS over TCP through the TUN failed: ${viaDnsTcp.out}`);
    assert.match(viaDnsTcp.out, /^203\.0\.113\.\d+$/);
    await waitForLine(services, /^DOH web\.telegram\.org$/, 5000);
    await waitForLine(services, /^DOH signal\.org$/, 5000);

    // --- the server dies: nothing reaches the destination in the clear -------------------------------
    const leakCapture = await captureOn(t, lab.dest, 'd0', lab.dir, 'server-down');
    server.child.kill('SIGKILL');
    await server.exited;
    const downTcp = await curl(lab);
    assert.notEqual(downTcp.code, 0, `curl succeeded with the server down: ${downTcp.out}`);
    const downUdp = await probe(lab, 'udp', DEST, '7007');
    assert.notEqual(downUdp.code, 0, `UDP echo answered with the server down: ${downUdp.out}`);
    const downTcp6 = await curl(lab, DEST6);
    assert.notEqual(downTcp6.code, 0, `curl over IPv6 succeeded with the server down: ${downTcp6.out}`);
    const downDns = await probe(lab, 'dns', 'web.whatsapp.net');
    assert.notEqual(downDns.code, 0, `DNS answered with the server down: ${downDns.out}`);
    // Control: the capture does see traffic that really reaches the destination.
    const control = await sh('ip', [
      'netns',
      'exec',
      lab.server,
      'curl',
      '-sS',
      '-m',
      '4',
      `http://${DEST}:8080/`,
    ]);
    assert.equal(control.code, 0, `control request failed: ${control.out}`);
    const leaked = await leakCapture.stop();
    assert.ok(
      leaked.some((p) => p.ip?.src === '10.77.2.1' && p.tcp?.dstPort === 8080),
      'control: the capture did not see the server host reach the destination',
    );
    assert.deepEqual(
      leaked.filter(fromClientHost).map((p) => `${p.ip?.src} → ${p.ip?.dst}`),
      [],
      'packets from the client host reached the destination in the clear',
    );
    assert.deepEqual(leaked.filter(isDns).length, 0, 'plaintext DNS reached the destination');

    // --- clean exit: the client host is as before ----------------------------------------------------
    const exit = await stopAndWait(client, 'SIGTERM', 5000);
    assert.equal(exit.code, 0, `the client exited with ${JSON.stringify(exit)}`);
    assert.equal(snapshot(lab.client), before, 'routes, rules, links or nftables differ after SIGTERM');

    // --- a crash leaves the kill switch; the next start cleans up ------------------------------------
    client = startClient(t, lab, args, 'pigeon client --tun (to be killed)');
    await waitForLine(client, /TUN pigeon0 up/, 30_000);
    await stopAndWait(client, 'SIGKILL', 5000);
    assert.match(run('ip', ['-n', lab.client, 'rule', 'show']), /^7363:/m, 'the crash left no rules behind?');
    const crashCapture = await captureOn(t, lab.dest, 'd0', lab.dir, 'crashed');
    const crashedTcp = await curl(lab);
    assert.notEqual(crashedTcp.code, 0, `curl went direct after the crash: ${crashedTcp.out}`);
    const crashedTcp6 = await curl(lab, DEST6);
    assert.notEqual(crashedTcp6.code, 0, `curl over IPv6 went direct after the crash: ${crashedTcp6.out}`);
    const crashedUdp = await probe(lab, 'udp', DEST, '7007');
    assert.notEqual(crashedUdp.code, 0, `UDP went direct after the crash: ${crashedUdp.out}`);
    const afterCrash = await crashCapture.stop();
    assert.deepEqual(
      afterCrash.filter(fromClientHost).map((p) => `${p.ip?.src} → ${p.ip?.dst}`),
      [],
      'packets from the client host reached the destination after the crash',
    );

    client = startClient(t, lab, args, 'pigeon client --tun (after the crash)');
    await waitForLine(client, /removed leftovers of an earlier TUN run/, 30_000);
    await waitForLine(client, /TUN pigeon0 up/, 30_000);
    const exit2 = await stopAndWait(client, 'SIGINT', 5000);
    assert.equal(exit2.code, 0, `the client exited with ${JSON.stringify(exit2)}`);
    assert.equal(snapshot(lab.client), before, 'routes, rules, links or nftables differ after the restart');
  },
);

test(
  "pigeon client --tun --tun-routes preset: the rules' ranges and DNS-answered addresses into the TUN, the rest direct",
  { timeout: 120_000 },
  async (t) => {
    if (!requireLab(t)) return;
    // The hosts' resolver is the destination's plain DNS: direct names go there, tunnelled ones never.
    const { lab, services, uri, config } = await startLab(t, DEST);
    const before = snapshot(lab.client);
    // The messaging preset (the default) with the lab's rules first.
    const client = startClient(
      t,
      lab,
      ['--tun-routes', 'preset', '--server', uri, '--config', config],
      'client',
    );
    await waitForLine(client, /TUN pigeon0 up: the rules' tunnelled ranges and DNS/, 30_000);

    const route = (dst: string): string => run('ip', ['-n', lab.client, 'route', 'get', dst]);
    assert.match(route(DEST), /dev pigeon0/, "the rules' range is not routed into the TUN");
    assert.match(route('91.108.4.1'), /dev pigeon0/, "Telegram's range is not routed into the TUN");
    assert.match(route('10.77.3.1'), /dev c0/, 'a destination no rule tunnels left the normal route');
    assert.match(route('198.51.100.1'), /dev c0/);

    const viaTcp = await curl(lab);
    assert.equal(viaTcp.code, 0, `curl through the TUN failed: ${viaTcp.out}`);
    assert.match(viaTcp.out, /you are 10\.77\.2\.1/);
    // A tunnelled name: its address joins the TUN's routes before the app gets the answer.
    const dns = await probe(lab, 'dns', 'web.telegram.org');
    assert.equal(dns.code, 0, `DNS through the TUN failed: ${dns.out}`);
    assert.match(dns.out, /^203\.0\.113\.\d+$/);
    await waitForLine(services, /^DOH web\.telegram\.org$/, 5000);
    assert.match(route(dns.out), /dev pigeon0/, "the tunnelled name's address is not routed into the TUN");
    const ks = run('ip', ['netns', 'exec', lab.client, 'nft', 'list', 'set', 'inet', 'pigeon', 'tunnelled4']);
    assert.ok(ks.includes(dns.out), "the kill switch does not hold the tunnelled name's address");
    // A direct name: asked of the server the app asked (plain DNS, as without Pigeon), not routed.
    const directDns = await probe(lab, 'dns', 'www.baidu.com');
    assert.equal(directDns.code, 0, `a direct name did not resolve: ${directDns.out}`);
    assert.match(directDns.out, /^198\.51\.100\.\d+$/);
    await waitForLine(services, /^PLAIN www\.baidu\.com$/, 5000);
    assert.match(route(directDns.out), /dev c0/, "a direct name's address was routed into the TUN");
    const directTcp = await probe(lab, 'dns-tcp', DEST, 'www.qq.com');
    assert.match(directTcp.out, /^198\.51\.100\.\d+$/, `DNS over TCP for a direct name: ${directTcp.out}`);
    const plain = services.output();
    assert.ok(!/^PLAIN .*telegram/m.test(plain), 'a tunnelled name reached the plain DNS server');

    const exit = await stopAndWait(client, 'SIGTERM', 5000);
    assert.equal(exit.code, 0, `the client exited with ${JSON.stringify(exit)}`);
    assert.equal(snapshot(lab.client), before, 'routes, rules, links or nftables differ after SIGTERM');
  },
);

test('pigeon client --tun without root: a clear error', { timeout: 60_000 }, async (t) => {
  const asRoot = process.getuid?.() === 0;
  const args = [
    '--import',
    'tsx',
    MAIN,
    'client',
    '--tun',
    '--server',
    'ss://Y2hhY2hhMjAtaWV0Zi1wb2x5MTMwNTpwYXNz@192.0.2.1:8388',
  ];
  // As root, the command runs as nobody; as anyone else, as that user.
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-tun-noroot-'));
  chmodSync(dir, 0o777);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, HOME: dir, TMPDIR: dir },
    ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  if (asRoot && /EACCES|permission denied/i.test(r.stderr) && !/--tun needs root/.test(r.stderr)) {
    t.skip('the project directory is not readable by nobody');
    return;
  }
  assert.equal(r.status, 1, `exit status ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, /--tun needs root .*sudo/);
});
