// Finds which access key a new connection or packet belongs to, for many keys on one port:
// SIP022 AES keys by their SIP023 identity header (one hash lookup, whatever the number of keys);
// other keys by trial decryption of the first chunk, trying the key last used from the same client
// address first (Outline's approach).
import { aesBlock, identitySubkey, masterKey, pskHash, sessionSubkey } from '../crypto/kdf.js';
import { AuthError, open, TAG_SIZE } from '../crypto/aead.js';
import type { StreamKey } from '../crypto/ss-stream.js';
import { REQUEST_FIXED_HEADER_SIZE } from '../wire/shadowsocks-2022.js';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import type { ServerKey } from './users.js';

export interface RingKey {
  readonly id: string;
  readonly key: StreamKey;
}

export type TcpMatch =
  | { kind: 'match'; user: RingKey; /** identity-header bytes after the salt, to skip */ skip: number }
  | { kind: 'need-more' }
  | { kind: 'none' };

export interface IdentityGroup {
  readonly method: MethodName;
  readonly ipsk: Buffer;
  /** hex of pskHash(uPSK) → key */
  readonly byHash: Map<string, RingKey>;
}

const ZERO_NONCE = Buffer.alloc(12);
const MRU_LIMIT = 10_000;

export class KeyRing {
  private readonly groups: IdentityGroup[] = [];
  private readonly trial: RingKey[] = [];
  private readonly byId = new Map<string, RingKey>();
  /** client IP → id of the key that last authenticated from it */
  private readonly recent = new Map<string, string>();

  constructor(keys: readonly ServerKey[], identityPsk: (m: MethodName) => string | undefined) {
    const groups = new Map<MethodName, IdentityGroup>();
    for (const k of keys) {
      const spec = methodSpec(k.method);
      let key: StreamKey;
      try {
        key = { spec, key: masterKey(spec, k.secret) };
      } catch {
        continue; // a key with a malformed secret cannot authenticate anyone
      }
      const rk: RingKey = { id: k.id, key };
      this.byId.set(k.id, rk);
      const ipskText =
        spec.edition === '2022' && spec.cipher !== 'chacha20-poly1305' ? identityPsk(k.method) : undefined;
      if (ipskText) {
        let g = groups.get(k.method);
        if (!g) {
          g = { method: k.method, ipsk: masterKey(spec, ipskText), byHash: new Map() };
          groups.set(k.method, g);
        }
        g.byHash.set(pskHash(key.key).toString('hex'), rk);
      } else {
        this.trial.push(rk);
      }
    }
    this.groups = [...groups.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  get(id: string): RingKey | undefined {
    return this.byId.get(id);
  }

  /** Identity groups (for UDP separate headers encrypted with the identity PSK). */
  identityGroups(): readonly IdentityGroup[] {
    return this.groups;
  }

  /** Looks up a user by the decrypted identity header of a group. */
  byIdentity(group: IdentityGroup, hash: Buffer): RingKey | undefined {
    return group.byHash.get(hash.toString('hex'));
  }

  /** Keys without identity headers, `preferred` (or the one last used from `clientIp`) first. */
  *trialOrder(clientIp: string, preferred?: RingKey): Generator<RingKey> {
    const lastId = this.recent.get(clientIp);
    const first = preferred ?? (lastId ? this.byId.get(lastId) : undefined);
    if (first) yield first;
    for (const k of this.trial) if (k !== first) yield k;
  }

  remember(clientIp: string, id: string): void {
    if (this.recent.size >= MRU_LIMIT) this.recent.clear();
    this.recent.set(clientIp, id);
  }

  /** Identifies a TCP request stream from its first bytes. */
  matchTcp(b: Buffer, clientIp: string): TcpMatch {
    let wantMore = false;
    for (const g of this.groups) {
      const saltSize = g.ipsk.length;
      if (b.length < saltSize + 16) {
        wantMore = true;
        continue;
      }
      const salt = b.subarray(0, saltSize);
      const hash = aesBlock(identitySubkey(g.ipsk, salt), false, b.subarray(saltSize, saltSize + 16));
      const user = this.byIdentity(g, hash);
      if (user) return { kind: 'match', user, skip: 16 };
    }
    return (
      withoutStackTraces(() => this.trialTcp(b, clientIp)) ??
      (wantMore ? { kind: 'need-more' } : { kind: 'none' })
    );
  }

  private trialTcp(b: Buffer, clientIp: string): TcpMatch | undefined {
    let wantMore = false;
    for (const k of this.trialOrder(clientIp)) {
      const spec = k.key.spec;
      const first = spec.edition === 'aead' ? 2 : REQUEST_FIXED_HEADER_SIZE;
      const need = spec.saltSize + first + TAG_SIZE;
      if (b.length < need) {
        wantMore = true;
        continue;
      }
      const salt = b.subarray(0, spec.saltSize);
      try {
        open(spec.cipher, sessionSubkey(spec, k.key.key, salt), ZERO_NONCE, b.subarray(spec.saltSize, need));
      } catch (e) {
        if (e instanceof AuthError) continue;
        throw e;
      }
      this.remember(clientIp, k.id);
      return { kind: 'match', user: k, skip: 0 };
    }
    return wantMore ? { kind: 'need-more' } : undefined;
  }
}

/** Runs trial decryptions: a failed AEAD open throws, and with thousands of keys the stack traces cost more than the crypto. */
export function withoutStackTraces<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** A ring with one key: quick mode. */
export function singleKeyRing(method: MethodName, password: string): KeyRing {
  return new KeyRing([{ id: 'default', method, secret: password.split(':').pop()!, port: 0 }], (m) =>
    m === method && password.includes(':') ? password.split(':')[0] : undefined,
  );
}
