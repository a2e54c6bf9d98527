// Child processes for tests: spawn with output capture, wait for a line or a port, and always kill
// at the end of the test (SIGTERM, then SIGKILL after 2 s).
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';

const TAIL_BYTES = 64 * 1024;
const MAX_LINES = 2000;
const DIAGNOSTIC_LINES = 40;

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Last 64 KB of stdout and stderr, interleaved in arrival order. */
  output(): string;
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** Stops the process: SIGTERM, then SIGKILL after 2 s. Idempotent. */
  stop(): Promise<void>;
}

interface ProcInternal extends Proc {
  lines: string[];
  lineListeners: Set<(line: string) => void>;
}

const live = new Set<ChildProcess>();
// Last resort if the test runner exits without running the after hooks.
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function describeProc(proc: Proc): string {
  const status = proc.exit ? ` (exited: code ${proc.exit.code}, signal ${proc.exit.signal})` : '';
  const out = proc.output().trimEnd();
  return `--- ${proc.name}${status} output ---\n${out || '(no output)'}\n--- end ${proc.name} ---`;
}

/** Spawns `cmd args`, captures output and kills the process in `t.after`. */
export function startProcess(
  t: TestContext,
  cmd: string,
  args: string[],
  opts: SpawnOptions & { name?: string } = {},
): Proc {
  const { name = cmd, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let tail = '';
  const partial = { stdout: '', stderr: '' };
  const proc: ProcInternal = {
    name,
    child,
    exit: null,
    lines: [],
    lineListeners: new Set(),
    output: () => tail,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        proc.exit = { code, signal };
        resolve(proc.exit);
      });
      child.once('error', (err) => {
        live.delete(child);
        tail += `\n[spawn error: ${err.message}]\n`;
        proc.exit = { code: null, signal: null };
        resolve(proc.exit);
      });
    }),
    stop: async () => {
      if (proc.exit) return;
      child.kill('SIGTERM');
      let killed = false;
      const timer = setTimeout(() => {
        killed = true;
        child.kill('SIGKILL');
      }, 2000);
      await proc.exited;
      clearTimeout(timer);
      if (killed) t.diagnostic(`${name} did not exit within 2 s of SIGTERM and was killed with SIGKILL`);
    },
  };
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.setEncoding('utf8');
    child[stream]?.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-TAIL_BYTES);
      const parts = (partial[stream] + chunk).split('\n');
      partial[stream] = parts.pop() ?? '';
      if (partial[stream].length > TAIL_BYTES) partial[stream] = partial[stream].slice(-TAIL_BYTES);
      for (const line of parts) {
        proc.lines.push(line);
        if (proc.lines.length > MAX_LINES) proc.lines.shift();
        for (const l of proc.lineListeners) l(line);
      }
    });
  }
  t.after(async () => {
    const exitedEarly = proc.exit !== null;
    await proc.stop();
    // On failure (or when the process died during the test) show what it printed.
    if ((t as { passed?: boolean }).passed === false || exitedEarly) {
      const status = exitedEarly
        ? `exited during the test (code ${proc.exit?.code}, signal ${proc.exit?.signal})`
        : 'stopped';
      t.diagnostic(`${name} ${status}; its last output lines:`);
      for (const line of tail.trimEnd().split('\n').slice(-DIAGNOSTIC_LINES))
        t.diagnostic(`  ${name}| ${line}`);
    }
  });
  return proc;
}

/** Waits for a line of stdout or stderr matching `re` (lines already printed count) and returns it. */
export function waitForLine(proc: Proc, re: RegExp, timeoutMs: number): Promise<string> {
  const p = proc as ProcInternal;
  const seen = p.lines.find((l) => re.test(l));
  if (seen !== undefined) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const done = (fn: () => void): void => {
      clearTimeout(timer);
      p.lineListeners.delete(onLine);
      fn();
    };
    const onLine = (line: string): void => {
      if (re.test(line)) done(() => resolve(line));
    };
    const timer = setTimeout(
      () =>
        done(() =>
          reject(
            new Error(`${proc.name}: no line matching ${re} within ${timeoutMs} ms\n${describeProc(proc)}`),
          ),
        ),
      timeoutMs,
    );
    p.lineListeners.add(onLine);
    void proc.exited.then(() =>
      // let the last output chunks arrive before giving up
      setTimeout(
        () =>
          done(() =>
            reject(
              new Error(`${proc.name} exited before printing a line matching ${re}\n${describeProc(proc)}`),
            ),
          ),
        50,
      ),
    );
  });
}

function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host });
    const timer = setTimeout(() => finish(false), 1000);
    function finish(ok: boolean): void {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    }
    s.once('connect', () => finish(true));
    s.once('error', () => finish(false));
  });
}

/** Polls until a TCP connect to host:port succeeds; fails early if `proc` exits. */
export async function waitForTcpPort(
  port: number,
  timeoutMs: number,
  proc?: Proc,
  host = '127.0.0.1',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (proc?.exit) break;
    if (await tryConnect(port, host)) return;
    await sleep(50);
  }
  const why = proc?.exit ? 'the process exited first' : `not within ${timeoutMs} ms`;
  throw new Error(
    `TCP port ${host}:${port} did not accept connections (${why})${proc ? `\n${describeProc(proc)}` : ''}`,
  );
}

function udpPortBound(port: number): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return true; // no /proc (not Linux): cannot tell; callers retry their datagrams anyway
    }
    // each row: "sl local_address rem_address st ...", local_address like 0100007F:1F90
    const rows = text.split('\n').slice(1);
    if (rows.some((row) => (row.trim().split(/\s+/)[1] ?? '').endsWith(suffix))) return true;
  }
  return false;
}

/** Polls /proc/net/udp{,6} until something has bound UDP `port` (Linux); fails early if `proc` exits. */
export async function waitForUdpPort(port: number, timeoutMs: number, proc?: Proc): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (proc?.exit) break;
    if (udpPortBound(port)) return;
    await sleep(50);
  }
  const why = proc?.exit ? 'the process exited first' : `not within ${timeoutMs} ms`;
  throw new Error(`UDP port ${port} was not bound (${why})${proc ? `\n${describeProc(proc)}` : ''}`);
}

/** Throws unless `name` is an executable on PATH. In CI and locally alike: a missing peer is a failure. */
export function requireBinary(name: string, debPackage: string): string {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8', timeout: 5000 });
  const path = r.status === 0 ? r.stdout.trim() : '';
  if (!path) {
    throw new Error(
      `required program "${name}" is not installed (not on PATH). ` +
        `Install the Debian package: apt-get install -y --no-install-recommends ${debPackage}`,
    );
  }
  return path;
}
