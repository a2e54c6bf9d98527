// The web admin page: server-rendered HTML under /admin on the management API's port, behind the same
// secret. Log in with the secret (or open https://HOST:PORT/SECRET/admin, which logs in and drops the
// secret from the address bar); a session is a random token in a cookie (HttpOnly, Secure,
// SameSite=Strict, Path=/admin) and every form carries the session's CSRF token. Forms POST and
// redirect, so the pages work without the script, which only adds copy buttons.
//
// Everything a host does with `pigeon key` is here: create (name, limit, expiry, method, disguise),
// rename, pause and resume, limit, expiry, disguise, delete; plus the server's settings for new keys.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import QRCode from 'qrcode';
import { isMethodName, type MethodName } from '../../wire/shadowsocks-methods.js';
import type { PrometheusMetrics } from '../metrics.js';
import type { AccessKey, DataLimit, KeyPatch, KeyStore, KeyUsage, ServerSettings } from '../types.js';
import { SUBSCRIPTION_FILES, accessUri, ssconfUrl, subscriptionUrl } from '../share.js';
import { createAccessKey, newDisguisePrefix } from '../keys.js';
import { normalizeHostname } from '../text-input.js';
import { raw } from './html.js';
import { ADMIN_CSS, ADMIN_JS } from './assets.js';
import {
  ATTEMPT_DEFAULTS,
  LoginLimiter,
  SESSION_DEFAULTS,
  Sessions,
  csrfOk,
  sameSecret,
  type AttemptLimits,
  type Flash,
  type Session,
  type SessionLimits,
} from './sessions.js';
import {
  FormError,
  effectiveLimit,
  keyStatus,
  parseDate,
  parseSize,
  usedIn,
  type KeyStatus,
} from './format.js';
import {
  ADMIN_BASE,
  deletePage,
  errorPage,
  keyLabel,
  keyPage,
  keyPath,
  keysPage,
  loginPage,
  overviewPage,
  settingsPage,
  type InboundView,
  type KeyRow,
  type PageContext,
} from './views.js';

export { escapeHtml, html, raw } from './html.js';

export const SESSION_COOKIE = 'pigeon_session';

/** What the running server tells the admin page beyond the store (all optional: "unknown" without). */
export interface AdminOptions {
  /** When the server started (ms since the epoch): the overview's uptime. */
  startedAt?: number;
  /** The ports the server listens on now (TCP and UDP each): the state of each inbound. */
  listeningPorts?: () => number[];
  /** Open TCP connections and UDP associations, of one key or of all (else read from the metrics). */
  activeConnections?: (keyId?: string) => number;
  /** The clock (tests). */
  now?: () => number;
  sessions?: Partial<SessionLimits>;
  loginAttempts?: Partial<AttemptLimits>;
}

export interface AdminPageOptions extends AdminOptions {
  store: KeyStore;
  metrics?: PrometheusMetrics;
  /** The management API's secret: the login. */
  secret: string;
  /** Where apps reach the API (the base of subscription URLs). */
  publicUrl: string;
  version: string;
  /** Called after every change to keys or settings (the server's onChange/onSettingsChange). */
  changed: () => void;
}

