// The web admin page (/admin) through fastify's inject on an in-memory store: the login and its
// session cookie, CSRF, every action a host can take, escaping, 404s and the usage chart.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createManagementApi } from '../../src/control/api.js';
import { PrometheusMetrics } from '../../src/control/metrics.js';
import type { AdminOptions } from '../../src/control/admin/index.js';
import { escapeHtml, html, raw } from '../../src/control/admin/index.js';
import { formatBytes, parseDate, parseSize } from '../../src/control/admin/format.js';
import { LoginLimiter, Sessions } from '../../src/control/admin/sessions.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { MemoryKeyStore } from './memory-store.js';

const SECRET = 'Adm1nSecretSegment_0123';
const PUBLIC_URL = 'https://vpn.example.org:8443';
const DAY = 86_400_000;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

interface Res {
  status: number;
  body: string;
  headers: Record<string, string | string[] | number | undefined>;
  location: string | undefined;
}

async function admin(
  t: TestContext,
  o: { store?: MemoryKeyStore; admin?: AdminOptions; clock?: { now: number } } = {},
) {
  const clock = o.clock;
  const store =
    o.store ??
    new MemoryKeyStore(
      { hostname: 'vpn.example.org', portForNewKeys: 4433 },
      clock ? () => clock.now : Date.now,
    );
  let changes = 0;
  const app = await createManagementApi({
    store,
    metrics: new PrometheusMetrics(),
    secret: SECRET,
    version: '9.9.9',
    publicUrl: PUBLIC_URL,
    onSettingsChange: () => changes++,
    admin: { ...(clock ? { now: () => clock.now } : {}), ...o.admin },
  });
  t.after(() => app.close());

  const request = async (
    method: 'GET' | 'POST',
    url: string,
    o2: {
      cookie?: string;
      form?: Record<string, string>;
      headers?: Record<string, string>;
      ip?: string;
    } = {},
  ): Promise<Res> => {
    const r = await app.inject({
      method,
      url,
      headers: {
        ...(o2.cookie ? { cookie: o2.cookie } : {}),
        ...(o2.form ? FORM : {}),
        ...o2.headers,
      },
      ...(o2.form ? { payload: new URLSearchParams(o2.form).toString() } : {}),
      ...(o2.ip ? { remoteAddress: o2.ip } : {}),
    });
    const location = r.headers.location;
    return {
      status: r.statusCode,
      // Whitespace collapsed (the templates are formatted by prettier, attributes on lines of their own).
      body: r.body.replace(/\s+/g, ' ').replace(/ (\/?>)/g, '$1'),
      headers: r.headers,
      location: typeof location === 'string' ? location : undefined,
    };
  };

  /** Logs in; returns the cookie header and a client that sends it (and the CSRF token on POSTs). */
  const login = async (ip?: string) => {
    const r = await request('POST', '/admin/login', { form: { secret: SECRET }, ...(ip ? { ip } : {}) });
    assert.equal(r.status, 303, r.body);
    assert.equal(r.location, '/admin');
    const setCookie = [r.headers['set-cookie']].flat()[0] as string;
    const cookie = setCookie.split(';')[0]!;
    const get = (url: string) => request('GET', url, { cookie });
    const page = await get('/admin/keys');
    const csrf = /name="_csrf" value="([^"]+)"/.exec(page.body)?.[1];
    assert.ok(csrf, 'the page carries a CSRF token');
    const post = (url: string, form: Record<string, string> = {}) =>
      request('POST', url, { cookie, form: { _csrf: csrf, ...form } });
    /** POSTs, follows the redirect, and returns the page it lands on. */
    const submit = async (url: string, form: Record<string, string> = {}) => {
      const r2 = await post(url, form);
      assert.equal(r2.status, 303, `${url}: ${r2.body}`);
      const next = await get(r2.location!);
      return { ...next, url: r2.location! };
    };
    return { cookie, csrf, setCookie, get, post, submit };
  };
  return { app, store, request, login, changes: () => changes };
}

