// Several servers behind one outbound: `fallback` (the first healthy one, in order), `url-test` (the
// healthy one with the lowest measured latency) or `select` (the user's choice). Health is an HTTP GET
// through each server, periodically and whenever a connection through it fails; a failed dial fails
// over to the next server within the same dial, so apps see no error and listeners never restart.
import type { Duplex } from 'node:stream';
import type { Datagram } from '../crypto/ss-udp.js';
import { DialError, type DialErrorKind } from '../net/dialer.js';
import { httpRequestVia } from '../net/http-client.js';
import type { Log } from '../log.js';
import type { Address } from '../wire/socks-address.js';
import { uniqueNames } from '../wire/subscription.js';
import type { DialContext, Outbound, UdpTunnel } from './outbound.js';

export type GroupKind = 'fallback' | 'url-test' | 'select';

export interface GroupMember {
  name: string;
  outbound: Outbound;
}

export interface HealthCheck {
  /** Fetched through each member; any 2xx answer (usually 204) means healthy. */
  url: string;
  /** Between the starts of two rounds of checks. */
  intervalMs: number;
  /** One check, connect to last byte. */
  timeoutMs: number;
}

export const DEFAULT_HEALTH_CHECK: HealthCheck = {
  url: 'http://cp.cloudflare.com/generate_204',
  intervalMs: 30_000,
  timeoutMs: 5_000,
};

export interface MemberStatus {
  name: string;
  alive: boolean;
  latencyMs?: number;
  /** ms since epoch of the last completed check. */
  lastCheck?: number;
  lastError?: string;
}

export interface ServerGroupOptions {
  check: HealthCheck;
  log: Log;
  /** Try the next member when a dial takes longer than this (default 2000 ms). */
  failoverDelayMs?: number;
  /** url-test keeps its current member while it is within this much of the fastest (default 100 ms). */
  toleranceMs?: number;
}

/** Members tried by one dial, at most (the rest would only add to the app's wait). */
const MAX_DIAL_ATTEMPTS = 4;
/** Triggered re-checks of one member are at least this far apart. */
const RECHECK_MIN_GAP_MS = 1_000;
/** A member marked down is re-checked after 1, 2, 4… s, up to the check interval. */
const DOWN_RETRY_FIRST_MS = 1_000;
/** Rounds of checks start at least this far apart, whatever the interval says. */
const MIN_ROUND_GAP_MS = 100;
/** A UDP tunnel that has had no reply for this long since a datagram went out asks for a re-check. */
const UDP_SILENCE_MS = 2_000;

interface MemberState {
  member: GroupMember;
  /** Unknown counts as alive: a new member is used before its first check, as Clash and sing-box do. */
  alive: boolean;
  latencyMs?: number;
  lastCheck?: number;
  lastError?: string;
  checking?: Promise<void>;
  lastTriggered: number;
  retryTimer?: NodeJS.Timeout;
  retryDelayMs: number;
  /** Bumped by setMembers when the outbound behind a name changes, so stale results are dropped. */
  generation: number;
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * An Outbound over several servers. Choice per kind:
 * - fallback: the first alive member in order (it moves back up as soon as a check finds it healthy);
 * - url-test: the alive member with the lowest latency, kept while it is within `toleranceMs` of the
 *   fastest so that noise of a few ms does not flap between servers;
 * - select: the user's choice (the first member until `select()`). It never switches by itself, as in
 *   Clash and sing-box: the user may have chosen a server for its country or its quota. Its members
 *   are still checked, so status() shows which ones work, and dials go only to the chosen one.
 * A dial through fallback/url-test that fails (refused, reset, timeout, DNS) marks that member down at
 * once, starts a re-check, and the same dial goes on to the next member; a member slower than
 * `failoverDelayMs` races the next one. UDP tunnels move to the new member on their next datagram.
 */
export class ServerGroup implements Outbound {
  private states: MemberState[] = [];
  private chosen: string | undefined;
  private readonly listeners: Array<(current: string | undefined) => void> = [];
  private readonly tunnels = new Set<UdpTunnel>();
  private round: Promise<void> | undefined;
  private roundTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closed = false;
  private readonly sources = new Map<string, GroupMember[]>();
  private readonly failoverDelayMs: number;
  private readonly toleranceMs: number;

  constructor(
    readonly name: string,
    readonly kind: GroupKind,
    private readonly opts: ServerGroupOptions,
  ) {
    this.failoverDelayMs = opts.failoverDelayMs ?? 2_000;
    this.toleranceMs = opts.toleranceMs ?? 100;
  }

  // ---- members

