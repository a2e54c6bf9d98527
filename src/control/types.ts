// The control plane's model: access keys, their limits and usage, and the store that keeps them.
// The store, the management API, the CLI and the server all speak these types.
import type { MethodName } from '../wire/shadowsocks-methods.js';

export type LimitWindow = 'rolling-30d' | 'total';

export interface DataLimit {
  /** Bytes in + out that the key may relay in the window. */
  bytes: number;
  window: LimitWindow;
}

export interface AccessKey {
  /** Short, stable, never reused: "1", "2", … (Outline uses the same shape). */
  readonly id: string;
  name: string;
  /** SIP004: the password. SIP022: the user's base64 PSK (the URI carries "iPSK:uPSK"). */
  readonly secret: string;
  readonly method: MethodName;
  /** The server port this key is served on. */
  readonly port: number;
  /** Unguessable token for this key's subscription paths (SIP008, ssconf://, Clash, sing-box). */
  readonly token: string;
  readonly createdAt: number; // ms since epoch
  expiresAt: number | null; // ms since epoch
  dataLimit: DataLimit | null;
  paused: boolean;
  lastSeen: number | null; // ms since epoch
  /**
   * First-packet disguise (src/wire/first-packet.ts): printable bytes that replace the start of the
   * client's salt, carried in the URI as Outline's `prefix` parameter. Null: no disguise.
   */
  prefix: string | null;
}

export interface KeyUsage {
  /** All bytes relayed since the key was created. */
  total: number;
  /** Bytes relayed in the last 30 days (day granularity). */
  last30d: number;
}

export interface NewKey {
  name?: string;
  method: MethodName;
  port: number;
  /** Generated when absent (SIP004: 22 random base64url chars; SIP022: a random key of the method's size). */
  secret?: string;
  expiresAt?: number | null;
  dataLimit?: DataLimit | null;
  prefix?: string | null;
}

export type KeyPatch = Partial<
  Pick<AccessKey, 'name' | 'expiresAt' | 'dataLimit' | 'paused' | 'lastSeen' | 'prefix'>
>;

/** Bytes a key relayed on one UTC day. */
export interface DailyUsage {
  /** YYYY-MM-DD (UTC). */
  day: string;
  bytes: number;
}

/** Server-wide settings, stored beside the keys. */
export interface ServerSettings {
  serverId: string;
  name: string;
  createdAt: number;
  /** Host name or IP put into access URIs. */
  hostname: string;
  /** Port given to keys created from now on. */
  portForNewKeys: number;
  /** Method given to keys created without one. */
  defaultMethod: MethodName;
  /** Applies to keys without a limit of their own. */
  defaultDataLimit: DataLimit | null;
  /** Whether new keys get a first-packet disguise prefix (true unless turned off). */
  defaultDisguise: boolean;
  /** SIP023 identity PSKs (base64), one per 2022 AES method, created on first use. */
  identityPsks: Partial<Record<MethodName, string>>;
}

export interface KeyStore {
  listKeys(): AccessKey[];
  getKey(id: string): AccessKey | undefined;
  getKeyByToken(token: string): AccessKey | undefined;
  createKey(input: NewKey): AccessKey;
  updateKey(id: string, patch: KeyPatch): AccessKey | undefined;
  /** True if the key existed. Its usage rows go with it. */
  deleteKey(id: string): boolean;

  /** Counts relayed bytes; buffered in memory and written by flush() (called periodically). */
  addUsage(id: string, bytes: number, at?: number): void;
  /** Usage including what is buffered but not yet flushed. */
  usage(id: string, now?: number): KeyUsage;
  usageAll(now?: number): Map<string, KeyUsage>;
  /** One entry per UTC day of the last `days` days (oldest first, today last), zero where idle. */
  dailyUsage(id: string, days?: number, now?: number): DailyUsage[];

  settings(): ServerSettings;
  updateSettings(patch: Partial<Omit<ServerSettings, 'serverId' | 'createdAt'>>): ServerSettings;

  /** A number that changes whenever any connection (this process or another) commits a change. */
  changeCounter(): number;
  flush(): void;
  close(): void;
}
