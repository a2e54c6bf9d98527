// What the server needs from whoever manages access keys (the control plane implements these).
import type { MethodName } from '../wire/shadowsocks-methods.js';

export interface ServerKey {
  readonly id: string;
  readonly method: MethodName;
  /** SIP004 password or SIP022 user PSK (base64). */
  readonly secret: string;
  readonly port: number;
}

export interface UserSource {
  /** Every key that exists, allowed or not. */
  keys(): ServerKey[];
  /** SIP023 identity PSK (base64) for a 2022 AES method, if multi-user 2022 is in use. */
  identityPsk(method: MethodName): string | undefined;
  /** Whether the key may relay now: not paused, not expired, not over its data limit. */
  isAllowed(id: string, now: number): boolean;
  /** Bytes relayed for a key (both directions count). */
  addUsage(id: string, bytes: number): void;
  /** Marks the key as seen (throttle inside; called on every new connection). */
  touch(id: string, now: number): void;
  /** Changes whenever keys or their allowed state may have changed; the server reloads then. */
  version(): number;
}

/** Observability sink: the control plane backs it with Prometheus counters. */
export interface ServerEvents {
  bytes(keyId: string, direction: 'in' | 'out', n: number): void;
  connectionOpened(keyId: string, protocol: 'tcp' | 'udp'): void;
  connectionClosed(keyId: string, protocol: 'tcp' | 'udp'): void;
  authFailure(reason: string): void;
  connectionError(kind: string): void;
}

/** Events nobody listens to (quick mode, tests). */
export const NO_EVENTS: ServerEvents = {
  bytes: () => undefined,
  connectionOpened: () => undefined,
  connectionClosed: () => undefined,
  authFailure: () => undefined,
  connectionError: () => undefined,
};
