// Direct TCP dialing and UDP target resolution, with the private-address guard applied to every
// address a name resolves to (so a hostile DNS answer cannot point the server at its own LAN).
import { lookup } from 'node:dns/promises';
import { isIP, connect, type Socket } from 'node:net';
import type { Address } from '../wire/socks-address.js';
import { isPrivateAddress } from './address-guard.js';

export type DialErrorKind = 'forbidden' | 'dns' | 'refused' | 'unreachable' | 'timeout' | 'other';

export class DialError extends Error {
  override name = 'DialError';
  constructor(
    readonly kind: DialErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export interface DialPolicy {
  /** Permit loopback/private/link-local/metadata destinations. */
  allowPrivate: boolean;
  connectTimeoutMs: number;
}

/** Resolves an address to IPs the policy permits; throws DialError. */
export async function resolveAllowed(
  a: Address,
  policy: Pick<DialPolicy, 'allowPrivate'>,
): Promise<string[]> {
  let ips: string[];
  if (a.kind !== 'domain') {
    ips = [a.host];
  } else {
    try {
      ips = (await lookup(a.host, { all: true, verbatim: true })).map((r) => r.address);
    } catch (e) {
      throw new DialError('dns', `cannot resolve ${a.host}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (policy.allowPrivate) return ips;
  const ok = ips.filter((ip) => !isPrivateAddress(ip));
  if (ok.length === 0) throw new DialError('forbidden', 'destination is a private or local address');
  return ok;
}

/** What kind of failure a socket error is, for the SOCKS5 reply and the metrics. */
export function classifyDialError(e: Error & { code?: string }): DialErrorKind {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ENETUNREACH':
    case 'EHOSTUNREACH':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'dns';
    default:
      return /timed out/i.test(e.message) ? 'timeout' : 'other';
  }
}

/** A server's address: an IP literal as it is, a name resolved by the system (DialError 'dns' if not). */
export async function resolveServerHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch {
    throw new DialError('dns', `cannot resolve server ${host}`);
  }
}

/** Connects to one IP:port with a timeout. The socket allows half-open so FIN can be relayed. */
export function connectTcp(ip: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ip, port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new DialError('timeout', `connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', onError);
      resolve(s);
    });
    const onError = (e: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      s.destroy();
      reject(new DialError(classifyDialError(e), `connect failed: ${e.code ?? e.message}`));
    };
    s.once('error', onError);
  });
}

/** Dials a destination, trying each permitted address in turn (first success wins). */
export async function dialDirect(a: Address, policy: DialPolicy): Promise<Socket> {
  const ips = await resolveAllowed(a, policy);
  let last: unknown;
  for (const ip of ips.slice(0, 4)) {
    try {
      return await connectTcp(ip, a.port, policy.connectTimeoutMs);
    } catch (e) {
      last = e;
    }
  }
  throw last instanceof DialError ? last : new DialError('other', 'connect failed');
}

/** Resolved UDP destinations, cached briefly (UDP sends one lookup per packet otherwise). */
export class UdpResolver {
  private readonly cache = new Map<string, { ip: string; until: number }>();

  constructor(private readonly policy: Pick<DialPolicy, 'allowPrivate'>) {}

  /**
   * The answer when it is known without waiting (an IP literal, or a name in the cache), else
   * undefined: lets the per-datagram path send at once instead of through a promise. Throws
   * DialError('forbidden') like resolve().
   */
  known(a: Address): string | undefined {
    if (a.kind !== 'domain') {
      if (!this.policy.allowPrivate && isPrivateAddress(a.host)) {
        throw new DialError('forbidden', 'destination is a private or local address');
      }
      return a.host;
    }
    const hit = this.cache.get(a.host);
    return hit && hit.until > Date.now() ? hit.ip : undefined;
  }

  async resolve(a: Address): Promise<string> {
    const known = this.known(a);
    if (known !== undefined) return known;
    const now = Date.now();
    const ips = await resolveAllowed(a, this.policy);
    const ip = ips.find((x) => isIP(x) === 4) ?? ips[0]!;
    if (this.cache.size > 1024) this.cache.clear();
    this.cache.set(a.host, { ip, until: now + 60_000 });
    return ip;
  }
}
