// A subscription feeding a server group: fetched at start and every `intervalMs`, directly first and
// through the group's own servers when the direct fetch fails (blocked, reset, poisoned DNS, a block
// page instead of the document). A failed fetch or an unreadable document keeps the last good list.
import type { Duplex } from 'node:stream';
import { dialDirect } from '../net/dialer.js';
import { httpRequestVia, type StreamDial } from '../net/http-client.js';
import type { Log } from '../log.js';
import { formatSsUri, type SsUri } from '../wire/sip002.js';
import { usesWebSocket } from './websocket-outbound.js';
import type { Address } from '../wire/socks-address.js';
import {
  parseSubscription,
  subscriptionFetchUrl,
  subscriptionUrlName,
  type SubscriptionEntry,
} from '../wire/subscription.js';
import type { Outbound } from './outbound.js';
import type { GroupMember, ServerGroup } from './server-group.js';

export interface SubscriptionFeedOptions {
  /** https://, http:// or ssconf:// (Outline's dynamic key). */
  url: string;
  intervalMs: number;
  group: ServerGroup;
  log: Log;
  /** Extra trusted CA certificates (PEM), e.g. a Pigeon server's self-signed management API. */
  ca?: string;
  /** One fetch, connect to last byte (default 15 s). */
  timeoutMs?: number;
  makeOutbound: (uri: SsUri) => Outbound;
  /** How the direct fetch connects (default: straight from this machine); tests inject failures here. */
  directDial?: StreamDial;
  /** The group source these servers replace on each refresh (default: the URL). */
  source?: string;
  /** After a failed refresh, the next try comes this soon (default: 60 s, or intervalMs if shorter). */
  retryMs?: number;
}

const MAX_BYTES = 4 * 1024 * 1024;