describe('admin page: login and session', () => {
  test('every page needs a login; the login page and the static files do not', async (t) => {
    const { request, store } = await admin(t);
    const k = store.createKey({ method: 'chacha20-ietf-poly1305', port: 4433, name: 'x' });
    for (const url of [
      '/admin',
      '/admin/',
      '/admin/keys',
      `/admin/keys/${k.id}`,
      '/admin/settings',
      '/admin/nope',
    ]) {
      const r = await request('GET', url);
      assert.equal(r.status, 303, url);
      assert.equal(r.location, '/admin/login', url);
    }
    for (const url of [
      '/admin/keys',
      `/admin/keys/${k.id}/pause`,
      `/admin/keys/${k.id}/delete`,
      '/admin/settings',
    ]) {
      const r = await request('POST', url, { form: { name: 'evil' } });
      assert.equal(r.status, 401, url);
      assert.match(r.body, /log in again/);
    }
    assert.equal(store.listKeys().length, 1);
    assert.equal(store.getKey(k.id)!.paused, false);
    const loginPage = await request('GET', '/admin/login');
    assert.equal(loginPage.status, 200);
    assert.match(String(loginPage.headers['content-type']), /^text\/html/);
    assert.match(loginPage.body, /<label for="secret">Secret<\/label>/);
    assert.equal((await request('GET', '/admin/static/admin.css')).status, 200);
    const js = await request('GET', '/admin/static/admin.js');
    assert.equal(js.status, 200);
    assert.match(String(js.headers['content-type']), /^text\/javascript/);
  });

  test('a wrong secret is refused; the right one sets an HttpOnly, Secure, SameSite=Strict cookie on /admin', async (t) => {
    const { request, login } = await admin(t);
    for (const secret of ['', 'wrong', SECRET.slice(0, -1), `${SECRET}x`, SECRET.toLowerCase()]) {
      const r = await request('POST', '/admin/login', { form: { secret } });
      assert.equal(r.status, 401, secret);
      assert.equal(r.headers['set-cookie'], undefined);
      assert.match(r.body, /not the secret/);
    }
    const { setCookie, get } = await login();
    const attrs = setCookie.split(';').map((s) => s.trim());
    assert.match(attrs[0]!, /^pigeon_session=[A-Za-z0-9_-]{40,}$/);
    assert.ok(attrs.includes('HttpOnly'), setCookie);
    assert.ok(attrs.includes('Secure'), setCookie);
    assert.ok(attrs.includes('SameSite=Strict'), setCookie);
    assert.ok(attrs.includes('Path=/admin'), setCookie);
    const home = await get('/admin');
    assert.equal(home.status, 200);
    assert.match(home.body, /Overview/);
    // A made-up session is no session.
    const forged = await request('GET', '/admin', { cookie: 'pigeon_session=abc' });
    assert.equal(forged.status, 303);
  });

  test('security headers on every page', async (t) => {
    const { login, request } = await admin(t);
    const { get } = await login();
    for (const r of [await get('/admin'), await request('GET', '/admin/login')]) {
      const csp = String(r.headers['content-security-policy']);
      assert.match(csp, /default-src 'self'/);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      assert.equal(r.headers['x-frame-options'], 'DENY');
      assert.equal(r.headers['cache-control'], 'no-store');
      assert.equal(r.headers['referrer-policy'], 'same-origin');
      // No inline scripts or styles (the CSP would block them anyway).
      assert.doesNotMatch(r.body, /<script(?![^>]*\ssrc=)[^>]*>/);
      assert.doesNotMatch(r.body, /\sstyle=/);
      assert.doesNotMatch(r.body, /\son[a-z]+=/);
    }
  });

  test('login is rate-limited per client address', async (t) => {
    const { request } = await admin(t, { admin: { loginAttempts: { max: 3, windowMs: 60_000 } } });
    const ip = '198.51.100.7';
    for (let i = 0; i < 3; i++)
      assert.equal((await request('POST', '/admin/login', { form: { secret: 'no' }, ip })).status, 401);
    const limited = await request('POST', '/admin/login', { form: { secret: SECRET }, ip });
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers['retry-after']) > 0);
    assert.equal(limited.headers['set-cookie'], undefined);
    // Another address is not affected.
    const other = await request('POST', '/admin/login', { form: { secret: SECRET }, ip: '198.51.100.8' });
    assert.equal(other.status, 303);
  });

  test('logout ends the session; sessions end when idle', async (t) => {
    const clock = { now: Date.UTC(2026, 5, 1) };
    const { login, request } = await admin(t, {
      clock,
      admin: { sessions: { idleMs: 60_000, maxMs: 3_600_000 } },
    });
    const a = await login();
    const out = await a.post('/admin/logout');
    assert.equal(out.status, 303);
    assert.equal(out.location, '/admin/login');
    assert.match(String([out.headers['set-cookie']].flat()[0]), /pigeon_session=;.*Path=\/admin/);
    assert.equal((await a.get('/admin')).status, 303);

    const b = await login();
    clock.now += 59_000;
    assert.equal((await b.get('/admin')).status, 200);
    clock.now += 59_000; // still within 60 s of the last request
    assert.equal((await b.get('/admin')).status, 200);
    clock.now += 61_000;
    const expired = await b.get('/admin');
    assert.equal(expired.status, 303);
    assert.equal(expired.location, '/admin/login');
    assert.equal((await request('GET', '/admin', { cookie: b.cookie })).status, 303);
  });

  test('the secret path prefix logs in and drops the secret from the address', async (t) => {
    const { request, app } = await admin(t);
    const r = await request('GET', `/${SECRET}/admin`);
    assert.equal(r.status, 303);
    assert.equal(r.location, '/admin');
    const cookie = String([r.headers['set-cookie']].flat()[0]).split(';')[0]!;
    assert.equal((await request('GET', '/admin', { cookie })).status, 200);
    const deep = await request('GET', `/${SECRET}/admin/settings`);
    assert.equal(deep.location, '/admin/settings');
    // A wrong prefix is the API's unknown path.
    const wrong = await app.inject({ method: 'GET', url: `/${SECRET.replace(/.$/, 'X')}/admin` });
    assert.equal(wrong.statusCode, 404);
    assert.deepEqual(wrong.json(), { code: 'not_found', message: 'not found' });
    // Only GET logs in that way.
    assert.equal((await request('POST', `/${SECRET}/admin/keys`, { form: {} })).status, 404);
  });
});

