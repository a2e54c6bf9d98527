// Side-by-side benchmark (issue 6): Pigeon, shadowsocks-libev and v2ray on this machine, same cipher,
// rounds interleaved, medians, ratios to libev, targets met or MISSED. Writes bench.md, bench.json and
// bench.png to bench/results/ (bench/results/smoke/ with --smoke).
//
//   npm run bench                       full run (3 rounds, several minutes)
//   npm run bench -- --smoke            ~10 s: one tiny round of every figure kind (CI keeps it working)
//   npm run bench -- --rounds 5 --only throughput,latency --seconds 5 --conns 8000 --out DIR --build
//
// Needs iperf3, shadowsocks-libev (ss-server, ss-tunnel, ss-local) and v2ray 4 on PATH. Loopback only.
// Exit code 1 if any sample failed (the tables still get written). BENCH_DEBUG=1 keeps failed iperf3 JSON in /tmp.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  cpuTicks,
  forkTs,
  freePort,
  installCleanup,
  rssBytes,
  sleep,
  start,
  stopAll,
  waitPort,
} from './lib/procs.js';
import type { Proc } from './lib/procs.js';
import { chartPng, chartSvg, KINDS, markdown, median, percentile, verdict } from './lib/report.js';
import type { Figure, Kind, Meta } from './lib/report.js';
import { cipherFor, METHODS, ROOT, startSetup, SYSTEMS } from './lib/systems.js';
import type { Method, Setup, SystemName, Targets } from './lib/systems.js';
import type { Job } from './gen/load.js';

const t0 = Date.now();
const { values: argv } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    seconds: { type: 'string' },
    conns: { type: 'string' },
    out: { type: 'string' },
    build: { type: 'boolean', default: false },
    'max-minutes': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (argv.help) {
  process.stdout.write(
    'usage: node --import tsx bench/run.ts [--smoke] [--rounds N] [--only KIND,...] [--seconds S] [--conns N] [--out DIR] [--build] [--max-minutes M]\n' +
      `kinds: ${KINDS.join(', ')}\n`,
  );
  process.exit(0);
}

const SMOKE = argv.smoke;
function num(v: string | undefined, dflt: number, min: number, max: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`--${name} must be a number in ${min}..${max}`);
  return n;
}
const ROUNDS = num(argv.rounds, SMOKE ? 1 : 3, 1, 50, 'rounds');
const SECONDS = num(argv.seconds, 4, 1, 60, 'seconds');
const FD_LIMIT = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 1024;
// Each tunnelled connection holds two files in the client and two in the server.
const CONNS = Math.min(
  num(argv.conns, SMOKE ? 100 : 8000, 10, 9000, 'conns'),
  Math.floor((FD_LIMIT - 400) / 2),
);
const MAX_MS = num(argv['max-minutes'], SMOKE ? 2 : 90, 1, 600, 'max-minutes') * 60_000;
const ONLY = (argv.only ?? KINDS.join(',')).split(',').map((s) => s.trim()) as Kind[];
for (const k of ONLY) if (!KINDS.includes(k)) throw new Error(`unknown figure kind "${k}" (kinds: ${KINDS})`);
const OUT = argv.out ?? join(ROOT, 'bench', 'results', ...(SMOKE ? ['smoke'] : []));
const MAIN_METHOD: Method = 'aes-256-gcm';
const TPUT_METHODS: Method[] = SMOKE ? [MAIN_METHOD] : METHODS;

const P = SMOKE
  ? {
      iperf: ['-n', '24M'],
      iperf8: ['-n', '64M'],
      latencyCount: 20,
      latencyWarmup: 3,
      cpsMs: 300,
      cpsConc: 8,
      cpuBytes: '32M',
      udpRates: [2000],
      udpStepMs: 200,
      udpGraceMs: 100,
      udpRefine: 0,
      settleMs: 200,
      freshMemory: false,
    }
  : {
      iperf: ['-t', String(SECONDS)],
      iperf8: ['-t', String(SECONDS)],
      latencyCount: 300,
      latencyWarmup: 10,
      cpsMs: 5000,
      cpsConc: 32,
      cpuBytes: '1G',
      udpRates: [2000, 5000, 10000, 20000, 40000, 80000, 160000],
      udpStepMs: 1000,
      udpGraceMs: 300,
      udpRefine: 3,
      settleMs: 2000,
      freshMemory: true,
    };
