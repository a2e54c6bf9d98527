// Open connections and UDP associations per access key, so that a key that stops being allowed
// (paused, expired, over its limit, deleted) loses them, not only its new connections.
export class ConnectionRegistry {
  private readonly byKey = new Map<string, Set<() => void>>();

  /** Registers a closer; returns the function that unregisters it. */
  add(keyId: string, close: () => void): () => void {
    let set = this.byKey.get(keyId);
    if (!set) this.byKey.set(keyId, (set = new Set()));
    set.add(close);
    return () => {
      set.delete(close);
      if (set.size === 0 && this.byKey.get(keyId) === set) this.byKey.delete(keyId);
    };
  }

  count(keyId?: string): number {
    if (keyId !== undefined) return this.byKey.get(keyId)?.size ?? 0;
    let n = 0;
    for (const s of this.byKey.values()) n += s.size;
    return n;
  }

  /** Closes every connection of the keys for which `allowed` is false. */
  enforce(allowed: (keyId: string) => boolean): void {
    for (const [keyId, set] of [...this.byKey]) {
      if (allowed(keyId)) continue;
      for (const close of [...set]) close();
      this.byKey.delete(keyId);
    }
  }

  closeAll(): void {
    this.enforce(() => false);
  }
}