describe('admin page: CSRF', () => {
  test('a POST without the token, with a wrong one, another session’s, or from another origin is refused', async (t) => {
    const { login, request, store } = await admin(t);
    const a = await login();
    const b = await login();
    const k = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'k' });
    const attempts: Array<[string, Record<string, string>, Record<string, string>?]> = [
      ['/admin/keys', { name: 'no token' }],
      ['/admin/keys', { name: 'wrong', _csrf: 'x'.repeat(43) }],
      ['/admin/keys', { name: 'empty', _csrf: '' }],
      ['/admin/keys', { name: 'other session', _csrf: b.csrf }],
      ['/admin/keys', { name: 'foreign', _csrf: a.csrf }, { origin: 'https://evil.example' }],
      ['/admin/keys', { name: 'cross-site', _csrf: a.csrf }, { 'sec-fetch-site': 'cross-site' }],
      ['/admin/keys', { name: 'same-site', _csrf: a.csrf }, { 'sec-fetch-site': 'same-site' }],
      ['/admin/keys', { name: 'opaque', _csrf: a.csrf }, { origin: 'null' }],
      [`/admin/keys/${k.id}/pause`, {}],
      [`/admin/keys/${k.id}/delete`, { _csrf: b.csrf }],
      ['/admin/settings', { name: 'Evil', hostname: 'evil.example', port: '1' }],
      ['/admin/logout', {}],
    ];
    for (const [url, form, headers] of attempts) {
      const r = await request('POST', url, { cookie: a.cookie, form, ...(headers ? { headers } : {}) });
      assert.equal(r.status, 403, `${url} ${JSON.stringify(form)}`);
    }
    assert.equal(store.listKeys().length, 1);
    assert.equal(store.getKey(k.id)!.paused, false);
    assert.equal(store.settings().hostname, 'vpn.example.org');
    assert.equal((await a.get('/admin')).status, 200, 'still logged in');
    // The same form with the session's own token works (and a same-origin Origin is fine).
    const ok = await request('POST', '/admin/keys', {
      cookie: a.cookie,
      form: { _csrf: a.csrf, name: 'fine' },
      headers: { origin: 'http://localhost:80', host: 'localhost:80' },
    });
    assert.equal(ok.status, 303);
    const ok2 = await request('POST', '/admin/keys', {
      cookie: a.cookie,
      form: { _csrf: a.csrf, name: 'fine too' },
      headers: { 'sec-fetch-site': 'same-origin', origin: 'https://127.0.0.1:1' },
    });
    assert.equal(ok2.status, 303);
    assert.equal(store.listKeys().length, 3);
    // A login form posted from another site is refused too (login CSRF).
    const foreignLogin = await request('POST', '/admin/login', {
      form: { secret: SECRET },
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    assert.equal(foreignLogin.status, 403);
    assert.equal(foreignLogin.headers['set-cookie'], undefined);
  });
});

