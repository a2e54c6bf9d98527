// Creating access keys with the server's defaults, shared by the management API and the CLI.
import { randomBytes } from 'node:crypto';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import { disguisePrefix } from '../wire/first-packet.js';
import type { AccessKey, DataLimit, KeyStore, ServerSettings } from './types.js';

export interface CreateKeyInput {
  name?: string;
  method?: MethodName;
  secret?: string;
  dataLimit?: DataLimit | null;
  expiresAt?: number | null;
  /** First-packet disguise for this key; the server's default (on unless turned off) when absent. */
  disguise?: boolean;
}

/** A new random disguise prefix for a key of this method (src/wire/first-packet.ts). */
export function newDisguisePrefix(method: MethodName): string {
  return disguisePrefix(randomBytes(16), methodSpec(method).saltSize);
}

/** The prefix a new key gets: a fresh one when disguise is asked for (or is the server's default). */
export function prefixForNewKey(
  method: MethodName,
  disguise: boolean | undefined,
  s: ServerSettings,
): string | null {
  return (disguise ?? s.defaultDisguise) ? newDisguisePrefix(method) : null;
}

/**
 * A new key on the port for new keys, with the default method unless one is given. The first 2022
 * AES key of a method also creates that method's SIP023 identity PSK, shared by all its keys so
 * that they can live on one port.
 */
export function createAccessKey(store: KeyStore, input: CreateKeyInput): AccessKey {
  const s = store.settings();
  const method = input.method ?? s.defaultMethod;
  const spec = methodSpec(method);
  if (spec.edition === '2022' && spec.cipher !== 'chacha20-poly1305' && !s.identityPsks[method]) {
    store.updateSettings({
      identityPsks: { ...s.identityPsks, [method]: randomBytes(spec.keySize).toString('base64') },
    });
  }
  return store.createKey({
    name: input.name,
    method,
    port: s.portForNewKeys,
    secret: input.secret,
    dataLimit: input.dataLimit ?? null,
    expiresAt: input.expiresAt ?? null,
    prefix: prefixForNewKey(method, input.disguise, s),
  });
}