  /**
   * Replaces every member (and every source, see setSourceMembers). Members that keep their name keep
   * their health state and, in a select group, the user's choice; names are made unique.
   */
  setMembers(members: GroupMember[]): void {
    this.sources.clear();
    this.sources.set('', members);
    this.rebuild();
  }

  /**
   * Replaces the members that came from one source (a subscription URL, the static list…), keeping
   * the others; the group's order is the order in which sources were first set.
   */
  setSourceMembers(source: string, members: GroupMember[]): void {
    this.sources.set(source, members);
    this.rebuild();
  }

  private rebuild(): void {
    const all = [...this.sources.values()].flat();
    const names = uniqueNames(all.map((m) => m.name));
    const old = new Map(this.states.map((s) => [s.member.name, s]));
    const fresh: MemberState[] = [];
    const toCheck: MemberState[] = [];
    all.forEach((m, i) => {
      const member = { name: names[i]!, outbound: m.outbound };
      const prev = old.get(member.name);
      old.delete(member.name);
      if (prev) {
        if (prev.member.outbound !== member.outbound) {
          prev.generation++; // a check still running measures the old server: its result is dropped
          prev.checking = undefined;
          toCheck.push(prev);
        }
        prev.member = member;
        fresh.push(prev);
      } else {
        const s = { member, alive: true, lastTriggered: 0, retryDelayMs: DOWN_RETRY_FIRST_MS, generation: 0 };
        fresh.push(s);
        toCheck.push(s);
      }
    });
    for (const gone of old.values()) clearTimeout(gone.retryTimer);
    this.states = fresh;
    if (this.kind === 'select' && this.chosen !== undefined && !this.stateOf(this.chosen)) {
      this.opts.log.warn(
        { group: this.name, server: this.chosen },
        'the selected server is gone from the group; using the first one',
      );
      this.chosen = undefined;
    }
    this.choose();
    // New members, and members whose server changed, are checked now rather than at the next round.
    if (this.started) for (const s of toCheck) this.recheck(s, true);
  }

  private stateOf(name: string): MemberState | undefined {
    return this.states.find((s) => s.member.name === name);
  }

  // ---- choice

  current(): GroupMember | undefined {
    return (this.chosen === undefined ? undefined : this.stateOf(this.chosen))?.member;
  }

  /** The user's choice in a select group; throws for unknown names and for other kinds of group. */
  select(name: string): void {
    if (this.kind !== 'select') {
      throw new Error(`group "${this.name}" is a ${this.kind} group and chooses by itself`);
    }
    if (!this.stateOf(name)) {
      const known = this.states.map((s) => s.member.name).join(', ');
      throw new Error(`group "${this.name}" has no server named "${name}" (it has: ${known || 'none'})`);
    }
    this.setChosen(name);
  }

  onChange(cb: (current: string | undefined) => void): void {
    this.listeners.push(cb);
  }

  status(): { name: string; kind: GroupKind; current?: string; members: MemberStatus[] } {
    const members = this.states.map((s) => {
      const m: MemberStatus = { name: s.member.name, alive: s.alive };
      if (s.latencyMs !== undefined) m.latencyMs = s.latencyMs;
      if (s.lastCheck !== undefined) m.lastCheck = s.lastCheck;
      if (s.lastError !== undefined) m.lastError = s.lastError;
      return m;
    });
    const current = this.current()?.name;
    return { name: this.name, kind: this.kind, ...(current !== undefined ? { current } : {}), members };
  }

  /** Recomputes the current member from the health state. */
  private choose(): void {
    const first = this.states[0]?.member.name;
    if (this.kind === 'select') {
      this.setChosen(this.chosen ?? first);
      return;
    }
    const alive = this.states.filter((s) => s.alive);
    if (this.kind === 'fallback') {
      this.setChosen(alive[0]?.member.name ?? first);
      return;
    }
    const measured = alive.filter((s) => s.latencyMs !== undefined);
    if (measured.length === 0) {
      const cur = this.chosen === undefined ? undefined : this.stateOf(this.chosen);
      this.setChosen(cur?.alive ? cur.member.name : (alive[0]?.member.name ?? first));
      return;
    }
    const best = measured.reduce((a, b) => (b.latencyMs! < a.latencyMs! ? b : a));
    const cur = this.chosen === undefined ? undefined : this.stateOf(this.chosen);
    const keep =
      cur?.alive && cur.latencyMs !== undefined && cur.latencyMs <= best.latencyMs! + this.toleranceMs;
    this.setChosen(keep ? cur.member.name : best.member.name);
  }