const UDP_SIZE = 100;
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function log(s: string): void {
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}\n`);
}

// ---------- setup ----------

function newestMtime(dir: string, depth = 0): number {
  let m = 0;
  if (depth > 6) return m;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    m = Math.max(m, e.isDirectory() ? newestMtime(p, depth + 1) : statSync(p).mtimeMs);
  }
  return m;
}

function ensureBuilt(notes: string[]): void {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  if (argv.build || !existsSync(main)) {
    log('building dist/ (tsc -p tsconfig.json)');
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    if (r.status !== 0 || !existsSync(main)) throw new Error(`build failed:\n${r.stdout}${r.stderr}`);
  } else if (newestMtime(join(ROOT, 'src')) > statSync(main).mtimeMs) {
    notes.push('dist/ was older than some file in src/ (run with --build to rebuild first)');
    log('warning: dist/ is older than src/; measuring the built code (use --build to rebuild)');
  }
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`;
}

function machine(): Record<string, string> {
  const mem = Math.round(totalmem() / 2 ** 30);
  const libev = /shadowsocks-libev\s+[\d.]+/.exec(sh('ss-server', ['-h']))?.[0] ?? 'unknown';
  const v2ray = /V2Ray\s+[\d.]+/.exec(sh('v2ray', ['-version']))?.[0] ?? 'unknown';
  const iperf = /iperf\s+[\d.]+/.exec(sh('iperf3', ['--version']))?.[0] ?? 'unknown';
  const head = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']).trim();
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'bin']).trim()
    ? ' (src/ modified)'
    : '';
  return {
    nproc: String(cpus().length),
    CPU: cpus()[0]?.model ?? 'unknown',
    RAM: `${mem} GiB`,
    kernel: release(),
    node: process.version,
    libev,
    v2ray,
    iperf3: iperf,
    pigeon: `${head}${dirty}`,
    'load average at start': loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    'fd limit': String(FD_LIMIT),
  };
}

// ---------- helpers: targets, iperf3, load worker ----------

async function startTargets(): Promise<{ proc: Proc; echo: number; http: number }> {
  const proc = forkTs('targets', join(ROOT, 'bench', 'gen', 'targets.ts'));
  const ports = await new Promise<{ echo: number; http: number }>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`targets did not start\n${proc.output()}`)), 30_000);
    proc.child.once('message', (m: { echo: number; http: number }) => {
      clearTimeout(t);
      resolve(m);
    });
    void proc.exited.then(() => reject(new Error(`targets exited\n${proc.output()}`)));
  });
  return { proc, ...ports };
}

// One iperf3 server per system: iperf3 serves one test at a time and stays "busy" until the previous
// test's connections have closed, which a tunnel may delay; no system then waits for another's.
const iperfServers = new Map<SystemName, { port: number; proc: Proc }>();
async function startIperfServer(system: SystemName): Promise<void> {
  const have = iperfServers.get(system);
  await have?.proc.stop();
  const port = have?.port ?? (await freePort());
  const proc = start(`iperf3 -s (${system})`, 'iperf3', ['-s', '-B', '127.0.0.1', '-p', String(port)]);
  iperfServers.set(system, { port, proc });
  await waitPort(port, proc);
}

interface IperfResult {
  bps: number;
  bytes: number;
  seconds: number;
  busyRetries: number;
}