interface Parsed {
  members: GroupMember[];
  skipped: number;
  /** Names and servers, to tell whether a refresh changed anything. */
  signature: string;
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class SubscriptionFeed {
  private readonly fetchUrl: string;
  private readonly host: string;
  private readonly source: string;
  private readonly directDial: StreamDial;
  /** Outbounds by server (URI without its name), reused across refreshes so nothing restarts. */
  private outbounds = new Map<string, Outbound>();
  private lastGood: string | undefined;
  private failing = false;
  private inFlight: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Which path the last successful fetch took, for status and tests. */
  lastPath: 'direct' | 'tunnel' | undefined;

  /** Throws WireError at once for a URL that is not https://, http:// or ssconf://. */
  constructor(private readonly opts: SubscriptionFeedOptions) {
    this.fetchUrl = subscriptionFetchUrl(opts.url);
    this.host = new URL(this.fetchUrl).host;
    this.source = opts.source ?? opts.url;
    const timeoutMs = opts.timeoutMs ?? 15_000;
    this.directDial =
      opts.directDial ??
      ((t: Address): Promise<Duplex> => dialDirect(t, { allowPrivate: true, connectTimeoutMs: timeoutMs }));
  }

  /**
   * The first fetch; periodic refreshes are scheduled whether it succeeds or not. Rejects with the
   * reason when it fails (the group then has none of this subscription's servers yet).
   */
  async start(): Promise<void> {
    try {
      await this.refresh();
    } finally {
      this.schedule(this.failing);
    }
  }

  /** Fetches now (joining a fetch already under way); rejects with the reason when it fails. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.inFlight ??= this.fetchAndApply().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(failed: boolean): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    const delay = failed ? Math.min(this.opts.retryMs ?? 60_000, this.opts.intervalMs) : this.opts.intervalMs;
    this.timer = setTimeout(() => {
      this.refresh().then(
        () => this.schedule(false),
        () => this.schedule(true),
      );
    }, delay);
    this.timer.unref();
  }

  private async fetchAndApply(): Promise<void> {
    const log = this.opts.log;
    let members: GroupMember[];
    let skipped: number;
    let signature: string;
    try {
      ({ members, skipped, signature } = await this.fetchMembers());
    } catch (e) {
      const kept = this.lastGood === undefined ? 'no servers from it yet' : 'keeping the last good list';
      const fields = { subscription: this.host, error: messageOf(e) };
      // Once per run of failures at warn level; repeats only at debug.
      if (!this.failing) log.warn(fields, `subscription refresh failed; ${kept}`);
      else log.debug(fields, `subscription refresh failed again; ${kept}`);
      this.failing = true;
      throw e;
    }
    if (this.closed) return;
    if (this.failing) log.info({ subscription: this.host }, 'subscription reachable again');
    this.failing = false;
    if (signature !== this.lastGood) {
      this.lastGood = signature;
      this.opts.group.setSourceMembers(this.source, members);
      log.info(
        { subscription: this.host, servers: members.length, skipped, via: this.lastPath },
        'subscription updated',
      );
    }
  }

  private async fetchMembers(): Promise<Parsed> {
    let directError: unknown;
    try {
      const r = this.toMembers(await this.fetchVia(this.directDial));
      this.lastPath = 'direct';
      return r;
    } catch (e) {
      directError = e;
    }
    try {
      const r = this.toMembers(await this.fetchVia((t) => this.opts.group.dialTcp(t)));
      this.lastPath = 'tunnel';
      return r;
    } catch (e) {
      throw new Error(`direct: ${messageOf(directError)}; through the tunnel: ${messageOf(e)}`);
    }
  }

  private async fetchVia(dial: StreamDial): Promise<string> {
    const res = await httpRequestVia(dial, this.fetchUrl, {
      timeoutMs: this.opts.timeoutMs ?? 15_000,
      maxBytes: MAX_BYTES,
      headers: { 'user-agent': 'pigeon', accept: 'application/json, text/plain, */*' },
      ...(this.opts.ca !== undefined ? { ca: this.opts.ca } : {}),
    });
    if (res.status < 200 || res.status > 299) throw new Error(`HTTP ${res.status} from ${this.host}`);
    return res.body.toString('utf8');
  }

  /** Parses a document into group members; throws (so the last good list stays) when none is usable. */
  private toMembers(body: string): Parsed {
    const { entries, skipped: parseSkipped } = parseSubscription(body);
    let skipped = parseSkipped;
    let plugins = 0;
    const usable: SubscriptionEntry[] = [];
    for (const e of entries) {
      // Pigeon runs no SIP003 plugins, and without its plugin such a server does not answer;
      // v2ray-plugin's WebSocket carrier is built in (src/client/websocket-outbound.ts).
      if (e.uri.plugin && !usesWebSocket(e.uri)) plugins++;
      else usable.push(e);
    }
    skipped += plugins;
    // Outline's dynamic key names its one server in the ssconf:// URL's fragment.
    const urlName = subscriptionUrlName(this.opts.url);
    if (usable.length === 1 && usable[0]!.uri.tag === undefined && urlName) {
      usable[0] = { ...usable[0]!, name: urlName };
    }
    const next = new Map<string, Outbound>();
    const members: GroupMember[] = [];
    const keys: string[] = [];
    let failed = 0;
    let lastFailure = '';
    for (const e of usable) {
      const key = formatSsUri({ ...e.uri, tag: undefined });
      let outbound = next.get(key) ?? this.outbounds.get(key);
      if (!outbound) {
        try {
          outbound = this.opts.makeOutbound(e.uri);
        } catch (err) {
          failed++;
          lastFailure = messageOf(err);
          continue;
        }
      }
      next.set(key, outbound);
      members.push({ name: e.name, outbound });
      keys.push(key);
    }
    skipped += failed;
    if (members.length === 0) {
      const why = [
        plugins ? `${plugins} need a SIP003 plugin, which Pigeon does not run` : '',
        failed ? `${failed} could not be used (${lastFailure})` : '',
      ].filter(Boolean);
      throw new Error(`no usable server in the subscription: ${why.join('; ')}`);
    }
    this.outbounds = next;
    const signature = JSON.stringify(members.map((m, i) => [m.name, keys[i]]));
    return { members, skipped, signature };
  }
}