  private setChosen(name: string | undefined): void {
    if (name === this.chosen) return;
    const before = this.chosen;
    this.chosen = name;
    this.opts.log.info({ group: this.name, from: before, to: name }, 'server group switched server');
    for (const cb of this.listeners) {
      try {
        cb(name);
      } catch (e) {
        this.opts.log.warn({ group: this.name, error: messageOf(e) }, 'server group change listener failed');
      }
    }
  }

  /** The members one dial tries, best first: the current one, then the alive, then the rest. */
  private candidates(): MemberState[] {
    const cur = this.chosen === undefined ? undefined : this.stateOf(this.chosen);
    if (this.kind === 'select') return cur ? [cur] : [];
    const others = this.states.filter((s) => s !== cur);
    if (this.kind === 'url-test') {
      others.sort(
        (a, b) =>
          Number(b.alive) - Number(a.alive) ||
          (a.latencyMs ?? Number.MAX_SAFE_INTEGER) - (b.latencyMs ?? Number.MAX_SAFE_INTEGER),
      );
    } else {
      others.sort((a, b) => Number(b.alive) - Number(a.alive)); // stable: keeps the configured order
    }
    return (cur ? [cur, ...others] : others).slice(0, MAX_DIAL_ATTEMPTS);
  }

  // ---- health

  /** A member failed in use: down at once, choice recomputed, re-checked in the background. */
  private markDown(s: MemberState, why: string): void {
    if (!this.states.includes(s)) return;
    if (s.alive) {
      this.opts.log.warn({ group: this.name, server: s.member.name, error: why }, 'server is down');
    }
    s.alive = false;
    s.lastError = why;
    this.choose();
    this.recheck(s);
  }

  /** Starts a check of one member unless one is running or one was triggered very recently. */
  private recheck(s: MemberState, force = false): void {
    if (this.closed || s.checking) return;
    const now = Date.now();
    if (!force && now - s.lastTriggered < RECHECK_MIN_GAP_MS) return;
    s.lastTriggered = now;
    void this.checkMember(s);
  }

  private checkMember(s: MemberState): Promise<void> {
    if (s.checking) return s.checking;
    const { url, timeoutMs } = this.opts.check;
    const generation = s.generation;
    const outbound = s.member.outbound;
    const started = performance.now();
    const run = httpRequestVia((t) => outbound.dialTcp(t), url, { timeoutMs, maxBytes: 64 * 1024 })
      .then(
        (res) =>
          res.status >= 200 && res.status < 300 ? undefined : `health check answered HTTP ${res.status}`,
        (e: unknown) => `health check failed: ${messageOf(e)}`,
      )
      .then((failure) => {
        if (s.generation !== generation) return; // the member's server changed meanwhile
        s.checking = undefined;
        if (this.closed || !this.states.includes(s)) return;
        this.record(s, failure, Math.round(performance.now() - started));
      });
    s.checking = run;
    return run;
  }

  private record(s: MemberState, failure: string | undefined, latencyMs: number): void {
    s.lastCheck = Date.now();
    clearTimeout(s.retryTimer);
    s.retryTimer = undefined;
    if (failure === undefined) {
      if (!s.alive)
        this.opts.log.info({ group: this.name, server: s.member.name, latencyMs }, 'server is up');
      s.alive = true;
      s.latencyMs = latencyMs;
      s.lastError = undefined;
      s.retryDelayMs = DOWN_RETRY_FIRST_MS;
    } else {
      if (s.alive)
        this.opts.log.warn({ group: this.name, server: s.member.name, error: failure }, 'server is down');
      s.alive = false;
      s.latencyMs = undefined;
      s.lastError = failure;
      if (this.started && !this.closed) {
        // Down members come back sooner than the next round: 1, 2, 4… s, at most the interval.
        const delay = Math.min(s.retryDelayMs, this.opts.check.intervalMs);
        s.retryDelayMs = Math.min(s.retryDelayMs * 2, this.opts.check.intervalMs);
        s.retryTimer = setTimeout(() => {
          s.retryTimer = undefined;
          this.recheck(s, true);
        }, delay);
        s.retryTimer.unref();
      }
    }
    // Within a round the choice waits for every result (no flapping through members not yet checked),
    // unless the member in use has just failed.
    if (!this.round || (failure !== undefined && s.member.name === this.chosen)) this.choose();
  }

  /** One round: every member checked in parallel; resolves when all are done. Rounds never overlap. */
  checkNow(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.round) return this.round;
    const round = Promise.all(this.states.map((s) => this.checkMember(s))).then(() => {
      this.round = undefined;
      if (!this.closed) this.choose();
    });
    this.round = round;
    return round;
  }

