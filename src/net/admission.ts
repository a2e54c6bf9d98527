// Admission of connections that have not proved anything yet (no valid first packet, no TLS handshake,
// no Trojan password): a cap per client address and one for all, so a flood of half-open, slow or junk
// connections cannot take every file descriptor (a process may hold 20,000 here) from real users.
// Proven connections leave this accounting (their key's limits apply from then on).
//
// The caps only bind a client that already holds that many unproven connections at once; the
// firewall's probes come from many addresses, a few each, and never see them.

export interface AdmissionLimits {
  /** Unproven connections one address may hold at once. */
  perAddress: number;
  /** Unproven connections all addresses together may hold at once. */
  total: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { perAddress: 64, total: 4096 };

export class Admission {
  private readonly byAddress = new Map<string, number>();
  private count = 0;
  private refusedCount = 0;

  constructor(private readonly limits: AdmissionLimits = DEFAULT_ADMISSION) {}

  /**
   * Admits an unproven connection from `address`; returns the function that ends its accounting
   * (call it once proven or closed; later calls do nothing), or undefined when a cap is reached.
   */
  admit(address: string): (() => void) | undefined {
    const n = this.byAddress.get(address) ?? 0;
    if (n >= this.limits.perAddress || this.count >= this.limits.total) {
      this.refusedCount++;
      return undefined;
    }
    this.byAddress.set(address, n + 1);
    this.count++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.count--;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left > 0) this.byAddress.set(address, left);
      else this.byAddress.delete(address);
    };
  }

  /** Unproven connections now, and how many were refused so far. */
  stats(): { pending: number; addresses: number; refused: number } {
    return { pending: this.count, addresses: this.byAddress.size, refused: this.refusedCount };
  }
}
