// Throughput through the TUN (full-VPN mode) next to the proxy mode, on one machine, in network
// namespaces (client ─ server ─ destination, as in test/tun/tun.test.ts). iperf3 runs on the
// destination; from the client host it reaches it three ways:
//   direct  no Pigeon at all (what the namespaces' veth links carry)
//   proxy   through `pigeon client --forward` (a local port, the Shadowsocks outbound, the server)
//   tun     through `pigeon client --tun` (the kernel's TCP stack, the TUN, the same outbound and server)
// Needs root, iproute2, nftables and iperf3. Nothing leaves the namespaces it creates.
//
//   node --import tsx bench/tun.ts [--seconds 5] [--rounds 3] [--streams 1,8] [--method aes-256-gcm]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MAIN = join(ROOT, 'src/cli/main.ts');
const { values: argv } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    streams: { type: 'string', default: '1,8' },
    method: { type: 'string', default: 'aes-256-gcm' },
  },
});
const SECONDS = Math.min(60, Math.max(1, Number(argv.seconds)));
const ROUNDS = Math.min(20, Math.max(1, Number(argv.rounds)));
const STREAMS = argv.streams.split(',').map((s) => Math.min(64, Math.max(1, Number(s))));
const id = `${process.pid}`;
const NS = { client: `pg-bc-${id}`, server: `pg-bs-${id}`, dest: `pg-bd-${id}` };
const children = new Set<ChildProcess>();
const dir = mkdtempSync(join(tmpdir(), 'pigeon-bench-tun-'));

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

function start(
  ns: string,
  args: string[],
): { child: ChildProcess; waitFor(re: RegExp, ms: number): Promise<string> } {
  const child = spawn('ip', ['netns', 'exec', ns, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onData = (d: Buffer): void => {
    out = (out + d.toString()).slice(-65_536);
    for (const w of [...waiters]) {
      const m = out.split('\n').find((l) => w.re.test(l));
      if (m !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return {
    child,
    waitFor: (re, ms) =>
      new Promise((resolve, reject) => {
        const m = out.split('\n').find((l) => re.test(l));
        if (m !== undefined) return resolve(m);
        const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms:\n${out}`)), ms);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      }),
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

function lab(): void {
  for (const ns of Object.values(NS)) {
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  run('ip', ['-n', NS.client, 'link', 'add', 'c0', 'type', 'veth', 'peer', 'name', 's0', 'netns', NS.server]);
  run('ip', ['-n', NS.server, 'link', 'add', 's1', 'type', 'veth', 'peer', 'name', 'd0', 'netns', NS.dest]);
  for (const [ns, dev, cidr] of [
    [NS.client, 'c0', '10.77.1.1/24'],
    [NS.server, 's0', '10.77.1.2/24'],
    [NS.server, 's1', '10.77.2.1/24'],
    [NS.dest, 'd0', '10.77.2.2/24'],
  ] as const) {
    run('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
    run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
  }
  run('ip', ['-n', NS.client, 'route', 'add', 'default', 'via', '10.77.1.2']);
  run('ip', ['-n', NS.dest, 'route', 'add', 'default', 'via', '10.77.2.1']);
  run('ip', ['netns', 'exec', NS.server, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
}

/** One iperf3 run from the client host; bits per second received. */
function iperf(host: string, port: number, streams: number): number {
  const out = run('ip', [
    'netns',
    'exec',
    NS.client,
    'iperf3',
    '-c',
    host,
    '-p',
    String(port),
    '-t',
    String(SECONDS),
    '-P',
    String(streams),
    '-J',
  ]);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } } };
  return j.end?.sum_received?.bits_per_second ?? 0;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const gbps = (bps: number): string => `${(bps / 1e9).toFixed(2)} Gbit/s`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/tun.ts needs root (network namespaces, a TUN device)');
  lab();
  const iperfd = start(NS.dest, ['iperf3', '-s', '-B', '10.77.2.2', '-p', '5201', '--forceflush']);
  await iperfd.waitFor(/Server listening/, 10_000);
  const password = randomBytes(12).toString('hex');
  const server = start(NS.server, [
    process.execPath,
    '--import',
    'tsx',
    MAIN,
    'server',
    '--listen',
    '10.77.1.2:8388',
    '--method',
    argv.method,
    '--password',
    password,
    '--allow-private',
    '--no-qr',
  ]);
  const uri = (await server.waitFor(/^ss:\/\//, 30_000)).trim();
  const rows: { mode: string; streams: number; bps: number[] }[] = [];
  const sample = (mode: string, streams: number, bps: number): void => {
    let row = rows.find((r) => r.mode === mode && r.streams === streams);
    if (!row) rows.push((row = { mode, streams, bps: [] }));
    row.bps.push(bps);
    process.stderr.write(`${mode} ×${streams}: ${gbps(bps)}\n`);
  };
  const client = (extra: string[]) =>
    start(NS.client, [
      process.execPath,
      '--import',
      'tsx',
      MAIN,
      'client',
      '--server',
      uri,
      '--preset',
      'global',
      '--listen',
      '127.0.0.1:0',
      ...extra,
    ]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const streams of STREAMS) sample('direct', streams, iperf('10.77.2.2', 5201, streams));
    const proxy = client(['--forward', '127.0.0.1:5202=10.77.2.2:5201']);
    await proxy.waitFor(/forwarding 127\.0\.0\.1:5202/, 30_000);
    for (const streams of STREAMS) sample('proxy', streams, iperf('127.0.0.1', 5202, streams));
    await stop(proxy.child);
    // The destination is private: a rule sends it through the tunnel (the presets keep LANs direct).
    const rules = join(dir, 'rules.txt');
    run('sh', ['-c', `echo 'IP-CIDR,10.77.2.0/24,proxy' > ${rules}`]);
    const tun = client(['--tun', '--rules', rules]);
    await tun.waitFor(/TUN pigeon0 up/, 30_000);
    for (const streams of STREAMS) sample('tun', streams, iperf('10.77.2.2', 5201, streams));
    await stop(tun.child);
  }
  process.stdout.write(
    `\n| mode | streams | throughput (median of ${ROUNDS}) | vs proxy |\n| --- | --- | --- | --- |\n`,
  );
  for (const r of rows) {
    const proxy = rows.find((x) => x.mode === 'proxy' && x.streams === r.streams);
    const ratio = proxy ? (median(r.bps) / median(proxy.bps)).toFixed(2) : '';
    process.stdout.write(`| ${r.mode} | ${r.streams} | ${gbps(median(r.bps))} | ${ratio} |\n`);
  }
  process.stdout.write(`\n${argv.method}, ${SECONDS} s per sample, iperf3 in network namespaces.\n`);
  await stop(server.child);
  await stop(iperfd.child);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`bench/tun.ts: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