describe('admin page: actions change the store', () => {
  test('create, rename, pause, resume, limit, expiry, disguise, delete', async (t) => {
    const { login, store, changes } = await admin(t);
    const { submit, get } = await login();

    const created = await submit('/admin/keys', {
      name: "Mum's phone",
      limit: '20GB',
      window: 'total',
      expires: '2099-01-31',
      method: 'aes-256-gcm',
    });
    assert.match(created.url, /^\/admin\/keys\/\d+$/);
    const id = created.url.split('/').pop()!;
    let k = store.getKey(id)!;
    assert.equal(k.name, "Mum's phone");
    assert.deepEqual(k.dataLimit, { bytes: 20e9, window: 'total' });
    assert.equal(k.expiresAt, Date.UTC(2099, 0, 31));
    assert.equal(k.method, 'aes-256-gcm');
    assert.equal(k.port, 4433);
    assert.equal(k.prefix, null, 'the disguise box was not ticked');
    assert.match(created.body, /Created Mum&#39;s phone\./);
    assert.ok(changes() >= 1);

    // Defaults: no name, the default method, disguise ticked, no limit, no expiry.
    const plain = await submit('/admin/keys', { disguise: 'on' });
    const k2 = store.getKey(plain.url.split('/').pop()!)!;
    assert.equal(k2.method, 'chacha20-ietf-poly1305');
    assert.notEqual(k2.prefix, null);
    assert.equal(k2.dataLimit, null);
    assert.equal(k2.expiresAt, null);

    await submit(`/admin/keys/${id}/rename`, { name: 'Dad' });
    assert.equal(store.getKey(id)!.name, 'Dad');

    const paused = await submit(`/admin/keys/${id}/pause`);
    assert.equal(store.getKey(id)!.paused, true);
    assert.match(paused.body, /class="badge paused">paused</);
    assert.match(paused.body, />Resume</);
    const back = await submit(`/admin/keys/${id}/resume`, { back: 'list' });
    assert.equal(back.url, '/admin/keys');
    assert.equal(store.getKey(id)!.paused, false);

    await submit(`/admin/keys/${id}/limit`, { limit: '1.5 GiB', window: 'rolling-30d', action: 'set' });
    assert.deepEqual(store.getKey(id)!.dataLimit, {
      bytes: Math.round(1.5 * 2 ** 30),
      window: 'rolling-30d',
    });
    await submit(`/admin/keys/${id}/limit`, { action: 'remove' });
    assert.equal(store.getKey(id)!.dataLimit, null);

    await submit(`/admin/keys/${id}/expiry`, { expires: '2098-12-24', action: 'set' });
    assert.equal(store.getKey(id)!.expiresAt, Date.UTC(2098, 11, 24));
    await submit(`/admin/keys/${id}/expiry`, { action: 'remove' });
    assert.equal(store.getKey(id)!.expiresAt, null);

    await submit(`/admin/keys/${id}/disguise`, { disguise: 'on' });
    k = store.getKey(id)!;
    assert.ok(k.prefix && k.prefix.length > 0);
    const withPrefix = await get(`/admin/keys/${id}`);
    assert.match(withPrefix.body, /prefix=/, 'the URI carries the prefix');
    await submit(`/admin/keys/${id}/disguise`, { disguise: 'off' });
    assert.equal(store.getKey(id)!.prefix, null);

    const confirm = await get(`/admin/keys/${id}/delete`);
    assert.equal(confirm.status, 200);
    assert.match(confirm.body, /Delete “Dad”\?/);
    assert.equal(store.getKey(id)!.name, 'Dad', 'the confirmation page deletes nothing');
    const deleted = await submit(`/admin/keys/${id}/delete`);
    assert.equal(deleted.url, '/admin/keys');
    assert.equal(store.getKey(id), undefined);
    assert.match(deleted.body, /Deleted Dad\./);
  });

  test('settings: name, host name, port for new keys, method, default limit, default disguise', async (t) => {
    const { login, store, changes } = await admin(t);
    const { submit, get } = await login();
    const before = changes();
    const page = await get('/admin/settings');
    assert.match(page.body, /value="vpn.example.org"/);
    await submit('/admin/settings', {
      name: 'Home server',
      hostname: 'pigeon.example.net',
      port: '8388',
      method: '2022-blake3-aes-128-gcm',
      limit: '50GB',
      window: 'rolling-30d',
    });
    let s = store.settings();
    assert.equal(s.name, 'Home server');
    assert.equal(s.hostname, 'pigeon.example.net');
    assert.equal(s.portForNewKeys, 8388);
    assert.equal(s.defaultMethod, '2022-blake3-aes-128-gcm');
    assert.deepEqual(s.defaultDataLimit, { bytes: 50e9, window: 'rolling-30d' });
    assert.equal(s.defaultDisguise, false, 'the box was not ticked');
    assert.ok(changes() > before);

    // New keys follow the settings: port, method (with its identity PSK), no disguise.
    const created = await submit('/admin/keys', {});
    const k = store.getKey(created.url.split('/').pop()!)!;
    assert.equal(k.port, 8388);
    assert.equal(k.method, '2022-blake3-aes-128-gcm');
    assert.equal(k.prefix, null);
    const uri = /id="access-uri"[^>]*>([^<]+)</.exec(created.body)?.[1];
    assert.ok(uri);
    const parsed = parseSsUri(uri.replace(/&amp;/g, '&'));
    assert.equal(parsed.host, 'pigeon.example.net');
    assert.equal(parsed.port, 8388);
    assert.match(parsed.password, /^[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+$/, 'iPSK:uPSK');

    await submit('/admin/settings', {
      name: 'Home server',
      hostname: '[2001:db8::1]',
      port: '8388',
      limit: '',
      disguise: 'on',
    });
    s = store.settings();
    assert.equal(s.hostname, '2001:db8::1');
    assert.equal(s.defaultDataLimit, null);
    assert.equal(s.defaultDisguise, true);
  });

  test('bad input is refused with a message, and changes nothing', async (t) => {
    const { login, store } = await admin(t);
    const { submit } = await login();
    const k = store.createKey({ method: 'chacha20-ietf-poly1305', port: 4433, name: 'k' });
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['/admin/keys', { name: 'x', limit: 'lots' }, /expected a size like 20GB/],
      ['/admin/keys', { name: 'x', expires: '2020-01-01' }, /pick a later one/],
      ['/admin/keys', { name: 'x', expires: '2099-02-30' }, /expected a date/],
      ['/admin/keys', { name: 'x', method: 'rc4-md5' }, /unknown method/],
      ['/admin/keys', { name: 'x'.repeat(101) }, /at most 100 characters/],
      [`/admin/keys/${k.id}/limit`, { limit: '', action: 'set' }, /enter a size/],
      [`/admin/keys/${k.id}/expiry`, { expires: 'soon', action: 'set' }, /expected a date/],
      ['/admin/settings', { name: 'n', hostname: 'bad host!', port: '1' }, /neither a host name/],
      ['/admin/settings', { name: 'n', hostname: 'ok.example', port: '70000' }, /1 to 65535/],
      ['/admin/settings', { name: '', hostname: 'ok.example', port: '1' }, /Server name/],
    ];
    for (const [url, form, message] of cases) {
      const r = await submit(url, form);
      assert.match(r.body, /class="flash error" role="alert"/, url);
      assert.match(r.body, message, `${url} ${JSON.stringify(form)}`);
    }
    assert.equal(store.listKeys().length, 1);
    assert.equal(store.getKey(k.id)!.dataLimit, null);
    assert.equal(store.settings().hostname, 'vpn.example.org');
    assert.equal(store.settings().portForNewKeys, 4433);
  });

  test('unknown keys are 404 pages', async (t) => {
    const { login } = await admin(t);
    const { get, post } = await login();
    for (const url of ['/admin/keys/99', '/admin/keys/99/delete', '/admin/keys/%3Cx%3E']) {
      const r = await get(url);
      assert.equal(r.status, 404, url);
      assert.match(String(r.headers['content-type']), /^text\/html/);
    }
    for (const action of ['rename', 'pause', 'resume', 'limit', 'expiry', 'disguise', 'delete'])
      assert.equal((await post(`/admin/keys/99/${action}`, { name: 'x' })).status, 404, action);
  });
});

describe('admin page: what it shows', () => {
  test('user-supplied strings are escaped: a key named <script> shows as text', async (t) => {
    const { login, store } = await admin(t);
    const { submit, get } = await login();
    const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>'&`;
    const created = await submit('/admin/keys', { name: evil });
    const id = created.url.split('/').pop()!;
    assert.equal(store.getKey(id)!.name, evil);
    await submit('/admin/settings', { name: `<b>srv</b>`, hostname: 'vpn.example.org', port: '4433' });
    const escaped = escapeHtml(evil);
    assert.match(escaped, /^&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;&lt;img/);
    for (const url of [
      `/admin/keys/${id}`,
      '/admin/keys',
      `/admin/keys/${id}/delete`,
      '/admin',
      '/admin/settings',
    ]) {
      const r = await get(url);
      assert.equal(r.status, 200, url);
      assert.doesNotMatch(r.body, /<script>alert/, url);
      assert.doesNotMatch(r.body, /<img src=x/, url);
      assert.doesNotMatch(r.body, /<b>srv<\/b>/, url);
      if (url !== '/admin' && url !== '/admin/settings') assert.ok(r.body.includes(escaped), url);
    }
    assert.ok(created.body.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;'));
    // The template helper itself.
    assert.equal(
      html`<p title="${'"a"'}">${'<b>'}${raw('<i>ok</i>')}${['<', html`<u></u>`]}</p>`.value,
      '<p title="&quot;a&quot;">&lt;b&gt;<i>ok</i>&lt;<u></u></p>',
    );
  });

  test('key page: URI, QR code, subscription links, usage bar and the 30-day chart from dailyUsage', async (t) => {
    const clock = { now: Date.UTC(2026, 6, 15, 12) };
    const { login, store } = await admin(t, { clock });
    const { get } = await login();
    const k = store.createKey({
      method: 'chacha20-ietf-poly1305',
      port: 4433,
      name: 'Chart',
      dataLimit: { bytes: 10e6, window: 'rolling-30d' },
    });
    store.addUsage(k.id, 4e6, clock.now); // today: the busiest day
    store.addUsage(k.id, 1e6, clock.now - 3 * DAY);
    store.addUsage(k.id, 2e6, clock.now - 29 * DAY); // the oldest day shown
    store.addUsage(k.id, 9e6, clock.now - 40 * DAY); // outside the chart and the 30 days
    const r = await get(`/admin/keys/${k.id}`);
    assert.equal(r.status, 200);
    const b = r.body;
    // The URI and its QR code.
    const uri = /<textarea id="access-uri"[^>]*>([^<]+)<\/textarea>/.exec(b)?.[1];
    assert.ok(uri?.startsWith('ss://'));
    assert.match(
      b,
      /<div class="qr" id="qr"><svg role="img" aria-label="QR code of the access key"[^>]*viewBox/,
    );
    // Subscription links, each with a label and a copy button.
    for (const [id, re] of [
      ['ssconf', /ssconf:\/\/vpn\.example\.org:8443\/sub\/[^/]+\/outline\.json/],
      ['sip008', /https:\/\/vpn\.example\.org:8443\/sub\/[^/]+\/sip008\.json/],
      ['clash', /\/clash\.yaml/],
      ['singbox', /\/sing-box\.json/],
    ] as const) {
      const input = new RegExp(`<input id="sub-${id}" type="text" readonly value="([^"]+)"`).exec(b);
      assert.ok(input, id);
      assert.match(input[1]!, re);
      assert.match(b, new RegExp(`<label for="sub-${id}">`));
      assert.match(b, new RegExp(`data-copy="sub-${id}"`));
    }
    assert.ok(b.includes(store.getKey(k.id)!.token));
    // Usage against the limit: 7 MB of 10 MB in the last 30 days.
    assert.match(b, /<meter id="key-usage" min="0" max="10000000" value="7000000"/);
    assert.match(b, /7\.00 MB of 10\.0 MB per 30 days/);
    // The chart: 30 bars, the busiest full height, idle days flat; the table has every day.
    const bars = [...b.matchAll(/<rect class="bar" x="[\d.]+" y="(\d+)" width="[\d.]+" height="(\d+)"/g)];
    assert.equal(bars.length, 30);
    const heights = bars.map((m) => Number(m[2]));
    assert.equal(heights[29], Math.max(...heights), 'today is the busiest');
    assert.equal(heights[29], 150 - 16 - 20);
    assert.equal(heights[0], Math.round((2 / 4) * 114));
    assert.equal(heights[26], Math.round((1 / 4) * 114));
    assert.equal(heights.filter((h) => h === 0).length, 27);
    assert.match(b, /<title>2026-07-15: 4\.00 MB<\/title>/);
    assert.match(b, /<title id="chart-title">Usage, last 30 days<\/title>/);
    assert.match(b, /aria-labelledby="chart-title chart-desc"/);
    assert.match(
      b,
      /from 2026-06-16 to 2026-07-15 \(UTC\): 7\.00 MB in all, most on 2026-07-15 \(4\.00 MB\)/,
    );
    assert.match(b, /<td>2026-06-16<\/td>\s*<td data-bytes="2000000">2\.00 MB<\/td>/);
    assert.equal([...b.matchAll(/<td data-bytes=/g)].length, 30);
  });

  test('key list: status and usage bars against limits (own or the default)', async (t) => {
    const clock = { now: Date.UTC(2026, 6, 15, 12) };
    const { login, store } = await admin(t, { clock });
    store.updateSettings({ defaultDataLimit: { bytes: 5e6, window: 'total' } });
    const a = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'own' });
    store.updateKey(a.id, { dataLimit: { bytes: 1e6, window: 'rolling-30d' } });
    const b = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'default' });
    const c = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'old', expiresAt: clock.now - 1 });
    const d = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'stopped' });
    store.updateKey(d.id, { paused: true });
    store.addUsage(a.id, 2e6, clock.now);
    store.addUsage(b.id, 1e6, clock.now);
    const { get } = await login();
    const r = await get('/admin/keys');
    const item = (id: string) =>
      new RegExp(`<li data-key-id="${id}">([\\s\\S]*?)</li>`).exec(r.body)?.[1] ?? '';
    assert.match(item(a.id), /badge over-limit">over limit</);
    assert.match(item(a.id), /<meter id="usage-1" min="0" max="1000000" value="1000000"/);
    assert.match(item(b.id), /badge active">active</);
    assert.match(item(b.id), /1\.00 MB of 5\.00 MB in total \(server default\)/);
    assert.match(item(c.id), /badge expired">expired</);
    assert.match(item(d.id), /badge paused">paused</);
    assert.match(item(d.id), /aria-label="Resume stopped"/);
    assert.match(r.body, /4 keys/);
  });

  test('overview: server info, connections, transfer totals, uptime and each inbound', async (t) => {
    const clock = { now: Date.UTC(2026, 6, 15, 12) };
    const { login, store } = await admin(t, {
      clock,
      admin: {
        startedAt: clock.now - (2 * DAY + 3 * 3_600_000 + 4 * 60_000),
        listeningPorts: () => [4433],
        activeConnections: (id) => (id === undefined ? 5 : id === '1' ? 3 : 2),
      },
    });
    const a = store.createKey({ method: 'aes-128-gcm', port: 4433, name: 'a' });
    store.createKey({ method: 'chacha20-ietf-poly1305', port: 4433, name: 'b' });
    store.createKey({ method: 'aes-256-gcm', port: 5555, name: 'c' });
    store.addUsage(a.id, 3e6, clock.now);
    store.addUsage(a.id, 2e6, clock.now - 45 * DAY);
    const { get } = await login();
    const b = (await get('/admin')).body;
    assert.match(b, /<dt>Version<\/dt>\s*<dd>9\.9\.9<\/dd>/);
    assert.match(b, /<dt>Uptime<\/dt>\s*<dd>2 d 3 h 4 min<\/dd>/);
    assert.match(b, /<dd id="active-connections">5<\/dd>/);
    assert.match(b, /Transferred, 30 days<\/dt>\s*<dd>3\.00 MB/);
    assert.match(b, /Transferred, all time<\/dt>\s*<dd>5\.00 MB/);
    assert.match(
      b,
      /<td>4433<\/td>\s*<td>aes-128-gcm, chacha20-ietf-poly1305<\/td>\s*<td>2<\/td>\s*<td>5<\/td>\s*<td>\s*<span class="badge active">listening/,
    );
    assert.match(
      b,
      /<td>5555<\/td>[\s\S]*?<td>1<\/td>\s*<td>2<\/td>\s*<td>\s*<span class="badge down">not listening/,
    );
    assert.match(b, /3 \(3 active, 0 paused, 0\s+expired, 0 over their limit\)/);
  });

  test('without the server’s callbacks the overview reads connections from the metrics', async (t) => {
    const metricsStore = new MemoryKeyStore({ hostname: 'vpn.example.org', portForNewKeys: 4433 });
    const k = metricsStore.createKey({ method: 'aes-128-gcm', port: 4433 });
    const metrics = new PrometheusMetrics();
    metrics.connectionOpened(k.id, 'tcp');
    metrics.connectionOpened(k.id, 'udp');
    metrics.bytes(k.id, 'in', 1500);
    const app = await createManagementApi({
      store: metricsStore,
      metrics,
      secret: SECRET,
      version: '1',
      publicUrl: PUBLIC_URL,
    });
    t.after(() => app.close());
    const r = await app.inject({ method: 'GET', url: `/${SECRET}/admin` });
    const cookie = String([r.headers['set-cookie']].flat()[0]).split(';')[0]!;
    const page = await app.inject({ method: 'GET', url: '/admin', headers: { cookie } });
    assert.match(page.body, /<dd id="active-connections">2<\/dd>/);
    assert.match(page.body, /Since this start<\/dt>\s*<dd>1\.50 KB/);
    assert.match(page.body, /<td>4433<\/td>[\s\S]*?<span class="badge">unknown/);
  });
});

