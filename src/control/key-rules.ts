// The rules every key store applies to its input, in one place: the SQLite store and the test double
// both refuse bad input with the same StoreError and the same message (meant for the user).
import { randomBytes } from 'node:crypto';
import { isMethodName, methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import { MIN_RANDOM_SALT_BYTES } from '../wire/first-packet.js';
import type { DataLimit, ServerSettings } from './types.js';

/** A request the store refuses (bad input); its message is meant for the user. */
export class StoreError extends Error {
  override name = 'StoreError';
}

export function checkLimit(l: DataLimit | null | undefined): void {
  if (l === undefined || l === null) return;
  if (!Number.isSafeInteger(l.bytes) || l.bytes < 0)
    throw new StoreError('data limit must be a whole number of bytes ≥ 0');
  if (l.window !== 'rolling-30d' && l.window !== 'total')
    throw new StoreError('data limit window must be rolling-30d or total');
}

export function checkName(name: unknown): void {
  if (typeof name !== 'string') throw new StoreError('key name must be a string');
  if (name.length > 100) throw new StoreError('key name must be at most 100 characters');
}

export function checkPort(port: unknown): void {
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535)
    throw new StoreError('port must be a whole number in 1..65535');
}

export function checkPrefix(p: unknown, method: MethodName): void {
  if (p === null || p === undefined) return;
  const max = methodSpec(method).saltSize - MIN_RANDOM_SALT_BYTES;
  if (typeof p !== 'string' || p.length === 0 || [...p].some((c) => c.charCodeAt(0) > 255) || p.length > max)
    throw new StoreError(`prefix must be 1..${max} bytes (characters U+0000..U+00FF) for ${method}`);
}

export function checkTime(what: string, t: unknown): void {
  if (t !== null && t !== undefined && (typeof t !== 'number' || !Number.isFinite(t)))
    throw new StoreError(`${what} must be a time in ms since the epoch, or null`);
}

/** Strict base64 (padding optional): Buffer.from skips stray characters, the round trip does not. */
function decodeBase64(s: string): Buffer | undefined {
  const b = Buffer.from(s, 'base64');
  return b.toString('base64').replace(/=+$/, '') === s.replace(/=+$/, '') ? b : undefined;
}

export function newSecret(method: MethodName): string {
  const spec = methodSpec(method);
  return spec.edition === '2022'
    ? randomBytes(spec.keySize).toString('base64')
    : randomBytes(16).toString('base64url');
}

export function checkSecret(method: MethodName, secret: unknown): void {
  const spec = methodSpec(method);
  if (typeof secret !== 'string' || secret.length === 0)
    throw new StoreError('the secret must be a non-empty string');
  if (spec.edition === '2022' && decodeBase64(secret)?.length !== spec.keySize)
    throw new StoreError(`${spec.name} needs a base64 key of ${spec.keySize} bytes`);
}

/** Checks a settings patch (every field that is present). */
export function checkSettingsPatch(patch: Partial<Omit<ServerSettings, 'serverId' | 'createdAt'>>): void {
  if (patch.name !== undefined && (typeof patch.name !== 'string' || patch.name.length > 100))
    throw new StoreError('server name must be a string of at most 100 characters');
  if (patch.hostname !== undefined && typeof patch.hostname !== 'string')
    throw new StoreError('hostname must be a string');
  if (patch.portForNewKeys !== undefined) checkPort(patch.portForNewKeys);
  if (patch.defaultMethod !== undefined && !isMethodName(patch.defaultMethod))
    throw new StoreError(`unknown method ${String(patch.defaultMethod)}`);
  checkLimit(patch.defaultDataLimit);
  if (patch.defaultDisguise !== undefined && typeof patch.defaultDisguise !== 'boolean')
    throw new StoreError('defaultDisguise must be true or false');
  if (patch.identityPsks !== undefined) {
    for (const [m, psk] of Object.entries(patch.identityPsks)) {
      if (!isMethodName(m) || methodSpec(m).edition !== '2022')
        throw new StoreError(`no identity PSK for ${m}`);
      checkSecret(m, psk);
    }
  }
}