const CSP = [
  "default-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

/** A host name or an IP address, as the API's PUT /server/hostname-for-access-keys takes it. */
function hostnameFromForm(text: string): string {
  const h = normalizeHostname(text);
  if (h === undefined) throw new FormError(`Host name: “${text}” is neither a host name nor an IP address`);
  return h;
}

type Form = Record<string, unknown>;

/** A form field as one string ('' when absent; the last value when repeated). */
function field(form: Form, name: string): string {
  const v = form[name];
  const one = Array.isArray(v) ? v[v.length - 1] : v;
  return typeof one === 'string' ? one : '';
}

function limitFromForm(form: Form, label: string): DataLimit | null {
  const text = field(form, 'limit').trim();
  if (text === '') return null;
  const window = field(form, 'window') === 'total' ? 'total' : 'rolling-30d';
  return { bytes: parseSize(text, label), window };
}

function nameFromForm(form: Form): string {
  const name = field(form, 'name').trim();
  if (name.length > 100) throw new FormError('Name: at most 100 characters');
  return name;
}

function methodFromForm(form: Form, fallback: MethodName): MethodName {
  const m = field(form, 'method');
  if (m === '') return fallback;
  if (!isMethodName(m)) throw new FormError(`Method: unknown method “${m}”`);
  return m;
}

/** Metric values by one label, read from the server's Prometheus registry. */
async function metricByLabel(
  metrics: PrometheusMetrics | undefined,
  name: string,
  label: string,
): Promise<Map<string, number> | undefined> {
  const m = metrics?.registry.getSingleMetric(name);
  if (!m) return undefined;
  const out = new Map<string, number>();
  for (const v of (await m.get()).values) {
    const k = String(v.labels[label] ?? '');
    out.set(k, (out.get(k) ?? 0) + v.value);
  }
  return out;
}

const sum = (m: Map<string, number> | undefined): number | null =>
  m ? [...m.values()].reduce((a, b) => a + b, 0) : null;

/** Registers the admin routes; register with `{ prefix: '/admin' }`. */
export async function adminPage(app: FastifyInstance, o: AdminPageOptions): Promise<void> {
  const { store } = o;
  const now = o.now ?? Date.now;
  const sessionLimits = { ...SESSION_DEFAULTS, ...o.sessions };
  const sessions = new Sessions(now, sessionLimits);
  const limiter = new LoginLimiter(now, { ...ATTEMPT_DEFAULTS, ...o.loginAttempts });
  const publicUrl = o.publicUrl.replace(/\/+$/, '');
  const sessionOf = new WeakMap<FastifyRequest, { token: string; session: Session }>();

  await app.register(cookie);
  await app.register(formbody);

  // Not part of the JSON API: kept out of the OpenAPI document.
  app.addHook('onRoute', (route) => {
    route.schema = { ...(route.schema ?? {}), hide: true };
  });

  const cookieOptions = {
    path: ADMIN_BASE,
    httpOnly: true,
    secure: true,
    sameSite: 'strict' as const,
  };
  const setSessionCookie = (reply: FastifyReply, token: string) =>
    reply.setCookie(SESSION_COOKIE, token, {
      ...cookieOptions,
      maxAge: Math.floor(sessionLimits.maxMs / 1000),
    });
  const login = (req: FastifyRequest, reply: FastifyReply): Session => {
    sessions.delete(req.cookies[SESSION_COOKIE]);
    const { token, session } = sessions.create();
    setSessionCookie(reply, token);
    sessionOf.set(req, { token, session });
    return session;
  };

  const ctxOf = (req: FastifyRequest): PageContext => {
    const s = sessionOf.get(req)?.session;
    if (!s) return { csrf: null };
    const flash = s.flash;
    delete s.flash;
    return { csrf: s.csrf, flash };
  };
  const page = (reply: FastifyReply, body: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(body);
  const redirect = (reply: FastifyReply, to: string) => reply.code(303).header('location', to).send();
  const flashAndGo = (req: FastifyRequest, reply: FastifyReply, flash: Flash, to: string) => {
    const s = sessionOf.get(req)?.session;
    if (s) s.flash = flash;
    return redirect(reply, to);
  };
  const notFound = (req: FastifyRequest, reply: FastifyReply) =>
    page(reply, errorPage(ctxOf(req), 404, 'Not found', 'There is no such page or key.'), 404);

  /** Whether the request came in under the secret path prefix (https://HOST:PORT/SECRET/admin…). */
  const underSecret = (req: FastifyRequest): boolean => {
    const url = req.originalUrl;
    const end = url.slice(1).search(/[/?#]/);
    const first = end < 0 ? url.slice(1) : url.slice(1, end + 1);
    return first !== '' && req.url !== url && sameSecret(first, o.secret);
  };

  app.addHook('onRequest', async (req, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'same-origin');
    reply.header('cross-origin-opener-policy', 'same-origin');
    const path = req.url.split('?')[0]!;
    // The printed API address with /admin: log in, and send the browser on without the secret.
    if (underSecret(req)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return notFound(req, reply);
      login(req, reply);
      return redirect(reply, path.startsWith(ADMIN_BASE) ? path : ADMIN_BASE);
    }
    const token = req.cookies[SESSION_COOKIE];
    const session = sessions.get(token);
    if (session && token) sessionOf.set(req, { token, session });
    const open = path === `${ADMIN_BASE}/login` || path.startsWith(`${ADMIN_BASE}/static/`);
    if (open || session) return;
    if (req.method === 'GET' || req.method === 'HEAD') return redirect(reply, `${ADMIN_BASE}/login`);
    return page(reply, loginPage({ error: 'Your session has ended: log in again.' }), 401);
  });

  /**
   * A POST from another site is refused, logged in or not (on top of the CSRF token and SameSite):
   * browsers say where a request comes from in Sec-Fetch-Site, older ones in Origin.
   */
  const foreignOrigin = (req: FastifyRequest): boolean => {
    const site = req.headers['sec-fetch-site'];
    if (typeof site === 'string') return site !== 'same-origin' && site !== 'none';
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    try {
      const from = new URL(origin);
      // Through URL both ways, so that a default port (":443") compares equal to none.
      return from.host !== new URL(`${from.protocol}//${req.headers.host ?? ''}`).host;
    } catch {
      return true;
    }
  };

  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'POST') return;
    if (foreignOrigin(req))
      return page(reply, errorPage(ctxOf(req), 403, 'Refused', 'This form came from another site.'), 403);
    if (req.url.split('?')[0] === `${ADMIN_BASE}/login`) return;
    const s = sessionOf.get(req)?.session;
    const form = (req.body ?? {}) as Form;
    if (!s || !csrfOk(s, field(form, '_csrf')))
      return page(
        reply,
        errorPage(
          ctxOf(req),
          403,
          'Form expired',
          'This form is out of date (or did not come from this page). Go back, reload the page and try again.',
        ),
        403,
      );
  });

  app.setNotFoundHandler((req, reply) => notFound(req, reply));
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err, route: req.routeOptions.url }, 'admin page request failed');
    const message = status === 500 ? 'Something went wrong; the server log has the details.' : err.message;
    return page(reply, errorPage(ctxOf(req), status, 'Error', message), status);
  });

  // ---- static files

  app.get('/static/admin.css', async (_req, reply) => reply.type('text/css; charset=utf-8').send(ADMIN_CSS));
  app.get('/static/admin.js', async (_req, reply) =>
    reply.type('text/javascript; charset=utf-8').send(ADMIN_JS),
  );

  // ---- login, logout

  app.get('/login', async (req, reply) => {
    if (sessionOf.has(req)) return redirect(reply, ADMIN_BASE);
    return page(reply, loginPage({}));
  });

  app.post('/login', async (req, reply) => {
    const address = req.ip;
    const wait = limiter.retryAfter(address);
    if (wait > 0)
      return page(
        reply.header('retry-after', String(wait)),
        loginPage({ error: `Too many wrong secrets: try again in ${Math.ceil(wait / 60)} min.` }),
        429,
      );
    const secret = field((req.body ?? {}) as Form, 'secret').trim();
    if (!sameSecret(secret, o.secret)) {
      limiter.fail(address);
      return page(reply, loginPage({ error: 'That is not the secret.' }), 401);
    }
    limiter.succeed(address);
    login(req, reply);
    return redirect(reply, ADMIN_BASE);
  });

  app.post('/logout', async (req, reply) => {
    sessions.delete(sessionOf.get(req)?.token);
    reply.clearCookie(SESSION_COOKIE, cookieOptions);
    return redirect(reply, `${ADMIN_BASE}/login`);
  });

  // ---- reading

  const connectionsOf = async (): Promise<{ total: number | null; of: (id: string) => number | null }> => {
    if (o.activeConnections) {
      const f = o.activeConnections;
      return { total: f(), of: (id) => f(id) };
    }
    const perKey = await metricByLabel(o.metrics, 'pigeon_key_active_connections', 'key');
    const total = sum(await metricByLabel(o.metrics, 'pigeon_active_connections', 'protocol'));
    return { total, of: (id) => (perKey ? (perKey.get(id) ?? 0) : null) };
  };

  const rowOf = (
    k: AccessKey,
    s: ServerSettings,
    usage: KeyUsage,
    connections: number | null,
    t: number,
  ): KeyRow => {
    const limit = effectiveLimit(k, s);
    return {
      key: k,
      status: keyStatus(k, s, usage, t),
      usage,
      limit,
      limitIsDefault: k.dataLimit === null && limit !== null,
      used: usedIn(limit, usage),
      connections,
    };
  };

  const mustGet = (id: string): AccessKey | undefined => store.getKey(id);

  app.get('/', async (req, reply) => {
    const s = store.settings();
    const t = now();
    const keys = store.listKeys();
    const usage = store.usageAll(t);
    const conns = await connectionsOf();
    const counts: Record<KeyStatus, number> & { total: number } = {
      total: keys.length,
      active: 0,
      paused: 0,
      expired: 0,
      'over limit': 0,
    };
    let total = 0;
    let last30d = 0;
    for (const k of keys) {
      const u = usage.get(k.id) ?? { total: 0, last30d: 0 };
      counts[keyStatus(k, s, u, t)]++;
    }
    for (const u of usage.values()) {
      total += u.total;
      last30d += u.last30d;
    }
    const listening = o.listeningPorts ? new Set(o.listeningPorts()) : null;
    const byPort = new Map<number, AccessKey[]>();
    for (const k of keys) byPort.set(k.port, [...(byPort.get(k.port) ?? []), k]);
    for (const p of listening ?? []) if (!byPort.has(p)) byPort.set(p, []);
    const inbounds: InboundView[] = [...byPort]
      .sort(([a], [b]) => a - b)
      .map(([port, ks]) => {
        const per = ks.map((k) => conns.of(k.id));
        return {
          port,
          keys: ks.length,
          methods: [...new Set(ks.map((k) => k.method))],
          listening: listening ? listening.has(port) : null,
          connections: per.some((c) => c === null) ? null : per.reduce<number>((a, c) => a + (c ?? 0), 0),
        };
      });
    const sinceStart = sum(await metricByLabel(o.metrics, 'pigeon_key_bytes_total', 'direction'));
    return page(
      reply,
      overviewPage(ctxOf(req), {
        settings: s,
        version: o.version,
        apiUrl: publicUrl,
        now: t,
        startedAt: o.startedAt ?? null,
        activeConnections: conns.total,
        counts,
        transfer: { total, last30d, sinceStart },
        inbounds,
      }),
    );
  });

  app.get('/keys', async (req, reply) => {
    const s = store.settings();
    const t = now();
    const usage = store.usageAll(t);
    const conns = await connectionsOf();
    const rows = store
      .listKeys()
      .map((k) => rowOf(k, s, usage.get(k.id) ?? { total: 0, last30d: 0 }, conns.of(k.id), t));
    return page(reply, keysPage(ctxOf(req), rows, s));
  });

  app.get<{ Params: { id: string } }>('/keys/:id', async (req, reply) => {
    const k = mustGet(req.params.id);
    if (!k) return notFound(req, reply);
    const s = store.settings();
    const t = now();
    const conns = await connectionsOf();
    const row = rowOf(k, s, store.usage(k.id, t), conns.of(k.id), t);
    const uri = s.hostname ? accessUri(k, s) : null;
    const qrSvg = uri
      ? raw(
          (await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 })).replace(
            /^<svg /,
            `<svg role="img" aria-label="QR code of the access key" `,
          ),
        )
      : null;
    const sub = (file: string) => subscriptionUrl(publicUrl, k.token, file);
    return page(
      reply,
      keyPage(ctxOf(req), {
        row,
        settings: s,
        uri,
        qrSvg,
        subscriptions: [
          {
            id: 'ssconf',
            label: 'Outline dynamic key (ssconf://)',
            hint: 'Paste into Outline instead of the ss:// key.',
            url: ssconfUrl(publicUrl, k.token),
          },
          {
            id: 'sip008',
            label: 'SIP008 online config',
            hint: 'Shadowsocks apps that read SIP008 (shadowsocks-android, Shadowrocket).',
            url: sub(SUBSCRIPTION_FILES.sip008),
          },
          {
            id: 'clash',
            label: 'Clash / mihomo profile',
            hint: 'Clash Verge, Clash Meta for Android, Stash.',
            url: sub(SUBSCRIPTION_FILES.clash),
          },
          {
            id: 'singbox',
            label: 'sing-box outbounds',
            hint: 'sing-box and apps built on it (Hiddify, NekoBox).',
            url: sub(SUBSCRIPTION_FILES.singBox),
          },
        ],
        daily: store.dailyUsage(k.id, 30, t),
      }),
    );
  });

  app.get<{ Params: { id: string } }>('/keys/:id/delete', async (req, reply) => {
    const k = mustGet(req.params.id);
    if (!k) return notFound(req, reply);
    return page(reply, deletePage(ctxOf(req), k));
  });

  app.get('/settings', async (req, reply) => page(reply, settingsPage(ctxOf(req), store.settings())));

  // ---- changing: each form POSTs here and is sent back (303) with a message

  /**
   * A form action: runs `act` (which returns the message and where to go); a FormError or a store's
   * refusal goes back to `back` with the message instead.
   */
  const act = async (
    req: FastifyRequest,
    reply: FastifyReply,
    back: string,
    fn: (form: Form) => { text: string; to?: string },
  ) => {
    try {
      const done = fn((req.body ?? {}) as Form);
      o.changed();
      return flashAndGo(req, reply, { kind: 'ok', text: done.text }, done.to ?? back);
    } catch (e) {
      if (e instanceof FormError || (e instanceof Error && e.name === 'StoreError'))
        return flashAndGo(req, reply, { kind: 'error', text: e.message }, back);
      throw e;
    }
  };

  app.post('/keys', async (req, reply) =>
    act(req, reply, `${ADMIN_BASE}/keys`, (form) => {
      const s = store.settings();
      const expires = field(form, 'expires').trim();
      const expiresAt = expires === '' ? null : parseDate(expires, 'Expires on');
      if (expiresAt !== null && expiresAt <= now())
        throw new FormError('Expires on: that day has begun already; pick a later one');
      const k = createAccessKey(store, {
        name: nameFromForm(form) || undefined,
        method: methodFromForm(form, s.defaultMethod),
        dataLimit: limitFromForm(form, 'Data limit'),
        expiresAt,
        disguise: field(form, 'disguise') === 'on',
      });
      return { text: `Created ${keyLabel(k)}.`, to: keyPath(k.id) };
    }),
  );

  /** A POST on one key: 404 for an unknown key; `patch` computes the change from the form. */
  const keyAction = (
    action: string,
    fn: (k: AccessKey, form: Form) => { patch?: KeyPatch; text: string; to?: string },
  ) =>
    app.post<{ Params: { id: string } }>(`/keys/:id/${action}`, async (req, reply) => {
      const k = mustGet(req.params.id);
      if (!k) return notFound(req, reply);
      return act(req, reply, keyPath(k.id), (form) => {
        const r = fn(k, form);
        if (r.patch && !store.updateKey(k.id, r.patch)) throw new FormError('That key was deleted meanwhile');
        return r;
      });
    });

  const backTo = (k: AccessKey, form: Form) =>
    field(form, 'back') === 'list' ? `${ADMIN_BASE}/keys` : keyPath(k.id);

  keyAction('rename', (k, form) => {
    const name = nameFromForm(form);
    return { patch: { name }, text: name ? `Renamed to ${name}.` : `Removed the name of key ${k.id}.` };
  });
  keyAction('pause', (k, form) => ({
    patch: { paused: true },
    text: `Paused ${keyLabel(k)}: it stops working within seconds.`,
    to: backTo(k, form),
  }));
  keyAction('resume', (k, form) => ({
    patch: { paused: false },
    text: `Resumed ${keyLabel(k)}.`,
    to: backTo(k, form),
  }));
  keyAction('limit', (k, form) => {
    const limit = field(form, 'action') === 'remove' ? null : limitFromForm(form, 'Data limit');
    if (limit === null && field(form, 'action') !== 'remove')
      throw new FormError('Data limit: enter a size like 20GB, or use “Remove limit”');
    return {
      patch: { dataLimit: limit },
      text: limit ? `Set the limit of ${keyLabel(k)}.` : 'Removed the limit.',
    };
  });
  keyAction('expiry', (k, form) => {
    if (field(form, 'action') === 'remove')
      return { patch: { expiresAt: null }, text: 'Removed the expiry.' };
    const text = field(form, 'expires').trim();
    if (text === '') throw new FormError('Expires on: pick a day, or use “Remove expiry”');
    return { patch: { expiresAt: parseDate(text, 'Expires on') }, text: `Set the expiry of ${keyLabel(k)}.` };
  });
  keyAction('disguise', (k, form) => {
    const on = field(form, 'disguise') === 'on';
    if (on === (k.prefix !== null)) return { text: `Disguise is already ${on ? 'on' : 'off'}.` };
    return {
      patch: { prefix: on ? newDisguisePrefix(k.method) : null },
      text: `Turned disguise ${on ? 'on' : 'off'}: the key's URI changed, hand out the new one.`,
    };
  });

  app.post<{ Params: { id: string } }>('/keys/:id/delete', async (req, reply) => {
    const k = mustGet(req.params.id);
    if (!k || !store.deleteKey(k.id)) return notFound(req, reply);
    o.changed();
    return flashAndGo(req, reply, { kind: 'ok', text: `Deleted ${keyLabel(k)}.` }, `${ADMIN_BASE}/keys`);
  });

  app.post('/settings', async (req, reply) =>
    act(req, reply, `${ADMIN_BASE}/settings`, (form) => {
      const s = store.settings();
      const name = field(form, 'name').trim();
      if (name === '' || name.length > 100) throw new FormError('Server name: 1 to 100 characters');
      const port = Number(field(form, 'port').trim());
      if (!Number.isInteger(port) || port < 1 || port > 65535)
        throw new FormError('Port for new keys: a whole number from 1 to 65535');
      store.updateSettings({
        name,
        hostname: hostnameFromForm(field(form, 'hostname')),
        portForNewKeys: port,
        defaultMethod: methodFromForm(form, s.defaultMethod),
        defaultDataLimit: limitFromForm(form, 'Default data limit'),
        defaultDisguise: field(form, 'disguise') === 'on',
      });
      return { text: 'Saved the settings.' };
    }),
  );
}