describe('admin page: helpers', () => {
  test('sizes, dates, sessions and the limiter', () => {
    assert.equal(parseSize('20GB', 'x'), 20e9);
    assert.equal(parseSize(' 500 mib ', 'x'), 500 * 2 ** 20);
    assert.equal(parseSize('123', 'x'), 123);
    assert.throws(() => parseSize('-1GB', 'x'), /expected a size/);
    assert.throws(() => parseSize('1e30', 'x'), /expected a size/);
    assert.throws(() => parseSize('99999999999TB', 'x'), /too large/);
    assert.equal(parseDate('2027-01-31', 'x'), Date.UTC(2027, 0, 31));
    assert.throws(() => parseDate('2027-13-01', 'x'));
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1_500_000), '1.50 MB');
    let now = 0;
    const sessions = new Sessions(() => now, { idleMs: 10, maxMs: 25, maxSessions: 2 });
    const a = sessions.create();
    sessions.create();
    sessions.create(); // the oldest goes
    assert.equal(sessions.size, 2);
    assert.equal(sessions.get(a.token), undefined);
    const c = sessions.create();
    for (now = 5; now <= 20; now += 5) assert.ok(sessions.get(c.token), `alive at ${now}`);
    now = 25; // the hard limit, however active
    assert.equal(sessions.get(c.token), undefined);
    const limiter = new LoginLimiter(() => now, { max: 2, windowMs: 100, maxAddresses: 2 });
    limiter.fail('a');
    limiter.fail('a');
    assert.ok(limiter.retryAfter('a') > 0);
    now += 100;
    assert.equal(limiter.retryAfter('a'), 0);
    for (const ip of ['b', 'c', 'd']) limiter.fail(ip); // bounded: the oldest is forgotten
    assert.equal(limiter.retryAfter('d'), 0);
  });
});
