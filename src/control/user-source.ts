// The key store as the server sees it: which keys exist, whether each may relay now (paused,
// expired, over its data limit), and where usage goes. Decisions are made from memory — the store
// is consulted only when it reports a change, and usage since the last snapshot is counted here.
import type { ServerKey, UserSource } from '../server/users.js';
import type { MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, KeyStore, ServerSettings } from './types.js';

const TOUCH_EVERY_MS = 60_000;
const USAGE_REFRESH_MS = 60_000;

export class StoreUserSource implements UserSource {
  private keysById = new Map<string, AccessKey>();
  private serverKeys: ServerKey[] = [];
  private settings!: ServerSettings;
  private usedAtSnapshot = new Map<string, { total: number; last30d: number }>();
  private usedSince = new Map<string, number>();
  private snapshotAt = 0;
  private seenVersion = -1;
  private readonly lastTouch = new Map<string, number>();

  constructor(
    private readonly store: KeyStore,
    private readonly now: () => number = Date.now,
  ) {
    this.reload();
  }

  /** Bumped on every reload: what the server watches (last-seen writes do not bump it). */
  private generation = 0;

  private reload(): void {
    this.generation++;
    this.seenVersion = this.store.changeCounter();
    this.settings = this.store.settings();
    const keys = this.store.listKeys();
    this.keysById = new Map(keys.map((k) => [k.id, k]));
    this.serverKeys = keys.map((k) => ({ id: k.id, method: k.method, secret: k.secret, port: k.port }));
    this.refreshUsage();
  }

  private refreshUsage(): void {
    this.usedAtSnapshot = this.store.usageAll(this.now());
    this.usedSince.clear();
    this.snapshotAt = this.now();
  }

  keys(): ServerKey[] {
    return this.serverKeys;
  }

  identityPsk(m: MethodName): string | undefined {
    return this.settings.identityPsks[m];
  }

  isAllowed(id: string, now: number): boolean {
    const k = this.keysById.get(id);
    if (!k || k.paused) return false;
    if (k.expiresAt !== null && k.expiresAt <= now) return false;
    const limit = k.dataLimit ?? this.settings.defaultDataLimit;
    if (!limit) return true;
    const snap = this.usedAtSnapshot.get(id);
    const base = limit.window === 'total' ? (snap?.total ?? 0) : (snap?.last30d ?? 0);
    return base + (this.usedSince.get(id) ?? 0) < limit.bytes;
  }

  addUsage(id: string, bytes: number): void {
    this.store.addUsage(id, bytes);
    this.usedSince.set(id, (this.usedSince.get(id) ?? 0) + bytes);
  }

  touch(id: string, now: number): void {
    const last = this.lastTouch.get(id) ?? 0;
    if (now - last < TOUCH_EVERY_MS) return;
    this.lastTouch.set(id, now);
    const k = this.keysById.get(id);
    if (k) k.lastSeen = now; // visible at once; written with the next change
    this.pendingSeen.set(id, now);
  }

  private readonly pendingSeen = new Map<string, number>();

  /** Writes last-seen times (batched: the server calls this from its periodic check). */
  private writeSeen(): void {
    for (const [id, at] of this.pendingSeen) this.store.updateKey(id, { lastSeen: at });
    this.pendingSeen.clear();
  }

  version(): number {
    const v = this.store.changeCounter();
    if (v !== this.seenVersion) this.reload();
    else if (this.now() - this.snapshotAt > USAGE_REFRESH_MS) this.refreshUsage(); // the 30-day window moves
    if (this.pendingSeen.size) {
      // Our own last-seen writes need no reload; each bumps the counter by one. If the counter moved
      // by more, another process committed meanwhile, and the next call reloads.
      const expected = this.store.changeCounter() + this.pendingSeen.size;
      this.writeSeen();
      if (this.store.changeCounter() === expected) this.seenVersion = expected;
    }
    return this.generation;
  }
}