function iperfOnce(port: number, args: string[], limitMs: number): Promise<Omit<IperfResult, 'busyRetries'>> {
  return new Promise((resolve, reject) => {
    const child = spawn('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-J', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.once('error', (e) => reject(e));
    child.once('close', () => {
      clearTimeout(timer);
      try {
        const j = JSON.parse(out) as {
          error?: string;
          end?: { sum_received?: { bits_per_second: number; bytes: number; seconds: number } };
        };
        const s = j.end?.sum_received;
        if (j.error || !s || !s.bytes) throw new Error(j.error ?? 'no result');
        resolve({ bps: s.bits_per_second, bytes: s.bytes, seconds: s.seconds });
      } catch (e) {
        if (process.env.BENCH_DEBUG) writeFileSync(`/tmp/iperf-fail-${Date.now()}.json`, out);
        reject(new Error(`iperf3 ${args.join(' ')}: ${String(e)} ${out.slice(0, 300)}`));
      }
    });
  });
}

/** Counts, per system, the times its iperf3 server was still busy with the previous test. */
const iperfBusy = new Map<SystemName, { times: number; maxWaitS: number }>();

/** iperf3 -c through the setup's iperf3 forward; waits (up to 10 s) while the server is still busy. */
async function iperf(s: Setup, args: string[], limitMs: number): Promise<IperfResult> {
  const started = Date.now();
  for (let i = 0; ; i++) {
    try {
      const r = await iperfOnce(s.iperfPort, args, limitMs);
      if (i > 0) {
        const b = iperfBusy.get(s.system) ?? { times: 0, maxWaitS: 0 };
        iperfBusy.set(s.system, {
          times: b.times + 1,
          maxWaitS: Math.max(b.maxWaitS, (Date.now() - started) / 1000),
        });
      }
      return { ...r, busyRetries: i };
    } catch (e) {
      if (i >= 10 || !/busy/.test(String(e))) throw e;
      await sleep(1000);
    }
  }
}

class LoadWorker {
  private proc: Proc | null = null;
  private nextId = 1;
  private async ensure(): Promise<Proc> {
    if (this.proc && this.proc.exitCode() === null) return this.proc;
    const proc = forkTs('load generator', join(ROOT, 'bench', 'gen', 'load.ts'));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`load generator did not start\n${proc.output()}`)), 30_000);
      proc.child.once('message', () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.proc = proc;
    return proc;
  }
  async call<T>(job: Job, limitMs: number): Promise<T> {
    const proc = await this.ensure();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const onMsg = (m: { id?: number; ok?: boolean; result?: T; error?: string }): void => {
        if (m.id !== id) return;
        clearTimeout(timer);
        proc.child.off('message', onMsg);
        if (m.ok) resolve(m.result as T);
        else reject(new Error(m.error ?? 'load generator error'));
      };
      const timer = setTimeout(() => {
        proc.child.off('message', onMsg);
        void proc.stop(); // restarted on the next call
        reject(new Error(`load generator: ${job.kind} did not finish within ${limitMs} ms`));
      }, limitMs);
      proc.child.on('message', onMsg);
      proc.child.send({ id, job });
    });
  }
}

// ---------- figures ----------

const figures = new Map<string, Figure>();
function fig(
  id: string,
  kind: Kind,
  title: string,
  unit: string,
  better: 'higher' | 'lower',
  libevTarget: number | null,
  decimals: number,
): Figure {
  let f = figures.get(id);
  if (!f) {
    f = {
      id,
      kind,
      title,
      unit,
      better,
      libevTarget,
      decimals,
      ciphers: {},
      samples: {},
      details: {},
      errors: [],
    };
    figures.set(id, f);
  }
  return f;
}
function add(f: Figure, s: Setup, value: number, detail: unknown): void {
  f.ciphers[s.system] = s.cipher;
  (f.samples[s.system] ??= []).push(value);
  (f.details[s.system] ??= []).push(detail);
}

// ---------- main ----------

const setups = new Map<string, Setup>();
let targets: Targets;
function targetsFor(system: SystemName): Targets {
  return { ...targets, iperf: iperfServers.get(system)?.port ?? targets.iperf };
}
const worker = new LoadWorker();

async function setupFor(system: SystemName, m: Method): Promise<Setup> {
  const key = `${system}/${m}`;
  const have = setups.get(key);
  const alive = (p: Proc | null): boolean => p === null || p.exitCode() === null;
  if (have && alive(have.server) && alive(have.iperfClient) && alive(have.echoClient)) return have;
  if (have) {
    log(`${system} (${m}) had exited; restarting it`);
    await have.stop();
  }
  const s = await startSetup(system, m, targetsFor(system));
  setups.set(key, s);
  return s;
}

