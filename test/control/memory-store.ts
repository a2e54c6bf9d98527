// An in-memory KeyStore for tests of the API and the share formats: the same contract as the SQLite
// store (ids "1", "2", … never reused; generated secrets and tokens; input checks that throw an error
// named StoreError; usage per UTC day with a 30-day window; copies out, never live objects).
import { randomBytes, randomUUID } from 'node:crypto';
import { isMethodName } from '../../src/wire/shadowsocks-methods.js';
import {
  StoreError,
  checkLimit,
  checkName,
  checkPort,
  checkPrefix,
  checkSecret,
  checkSettingsPatch,
  checkTime,
  newSecret,
} from '../../src/control/key-rules.js';
import type {
  AccessKey,
  DailyUsage,
  KeyPatch,
  KeyStore,
  KeyUsage,
  NewKey,
  ServerSettings,
} from '../../src/control/types.js';

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

const copyKey = (k: AccessKey): AccessKey => ({ ...k, dataLimit: k.dataLimit && { ...k.dataLimit } });
const copySettings = (s: ServerSettings): ServerSettings => ({
  ...s,
  defaultDataLimit: s.defaultDataLimit && { ...s.defaultDataLimit },
  identityPsks: { ...s.identityPsks },
});

export class MemoryKeyStore implements KeyStore {
  private readonly keys = new Map<string, AccessKey>();
  /** key → UTC day → bytes */
  private readonly daily = new Map<string, Map<number, number>>();
  private nextId = 1;
  private changes = 0;
  private closed = false;
  private s: ServerSettings;

  constructor(
    settings: Partial<ServerSettings> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.s = {
      serverId: randomUUID(),
      name: 'Pigeon',
      createdAt: this.now(),
      hostname: '',
      portForNewKeys: 20_000 + Math.floor(Math.random() * 40_000),
      defaultMethod: 'chacha20-ietf-poly1305',
      defaultDataLimit: null,
      defaultDisguise: true,
      identityPsks: {},
      ...settings,
    };
  }

  private live(): void {
    if (this.closed) throw new Error('the store is closed');
  }

  listKeys(): AccessKey[] {
    this.live();
    return [...this.keys.values()].sort((a, b) => Number(a.id) - Number(b.id)).map(copyKey);
  }

  getKey(id: string): AccessKey | undefined {
    this.live();
    const k = this.keys.get(id);
    return k && copyKey(k);
  }

  getKeyByToken(token: string): AccessKey | undefined {
    this.live();
    for (const k of this.keys.values()) if (k.token === token) return copyKey(k);
    return undefined;
  }

  createKey(input: NewKey): AccessKey {
    this.live();
    if (!isMethodName(input.method)) throw new StoreError(`unknown method ${String(input.method)}`);
    checkPort(input.port);
    if (input.name !== undefined) checkName(input.name);
    checkLimit(input.dataLimit);
    checkTime('expiresAt', input.expiresAt);
    const secret = input.secret ?? newSecret(input.method);
    checkSecret(input.method, secret);
    checkPrefix(input.prefix, input.method);
    const id = String(this.nextId++);
    const key: AccessKey = {
      id,
      name: input.name ?? `Key ${id}`,
      secret,
      method: input.method,
      port: input.port,
      token: randomBytes(18).toString('base64url'),
      createdAt: this.now(),
      expiresAt: input.expiresAt ?? null,
      dataLimit: input.dataLimit ? { ...input.dataLimit } : null,
      paused: false,
      lastSeen: null,
      prefix: input.prefix ?? null,
    };
    this.keys.set(id, key);
    this.changes++;
    return copyKey(key);
  }

  updateKey(id: string, patch: KeyPatch): AccessKey | undefined {
    this.live();
    if (patch.name !== undefined) checkName(patch.name);
    checkLimit(patch.dataLimit);
    checkTime('expiresAt', patch.expiresAt);
    checkTime('lastSeen', patch.lastSeen);
    if (patch.paused !== undefined && typeof patch.paused !== 'boolean')
      throw new StoreError('paused must be true or false');
    const k = this.keys.get(id);
    if (!k) return undefined;
    if (patch.prefix !== undefined) checkPrefix(patch.prefix, k.method);
    if (patch.prefix !== undefined) k.prefix = patch.prefix;
    if (patch.name !== undefined) k.name = patch.name;
    if (patch.expiresAt !== undefined) k.expiresAt = patch.expiresAt;
    if (patch.dataLimit !== undefined) k.dataLimit = patch.dataLimit && { ...patch.dataLimit };
    if (patch.paused !== undefined) k.paused = patch.paused;
    if (patch.lastSeen !== undefined) k.lastSeen = patch.lastSeen;
    this.changes++;
    return copyKey(k);
  }

  deleteKey(id: string): boolean {
    this.live();
    this.daily.delete(id);
    const existed = this.keys.delete(id);
    if (existed) this.changes++;
    return existed;
  }

  addUsage(id: string, bytes: number, at = this.now()): void {
    if (!(bytes > 0) || this.closed || !this.keys.has(id)) return;
    let days = this.daily.get(id);
    if (!days) this.daily.set(id, (days = new Map()));
    const d = dayOf(at);
    days.set(d, (days.get(d) ?? 0) + bytes);
  }

  usage(id: string, now = this.now()): KeyUsage {
    const from = dayOf(now) - 29;
    let total = 0;
    let last30d = 0;
    for (const [day, b] of this.daily.get(id) ?? []) {
      total += b;
      if (day >= from) last30d += b;
    }
    return { total, last30d };
  }

  usageAll(now = this.now()): Map<string, KeyUsage> {
    return new Map([...this.keys.keys()].map((id) => [id, this.usage(id, now)]));
  }

  dailyUsage(id: string, days = 30, now = this.now()): DailyUsage[] {
    const today = dayOf(now);
    const from = today - Math.max(1, Math.min(days, 31)) + 1;
    const byDay = this.daily.get(id) ?? new Map<number, number>();
    const out: DailyUsage[] = [];
    for (let d = from; d <= today; d++) {
      out.push({ day: new Date(d * DAY_MS).toISOString().slice(0, 10), bytes: byDay.get(d) ?? 0 });
    }
    return out;
  }

  settings(): ServerSettings {
    this.live();
    return copySettings(this.s);
  }

  updateSettings(patch: Partial<Omit<ServerSettings, 'serverId' | 'createdAt'>>): ServerSettings {
    this.live();
    checkSettingsPatch(patch);
    const next = copySettings(this.s);
    const mutable = next as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(patch)) {
      if (v !== undefined && k !== 'serverId' && k !== 'createdAt') mutable[k] = v;
    }
    this.s = copySettings(next);
    this.changes++;
    return copySettings(this.s);
  }

  changeCounter(): number {
    return this.changes;
  }

  flush(): void {}

  close(): void {
    this.closed = true;
  }
}
