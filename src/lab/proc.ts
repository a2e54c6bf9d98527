// Child processes of the lab: started in a network namespace (`ip netns exec`), their output kept (a
// bounded tail), lines awaited with a deadline, and stopped with SIGTERM then SIGKILL.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TAIL_CHARS = 32_768;
const MAX_LINES = 5000;

export interface LabProc {
  readonly name: string;
  readonly child: ChildProcess;
  /** Lines printed so far (stdout and stderr), the last 5000. */
  readonly lines: string[];
  /** The last 32 KB of output. */
  output(): string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  readonly exited: Promise<void>;
  /** Resolves with the first line (already printed or to come) matching `re`; rejects at the deadline or exit. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string>;
  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Runs `cmd args` in network namespace `ns` (or here when undefined). */
export function startIn(
  ns: string | undefined,
  name: string,
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): LabProc {
  if (!exitHook) {
    exitHook = true;
    // Last resort: never leave lab processes behind when this process exits.
    process.once('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const [file, argv] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
  // cwd: the tree's root, where `--import tsx` resolves when the lab runs from its sources.
  const child = spawn(file, argv, {
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  let tail = '';
  const lines: string[] = [];
  const listeners = new Set<(line: string) => void>();
  const partial = { stdout: '', stderr: '' };
  let onExit: () => void = () => undefined;
  const exited = new Promise<void>((r) => (onExit = r));
  const proc: LabProc = {
    name,
    child,
    lines,
    output: () => tail,
    exit: null,
    exited,
    waitForLine(re, timeoutMs) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const finish = (fn: () => void): void => {
          clearTimeout(timer);
          listeners.delete(listener);
          fn();
        };
        const listener = (line: string): void => {
          if (re.test(line)) finish(() => resolve(line));
        };
        const why = (what: string): Error =>
          new Error(`${name}: ${what} before printing a line matching ${re}; its output:\n${tail.trim()}`);
        const timer = setTimeout(
          () => finish(() => reject(why(`no such line within ${timeoutMs} ms`))),
          timeoutMs,
        );
        listeners.add(listener);
        void exited.then(() => setTimeout(() => finish(() => reject(why('exited'))), 50));
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 2000) {
      if (proc.exit) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const done = (code: number | null, signal: NodeJS.Signals | null): void => {
    if (proc.exit) return;
    live.delete(child);
    proc.exit = { code, signal };
    onExit();
  };
  child.once('exit', done);
  child.once('error', (e) => {
    tail += `\n[cannot start ${file}: ${e.message}]\n`;
    done(null, null);
  });
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream]?.setEncoding('utf8');
    child[stream]?.on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-TAIL_CHARS);
      const parts = (partial[stream] + chunk).split('\n');
      partial[stream] = (parts.pop() ?? '').slice(-TAIL_CHARS);
      for (const line of parts) {
        lines.push(line);
        if (lines.length > MAX_LINES) lines.shift();
        for (const l of listeners) l(line);
      }
    });
  }
  return proc;
}

/** Runs a command to completion (10 s at most); throws with its stderr when it fails. */
export function run(cmd: string, args: string[], timeoutMs = 10_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return r.stdout;
}

/** True when `cmd` is on PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { timeout: 5000 }).status === 0;
}

const HERE = fileURLToPath(import.meta.url);
/** The repository (or package) root. */
export const ROOT = join(HERE, '../../..');
/** Running from TypeScript sources (tsx) rather than the compiled dist/. */
const FROM_SOURCE = extname(HERE) === '.ts';

/**
 * How to run a module of this tree as a program: `node [--import tsx] FILE`, where FILE is `rel` under
 * src/ (tsx) or dist/ (compiled), whichever this code itself runs from, so the lab runs the same build.
 */
export function nodeModuleCommand(rel: string): { cmd: string; args: string[] } {
  const file = join(ROOT, FROM_SOURCE ? 'src' : 'dist', rel.replace(/\.js$/, FROM_SOURCE ? '.ts' : '.js'));
  return { cmd: process.execPath, args: [...(FROM_SOURCE ? ['--import', 'tsx'] : []), file] };
}