function rotate<T>(xs: T[], r: number): T[] {
  const k = r % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

/** Runs `measure` for each system of the round (rotated order), recording failures. */
async function eachSystem(
  round: number,
  systems: SystemName[],
  m: Method,
  figs: Figure[],
  measure: (s: Setup) => Promise<void>,
): Promise<void> {
  for (const system of rotate(systems, round)) {
    try {
      const s = await setupFor(system, m);
      await measure(s);
    } catch (e) {
      const error = String(e instanceof Error ? e.message : e);
      log(`  ${system}: FAILED ${error.split('\n')[0]}`);
      for (const f of figs) {
        f.ciphers[system] ??= cipherFor(system, m);
        f.errors.push({ system, round: round + 1, error });
      }
      if (iperfServers.has(system)) await startIperfServer(system);
    }
  }
}

async function runKind(kind: Kind, round: number): Promise<void> {
  switch (kind) {
    case 'throughput':
      for (const m of TPUT_METHODS) {
        for (const dir of ['upload', 'download'] as const) {
          const title =
            m === '2022-blake3-aes-128-gcm'
              ? `1 stream ${dir}, Pigeon 2022-blake3-aes-128-gcm vs aes-128-gcm`
              : `1 stream ${dir}, ${m}`;
          const f = fig(`throughput-${m}-${dir}`, kind, title, 'Mbit/s', 'higher', 1.0, 0);
          await eachSystem(round, SYSTEMS, m, [f], async (s) => {
            const r = await iperf(
              s,
              [...P.iperf, ...(dir === 'download' ? ['-R'] : [])],
              SECONDS * 1000 + 20_000,
            );
            add(f, s, r.bps / 1e6, r);
            log(`  ${f.title} ${s.system}: ${(r.bps / 1e6).toFixed(0)} Mbit/s`);
          });
        }
      }
      return;
    case 'parallel':
      for (const dir of ['upload', 'download'] as const) {
        const f = fig(
          `parallel-${dir}`,
          kind,
          `8 streams ${dir}, ${MAIN_METHOD}`,
          'Mbit/s',
          'higher',
          1.0,
          0,
        );
        await eachSystem(round, SYSTEMS, MAIN_METHOD, [f], async (s) => {
          const r = await iperf(
            s,
            [...P.iperf8, '-P', '8', ...(dir === 'download' ? ['-R'] : [])],
            SECONDS * 1000 + 30_000,
          );
          add(f, s, r.bps / 1e6, r);
          log(`  ${f.title} ${s.system}: ${(r.bps / 1e6).toFixed(0)} Mbit/s`);
        });
      }
      return;
    case 'latency': {
      const med = fig(
        'latency-median',
        kind,
        'latency: connect + 1-byte echo, median',
        'ms',
        'lower',
        1.0,
        3,
      );
      const p99 = fig('latency-p99', kind, 'latency: connect + 1-byte echo, p99', 'ms', 'lower', 1.0, 3);
      await eachSystem(round, [...SYSTEMS, 'direct', 'node-relay'], MAIN_METHOD, [med, p99], async (s) => {
        const n = P.latencyCount + P.latencyWarmup;
        const r = await worker.call<{ samplesUs: number[]; errors: number }>(
          { kind: 'latency', port: s.echoPort, count: n, timeoutMs: 60_000 },
          70_000,
        );
        const xs = r.samplesUs.slice(P.latencyWarmup).map((us) => us / 1000);
        if (xs.length < P.latencyCount * 0.95 || r.errors > P.latencyCount * 0.01)
          throw new Error(`latency: only ${xs.length} of ${P.latencyCount} echoes, ${r.errors} errors`);
        add(med, s, median(xs)!, { n: xs.length, errors: r.errors });
        add(p99, s, percentile(xs, 99)!, { n: xs.length, errors: r.errors, max: Math.max(...xs) });
        log(
          `  latency ${s.system}: median ${median(xs)!.toFixed(3)} ms, p99 ${percentile(xs, 99)!.toFixed(3)} ms`,
        );
      });
      return;
    }
    case 'cps': {
      const f = fig('cps', kind, 'new connections/s: HTTP request via SOCKS5', 'req/s', 'higher', 1.0, 0);
      await eachSystem(round, [...SYSTEMS, 'direct'], MAIN_METHOD, [f], async (s) => {
        const r = await worker.call<{ ok: number; errors: number; elapsedMs: number; lastError: string }>(
          {
            kind: 'cps',
            port: s.socksPort ?? targets.http,
            socksTo: s.socksPort === null ? null : targets.http,
            concurrency: P.cpsConc,
            durationMs: P.cpsMs,
          },
          P.cpsMs + 30_000,
        );
        if (r.errors > r.ok * 0.01)
          throw new Error(`cps: ${r.errors} errors for ${r.ok} requests (${r.lastError})`);
        const rate = r.ok / (r.elapsedMs / 1000);
        add(f, s, rate, r);
        log(`  cps ${s.system}: ${rate.toFixed(0)} req/s (${r.errors} errors)`);
      });
      return;
    }
    case 'memory': {
      const fs = fig(
        'memory-server',
        kind,
        `server RSS per idle connection (${CONNS})`,
        'KiB',
        'lower',
        1.0,
        2,
      );
      const fc = fig(
        'memory-client',
        kind,
        `client RSS per idle connection (${CONNS})`,
        'KiB',
        'lower',
        1.0,
        2,
      );
      for (const system of rotate(SYSTEMS, round)) {
        let fresh: Setup | null = null;
        try {
          const s = P.freshMemory
            ? (fresh = await startSetup(system, MAIN_METHOD, targetsFor(system)))
            : await setupFor(system, MAIN_METHOD);
          await sleep(P.settleMs);
          const pids = { server: s.server!.pid, client: s.echoClient!.pid };
          const before = { server: rssBytes(pids.server), client: rssBytes(pids.client) };
          const r = await worker.call<{ open: number; errors: number; elapsedMs: number; lastError: string }>(
            { kind: 'idleOpen', port: s.echoPort, count: CONNS, parallel: 64, timeoutMs: 180_000 },
            200_000,
          );
          try {
            if (r.open < CONNS * 0.98)
              throw new Error(
                `only ${r.open} of ${CONNS} idle connections opened (${r.errors} errors: ${r.lastError})`,
              );
            await sleep(P.settleMs);
            const after = { server: rssBytes(pids.server), client: rssBytes(pids.client) };
            const detail = { before, after, open: r.open, openSeconds: r.elapsedMs / 1000 };
            add(fs, s, (after.server - before.server) / r.open / 1024, detail);
            add(fc, s, (after.client - before.client) / r.open / 1024, detail);
            log(
              `  memory ${system}: server ${((after.server - before.server) / r.open / 1024).toFixed(2)} KiB/conn, client ${((after.client - before.client) / r.open / 1024).toFixed(2)} KiB/conn (${r.open} open in ${(r.elapsedMs / 1000).toFixed(1)} s)`,
            );
          } finally {
            await worker.call({ kind: 'idleClose' }, 30_000);
          }
        } catch (e) {
          const error = String(e instanceof Error ? e.message : e);
          log(`  memory ${system}: FAILED ${error.split('\n')[0]}`);
          for (const f of [fs, fc]) {
            f.ciphers[system] ??= cipherFor(system, MAIN_METHOD);
            f.errors.push({ system, round: round + 1, error });
          }
        } finally {
          await fresh?.stop();
        }
      }
      return;
    }
    case 'udp': {
      const f = fig(
        'udp',
        kind,
        `UDP echo, ${UDP_SIZE}-byte datagrams, < 1% loss`,
        'packets/s each way',
        'higher',
        null,
        0,
      );
      await eachSystem(round, [...SYSTEMS, 'direct'], MAIN_METHOD, [f], async (s) => {
        const r = await worker.call<{ bestPps: number; bestRate: number; steps: unknown[] }>(
          {
            kind: 'udp',
            port: s.echoPort,
            rates: P.udpRates,
            stepMs: P.udpStepMs,
            size: UDP_SIZE,
            graceMs: P.udpGraceMs,
            refine: P.udpRefine,
          },
          (P.udpRates.length + P.udpRefine) * (P.udpStepMs * 3 + P.udpGraceMs + 2000) + 10_000,
        );
        add(f, s, r.bestPps, r);
        log(`  udp ${s.system}: ${r.bestPps.toFixed(0)} pps with < 1% loss (${r.steps.length} steps)`);
      });
      return;
    }
    case 'cpu': {
      const f = fig(
        'cpu',
        kind,
        `CPU per GB relayed (server + client), ${MAIN_METHOD}`,
        'CPU s/GB',
        'lower',
        null,
        2,
      );
      await eachSystem(round, SYSTEMS, MAIN_METHOD, [f], async (s) => {
        const pids = [s.server!.pid, s.iperfClient!.pid];
        const c0 = pids.map(cpuTicks);
        const r = await iperf(s, ['-n', P.cpuBytes], 120_000);
        const c1 = pids.map(cpuTicks);
        const secs = (c1[0]! - c0[0]! + c1[1]! - c0[1]!) / CLK_TCK;
        const perGB = secs / (r.bytes / 1e9);
        add(f, s, perGB, {
          ...r,
          cpuSeconds: secs,
          serverTicks: c1[0]! - c0[0]!,
          clientTicks: c1[1]! - c0[1]!,
        });
        log(`  cpu ${s.system}: ${perGB.toFixed(2)} CPU s/GB (${(r.bytes / 1e6).toFixed(0)} MB)`);
      });
      return;
    }
  }
}

async function main(): Promise<number> {
  installCleanup();
  const notes: string[] = [];
  if (SMOKE) notes.push('SMOKE RUN: tiny sizes, one round; these figures only show that the harness works.');
  notes.push(
    'Provisional unless the machine was quiet: figures on a shared 2-core machine move with other load.',
  );
  for (const bin of ['iperf3', 'ss-server', 'ss-tunnel', 'ss-local', 'v2ray']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is not installed`);
  }
  ensureBuilt(notes);
  const mach = machine();
  mkdirSync(OUT, { recursive: true });
  log(`bench: ${SMOKE ? 'smoke' : 'full'}, ${ROUNDS} round(s), kinds ${ONLY.join(',')}, output ${OUT}`);

  const tg = await startTargets();
  for (const system of SYSTEMS) await startIperfServer(system);
  targets = { echo: tg.echo, http: tg.http, iperf: iperfServers.get('libev')!.port };

  // Start the long-lived setups up front, in parallel (a failure here is retried per sample later).
  const methods = new Set<Method>();
  if (ONLY.some((k) => k !== 'throughput' && (k !== 'memory' || !P.freshMemory))) methods.add(MAIN_METHOD);
  if (ONLY.includes('throughput')) for (const m of TPUT_METHODS) methods.add(m);
  await Promise.allSettled([...methods].flatMap((m) => SYSTEMS.map((sys) => setupFor(sys, m))));
  log(`started ${setups.size} setup(s)`);

  let roundsDone = 0;
  for (let r = 0; r < ROUNDS; r++) {
    if (Date.now() - t0 > MAX_MS) {
      notes.push(`stopped after ${roundsDone} round(s): --max-minutes reached`);
      break;
    }
    log(`round ${r + 1} of ${ROUNDS}`);
    for (const k of KINDS) if (ONLY.includes(k)) await runKind(k, r);
    roundsDone++;
  }
  notes.push(
    `Order within a figure: ${SYSTEMS.join(', ')}${ONLY.some((k) => ['latency', 'cps', 'udp'].includes(k)) ? ' (+ direct; latency also + two plain Node.js relays, the floor of a Node design)' : ''}, rotated by one each round.`,
  );
  for (const [system, b] of iperfBusy)
    notes.push(
      `iperf3 server still busy with the previous test through ${system} ${b.times} time(s); the next test waited up to ${b.maxWaitS.toFixed(1)} s`,
    );
  mach['load average at end'] = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

  const meta: Meta = {
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    mode: SMOKE ? 'smoke' : 'full',
    rounds: ROUNDS,
    roundsDone,
    order: 'interleaved per figure, starting system rotated each round',
    machine: mach,
    settings: {
      'iperf3 per sample': P.iperf.join(' '),
      'latency connections per sample': `${P.latencyCount} (after ${P.latencyWarmup} warm-up)`,
      cps: `${P.cpsConc} concurrent for ${P.cpsMs / 1000} s`,
      'idle connections': `${CONNS}${P.freshMemory ? ', freshly started processes each sample' : ''}`,
      'UDP rate steps': `${P.udpRates.join(', ')} pps (${P.udpStepMs} ms each, ${P.udpRefine} refining steps)`,
      'CPU transfer': P.cpuBytes,
    },
    durationS: (Date.now() - t0) / 1000,
    notes,
  };
  const figs = [...figures.values()];
  writeFileSync(join(OUT, 'bench.json'), JSON.stringify({ meta, figures: figs }, null, 2) + '\n');
  writeFileSync(join(OUT, 'bench.md'), markdown(meta, figs));
  const svg = chartSvg(meta, figs);
  writeFileSync(join(OUT, 'bench.png'), chartPng(svg));
  log(`wrote ${join(OUT, 'bench.md')}, bench.json, bench.png`);

  let failed = 0;
  for (const f of figs) {
    const v = verdict(f);
    failed += f.errors.length;
    const missing = SYSTEMS.filter((s) => !f.samples[s]?.length);
    if (missing.length) log(`no data for ${f.id}: ${missing.join(', ')}`);
    failed += missing.length;
    process.stdout.write(
      `${f.title.padEnd(64)} Pigeon ${v.pigeon?.toFixed(f.decimals) ?? '-'} libev ${v.libev?.toFixed(f.decimals) ?? '-'} v2ray ${v.v2ray?.toFixed(f.decimals) ?? '-'} ${f.unit}  ratio ${v.ratioLibev?.toFixed(2) ?? '-'}\n`,
    );
  }
  if (failed) log(`${failed} failed sample(s) or missing figure(s); see ${join(OUT, 'bench.md')}`);
  return failed ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  log(`bench failed: ${e instanceof Error ? e.stack : String(e)}`);
} finally {
  await Promise.all([...setups.values()].map((s) => s.stop()));
  await stopAll();
}
log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exit(code);
