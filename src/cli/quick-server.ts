// `pigeon server` with no options: a key and port created on first start and reused afterwards, so
// the URI a person shared keeps working across restarts.
import { mkdirSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { networkInterfaces, homedir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomInt } from 'node:crypto';
import { isMethodName, type MethodName } from '../wire/shadowsocks-methods.js';

export interface QuickServer {
  method: MethodName;
  password: string;
  port: number;
}

/** Per-user data directory: $PIGEON_DATA, else $XDG_DATA_HOME/pigeon, else ~/.local/share/pigeon. */
export function dataDir(): string {
  if (process.env.PIGEON_DATA) return process.env.PIGEON_DATA;
  const base = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'pigeon');
}

// chacha20-ietf-poly1305 is what every Shadowsocks app (Outline included) speaks; SIP022 methods
// are available with --method for apps that support them.
const DEFAULT_METHOD: MethodName = 'chacha20-ietf-poly1305';

export function loadQuickServer(dir = dataDir()): QuickServer {
  const file = join(dir, 'quick-server.json');
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<QuickServer>;
    if (
      typeof v.method === 'string' &&
      isMethodName(v.method) &&
      typeof v.password === 'string' &&
      v.password.length > 0 &&
      Number.isInteger(v.port) &&
      v.port! > 0 &&
      v.port! < 65536
    ) {
      return { method: v.method, password: v.password, port: v.port! };
    }
    throw new Error(`${file} is not a valid saved server; delete it to create a new key`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const created: QuickServer = {
    method: DEFAULT_METHOD,
    password: randomBytes(24).toString('base64url'),
    // A random high port: well-known proxy ports are the first a censor scans.
    port: randomInt(20_000, 60_000),
  };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(created, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
  return created;
}

/** The address to put in URIs when the server listens on a wildcard: the first public-looking one. */
export function publicHostGuess(listenHost: string): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = all.find((i) => i.family === 'IPv4' && !i.internal);
  return v4?.address ?? '127.0.0.1';
}
