// Child processes of the benchmark: spawned with their output kept (last 32 KB), all killed at the end,
// on error and on Ctrl-C (SIGTERM, then SIGKILL after 1 s; SIGKILL on process exit as a last resort).
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const TAIL = 32 * 1024;

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<void>;
  exitCode(): number | string | null;
  stop(): Promise<void>;
}

const live = new Set<Proc>();

function wrap(name: string, child: ChildProcess): Proc {
  let tail = '';
  let code: number | string | null = null;
  let done = false;
  const keep = (d: Buffer | string): void => {
    tail = (tail + d.toString()).slice(-TAIL);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (c, sig) => {
      code = c ?? sig ?? 'exited';
      done = true;
      resolve();
    });
    child.once('error', (e) => {
      keep(`\n[spawn error: ${e.message}]\n`);
      code = 'spawn error';
      done = true;
      resolve();
    });
  });
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => tail,
    exited,
    exitCode: () => code,
    stop: async () => {
      if (!done) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 1000);
        await exited;
        clearTimeout(t);
      }
      live.delete(proc);
    },
  };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

export function start(name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Proc {
  return wrap(name, spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }));
}

/** A TypeScript module as a child with an IPC channel (node --import tsx). */
export function forkTs(name: string, file: string, args: string[] = []): Proc {
  return wrap(
    name,
    fork(file, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }),
  );
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop()));
}

let installed = false;
/** Kills every child on exit, SIGINT, SIGTERM and uncaught errors. */
export function installCleanup(): void {
  if (installed) return;
  installed = true;
  process.once('exit', () => {
    for (const p of live) p.child.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping ${live.size} child process(es)\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port free for both TCP and UDP on 127.0.0.1 (at that moment). */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    const udpOk = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (port && udpOk) return port;
  }
  throw new Error('no free port found in 20 tries');
}

/** Whether a socket is bound to `port` (UDP) or listening on it (TCP), from /proc/net. */
function bound(port: number, proto: 'tcp' | 'udp'): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const file of [`/proc/net/${proto}`, `/proc/net/${proto}6`]) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(suffix) && (proto === 'udp' || f[3] === '0A')) return true;
    }
  }
  return false;
}

/**
 * Waits until something listens on TCP port (and is bound on UDP when asked); fails if `proc` exits.
 * Reads /proc/net rather than connecting: a probe through a tunnel would reach the target (iperf3
 * takes a stray connection for a test's control connection and then refuses the next client).
 */
export async function waitPort(port: number, proc: Proc, o: { udp?: boolean; timeoutMs?: number } = {}) {
  const deadline = Date.now() + (o.timeoutMs ?? 15_000);
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    if (proc.exitCode() !== null) break;
    if (bound(port, 'tcp') && (!o.udp || bound(port, 'udp'))) return;
    await sleep(40);
  }
  throw new Error(
    `${proc.name}: port ${port} not ready (${proc.exitCode() !== null ? `exited: ${proc.exitCode()}` : 'timeout'})\n${proc.output().slice(-2000)}`,
  );
}

/** Resolves with the first stdout/stderr line matching re. */
export function waitLine(proc: Proc, re: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => re.test(l));
      if (line !== undefined) finish(() => resolve(line.trim()));
    };
    const timer = setTimeout(
      () => finish(() => reject(new Error(`${proc.name}: no line ${re}\n${proc.output().slice(-2000)}`))),
      timeoutMs,
    );
    function finish(f: () => void): void {
      clearTimeout(timer);
      proc.child.stdout?.off('data', onData);
      proc.child.stderr?.off('data', onData);
      f();
    }
    onData(Buffer.from(proc.output()));
    proc.child.stdout?.on('data', onData);
    proc.child.stderr?.on('data', onData);
    void proc.exited.then(() =>
      setTimeout(
        () => finish(() => reject(new Error(`${proc.name} exited\n${proc.output().slice(-2000)}`))),
        50,
      ),
    );
  });
}

/** VmRSS of a process in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m?.[1]) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15). */
export function cpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]);
}
