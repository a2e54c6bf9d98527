// Creating access keys with the server's defaults, shared by the management API and the CLI.
import { randomBytes } from 'node:crypto';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, DataLimit, KeyStore } from './types.js';

export interface CreateKeyInput {
  name?: string;
  method?: MethodName;
  secret?: string;
  dataLimit?: DataLimit | null;
  expiresAt?: number | null;
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
  });
}
