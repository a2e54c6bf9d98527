// Sessions of the admin page and the login rate limit, in memory (a restart logs everyone out, as
// does a new secret). A session is a random token in an HttpOnly cookie; each has its own CSRF token,
// which every form carries in a hidden field.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface Flash {
  kind: 'ok' | 'error';
  text: string;
}

export interface Session {
  readonly csrf: string;
  /** ms since the epoch; pushed back on every request (idle expiry), never past `hardExpiresAt`. */
  expiresAt: number;
  readonly hardExpiresAt: number;
  /** A message for the next page shown (after a form's redirect). */
  flash?: Flash;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time equality of two strings (hashed first, so that the length does not leak either). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

export interface SessionLimits {
  /** Idle time after which a session ends. */
  idleMs: number;
  /** Time after login after which a session ends regardless. */
  maxMs: number;
  /** Sessions kept at most; the oldest goes first. */
  maxSessions: number;
}

export const SESSION_DEFAULTS: SessionLimits = {
  idleMs: 8 * 3_600_000,
  maxMs: 7 * 86_400_000,
  maxSessions: 200,
};

export class Sessions {
  private readonly byToken = new Map<string, Session>();

  constructor(
    private readonly now: () => number,
    private readonly limits: SessionLimits = SESSION_DEFAULTS,
  ) {}

  /** A new session; returns its cookie token. */
  create(): { token: string; session: Session } {
    this.prune();
    while (this.byToken.size >= this.limits.maxSessions) {
      const oldest = this.byToken.keys().next().value;
      if (oldest === undefined) break;
      this.byToken.delete(oldest);
    }
    const now = this.now();
    const token = randomBytes(32).toString('base64url');
    const session: Session = {
      csrf: randomBytes(32).toString('base64url'),
      expiresAt: now + this.limits.idleMs,
      hardExpiresAt: now + this.limits.maxMs,
    };
    this.byToken.set(token, session);
    return { token, session };
  }

  /** The live session of a cookie token, its idle expiry pushed back; undefined if none. */
  get(token: string | undefined): Session | undefined {
    if (!token) return undefined;
    const s = this.byToken.get(token);
    if (!s) return undefined;
    const now = this.now();
    if (now >= s.expiresAt || now >= s.hardExpiresAt) {
      this.byToken.delete(token);
      return undefined;
    }
    s.expiresAt = Math.min(now + this.limits.idleMs, s.hardExpiresAt);
    return s;
  }

  delete(token: string | undefined): void {
    if (token) this.byToken.delete(token);
  }

  get size(): number {
    return this.byToken.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [t, s] of this.byToken)
      if (now >= s.expiresAt || now >= s.hardExpiresAt) this.byToken.delete(t);
  }
}

/** Whether a submitted CSRF token is the session's (constant time). */
export function csrfOk(session: Session, submitted: unknown): boolean {
  return typeof submitted === 'string' && submitted.length > 0 && sameSecret(submitted, session.csrf);
}

export interface AttemptLimits {
  /** Failed logins allowed per client address in the window. */
  max: number;
  windowMs: number;
  /** Addresses tracked at most (the oldest is forgotten first). */
  maxAddresses: number;
}

export const ATTEMPT_DEFAULTS: AttemptLimits = { max: 10, windowMs: 15 * 60_000, maxAddresses: 10_000 };

/** Failed logins per client address: a fixed window from the first failure. */
export class LoginLimiter {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly now: () => number,
    private readonly limits: AttemptLimits = ATTEMPT_DEFAULTS,
  ) {}

  /** 0 when the address may try now; otherwise the seconds until it may. */
  retryAfter(address: string): number {
    const f = this.failures.get(address);
    if (!f) return 0;
    const now = this.now();
    if (now >= f.resetAt) {
      this.failures.delete(address);
      return 0;
    }
    return f.count >= this.limits.max ? Math.ceil((f.resetAt - now) / 1000) : 0;
  }

  fail(address: string): void {
    const now = this.now();
    const f = this.failures.get(address);
    if (f && now < f.resetAt) {
      f.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= this.limits.maxAddresses) {
      for (const [a, v] of this.failures) if (now >= v.resetAt) this.failures.delete(a);
      const oldest = this.failures.keys().next().value;
      if (this.failures.size >= this.limits.maxAddresses && oldest !== undefined)
        this.failures.delete(oldest);
    }
    this.failures.set(address, { count: 1, resetAt: now + this.limits.windowMs });
  }

  succeed(address: string): void {
    this.failures.delete(address);
  }
}