  /** Begins periodic checks (the first round now); timers do not keep the process alive. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    const loop = (): void => {
      if (this.closed) return;
      const began = Date.now();
      void this.checkNow().then(() => {
        if (this.closed) return;
        const wait = Math.max(MIN_ROUND_GAP_MS, this.opts.check.intervalMs - (Date.now() - began));
        this.roundTimer = setTimeout(loop, wait);
        this.roundTimer.unref();
      });
    };
    loop();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.roundTimer);
    for (const s of this.states) clearTimeout(s.retryTimer);
    for (const t of [...this.tunnels]) t.close();
  }

  // ---- Outbound

  dialTcp(target: Address, ctx?: DialContext): Promise<Duplex> {
    if (this.closed) return Promise.reject(new DialError('other', `server group "${this.name}" is closed`));
    const order = this.candidates();
    if (order.length === 0) {
      return Promise.reject(new DialError('unreachable', `server group "${this.name}" has no servers`));
    }
    return new Promise<Duplex>((resolve, reject) => {
      let next = 0;
      let pending = 0;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const failures: Array<{ name: string; kind: DialErrorKind; message: string }> = [];

      const fail = (): void => {
        settled = true;
        const kinds = new Set(failures.map((f) => f.kind));
        const kind: DialErrorKind = kinds.size === 1 ? failures[0]!.kind : 'unreachable';
        const detail = failures.map((f) => `${f.name}: ${f.message}`).join('; ');
        reject(new DialError(kind, `no server of group "${this.name}" could connect (${detail})`));
      };

      const launch = (): void => {
        clearTimeout(timer);
        timer = undefined;
        if (settled || next >= order.length) return;
        const s = order[next++]!;
        pending++;
        s.member.outbound.dialTcp(target, ctx).then(
          (stream) => {
            pending--;
            if (settled) {
              stream.destroy();
              return;
            }
            settled = true;
            clearTimeout(timer);
            // A dial that lost the race to a later member hung too long: check it now.
            for (const slow of order.slice(0, order.indexOf(s))) this.recheck(slow);
            this.watch(s, stream);
            resolve(stream);
          },
          (e: unknown) => {
            pending--;
            if (e instanceof DialError && e.kind === 'forbidden') {
              // The destination is refused by policy, not the member's fault: no failover either.
              if (!settled) {
                settled = true;
                clearTimeout(timer);
                reject(e);
              }
              return;
            }
            const message = messageOf(e);
            failures.push({ name: s.member.name, kind: e instanceof DialError ? e.kind : 'other', message });
            this.markDown(s, message);
            if (settled) return;
            if (next < order.length) launch();
            else if (pending === 0) fail();
          },
        );
        if (next < order.length) timer = setTimeout(launch, this.failoverDelayMs);
      };
      launch();
    });
  }

  /** A stream through a member that ends in an error (reset, truncated) asks for a re-check of it. */
  private watch(s: MemberState, stream: Duplex): void {
    stream.once('close', () => {
      if (stream.errored) this.recheck(s);
    });
  }

  openUdp(onReply: (d: Datagram) => void, ctx?: DialContext): UdpTunnel {
    let inner: { state: MemberState; outbound: Outbound; tunnel: UdpTunnel } | undefined;
    let closed = false;
    /** When the oldest datagram still without any reply after it went out. */
    let unansweredSince: number | undefined;
    /** Silence that asks for a re-check: 2 s, then doubling while no reply comes (a flow may be one-way). */
    let silenceMs = UDP_SILENCE_MS;
    const tunnel: UdpTunnel = {
      send: (d) => {
        if (closed || this.closed) return;
        const cur = this.chosen === undefined ? undefined : this.stateOf(this.chosen);
        if (!cur) return;
        if (inner?.state !== cur || inner.outbound !== cur.member.outbound) {
          inner?.tunnel.close();
          const outbound = cur.member.outbound;
          const opened = {
            state: cur,
            outbound,
            tunnel: outbound.openUdp((reply) => {
              if (inner !== opened) return; // a late reply through the previous member
              unansweredSince = undefined;
              silenceMs = UDP_SILENCE_MS;
              onReply(reply);
            }, ctx),
          };
          inner = opened;
          unansweredSince = undefined;
        }
        const now = Date.now();
        if (unansweredSince === undefined) unansweredSince = now;
        else if (now - unansweredSince >= silenceMs) {
          this.recheck(cur);
          unansweredSince = now;
          silenceMs = Math.min(silenceMs * 2, 60_000);
        }
        inner.tunnel.send(d);
      },
      close: () => {
        if (closed) return;
        closed = true;
        this.tunnels.delete(tunnel);
        inner?.tunnel.close();
        inner = undefined;
      },
    };
    this.tunnels.add(tunnel);
    return tunnel;
  }
}
