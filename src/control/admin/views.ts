// The admin pages as HTML: a layout with a phone-first stylesheet, and one function per page. Every
// value goes through html`…`, which escapes it; forms POST and redirect, so nothing needs the script.
import { METHODS, type MethodName } from '../../wire/shadowsocks-methods.js';
import type { AccessKey, DailyUsage, DataLimit, KeyUsage, ServerSettings } from '../types.js';
import { html, type Html, type HtmlValue } from './html.js';
import { usageChart } from './chart.js';
import {
  dateInput,
  describeLimit,
  formatBytes,
  formatDuration,
  formatTime,
  sizeInput,
  type KeyStatus,
} from './format.js';
import type { Flash } from './sessions.js';

export const ADMIN_BASE = '/admin';
export const CSS_PATH = `${ADMIN_BASE}/static/admin.css`;
export const JS_PATH = `${ADMIN_BASE}/static/admin.js`;

export type NavItem = 'overview' | 'keys' | 'settings' | null;

export interface PageContext {
  /** The session's CSRF token; null on pages shown before login. */
  csrf: string | null;
  flash?: Flash | undefined;
  nav?: NavItem;
}

export const keyPath = (id: string, action = ''): string =>
  `${ADMIN_BASE}/keys/${encodeURIComponent(id)}${action ? `/${action}` : ''}`;

export const keyLabel = (k: AccessKey): string => k.name || `Key ${k.id}`;

const csrfField = (csrf: string | null): Html =>
  csrf ? html`<input type="hidden" name="_csrf" value="${csrf}" />` : html``;

function navLink(item: Exclude<NavItem, null>, current: NavItem, href: string, text: string): Html {
  return html`<li><a href="${href}" ${item === current ? html`aria-current="page"` : ''}>${text}</a></li>`;
}

export function layout(title: string, ctx: PageContext, body: HtmlValue): string {
  const nav =
    ctx.csrf === null
      ? html``
      : html`<nav aria-label="Main">
            <ul>
              ${navLink('overview', ctx.nav ?? null, ADMIN_BASE, 'Overview')}
              ${navLink('keys', ctx.nav ?? null, `${ADMIN_BASE}/keys`, 'Keys')}
              ${navLink('settings', ctx.nav ?? null, `${ADMIN_BASE}/settings`, 'Settings')}
            </ul>
          </nav>
          <form method="post" action="${ADMIN_BASE}/logout">
            ${csrfField(ctx.csrf)}<button type="submit" class="link">Log out</button>
          </form>`;
  const flash = ctx.flash
    ? html`<p class="flash ${ctx.flash.kind}" role="${ctx.flash.kind === 'error' ? 'alert' : 'status'}">
        ${ctx.flash.text}
      </p>`
    : '';
  return `<!doctype html>\n${html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <link rel="icon" href="data:," />
      <title>${title} · Pigeon</title>
      <link rel="stylesheet" href="${CSS_PATH}" />
      <script src="${JS_PATH}" defer></script>
    </head>
    <body>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <a class="brand" href="${ADMIN_BASE}">Pigeon</a>
        ${nav}
      </header>
      <main id="main" tabindex="-1">${flash}${body}</main>
    </body>
  </html>`}\n`;
}

// ---- login and errors

export function loginPage(o: { error?: string; retryAfter?: number }): string {
  return layout(
    'Log in',
    { csrf: null, ...(o.error ? { flash: { kind: 'error', text: o.error } } : {}) },
    html`<section class="card login">
      <h1>Pigeon admin</h1>
      <p class="muted">
        Enter the management API's secret: the last part of the “Management API” address that
        <code>pigeon server</code> printed (https://HOST:PORT/<strong>SECRET</strong>).
      </p>
      <form method="post" action="${ADMIN_BASE}/login">
        <div class="field">
          <label for="secret">Secret</label>
          <input
            id="secret"
            name="secret"
            type="password"
            autocomplete="current-password"
            autocapitalize="off"
            spellcheck="false"
            required
            autofocus
          />
        </div>
        <button type="submit">Log in</button>
      </form>
    </section>`,
  );
}

export function errorPage(ctx: PageContext, status: number, title: string, message: string): string {
  return layout(
    title,
    ctx,
    html`<section class="card">
      <h1>${title}</h1>
      <p>${message}</p>
      <p><a href="${ADMIN_BASE}">Back to the overview</a> (HTTP ${status})</p>
    </section>`,
  );
}

// ---- overview

export interface InboundView {
  port: number;
  keys: number;
  methods: MethodName[];
  /** null when the server's listeners are not known (the API runs without a server). */
  listening: boolean | null;
  connections: number | null;
}

export interface OverviewView {
  settings: ServerSettings;
  version: string;
  apiUrl: string;
  now: number;
  startedAt: number | null;
  activeConnections: number | null;
  counts: Record<KeyStatus, number> & { total: number };
  transfer: { total: number; last30d: number; sinceStart: number | null };
  inbounds: InboundView[];
}

const orUnknown = (v: number | null, f: (n: number) => string = String): string =>
  v === null ? 'unknown' : f(v);

export function overviewPage(ctx: PageContext, v: OverviewView): string {
  const s = v.settings;
  const inboundRows = v.inbounds.map(
    (i) =>
      html`<tr>
        <td>${i.port}</td>
        <td>${i.methods.join(', ')}</td>
        <td>${i.keys}</td>
        <td>${orUnknown(i.connections)}</td>
        <td>
          ${
            i.listening === null
              ? html`<span class="badge">unknown</span>`
              : i.listening
                ? html`<span class="badge active">listening</span>`
                : html`<span class="badge down">not listening</span>`
          }
        </td>
      </tr>`,
  );
  return layout(
    'Overview',
    { ...ctx, nav: 'overview' },
    html`<h1>${s.name}</h1>
      <div class="grid">
        <section class="card" aria-labelledby="server-h">
          <h2 id="server-h">Server</h2>
          <dl class="facts">
            <dt>Version</dt>
            <dd>${v.version}</dd>
            <dt>Uptime</dt>
            <dd>${v.startedAt === null ? 'unknown' : formatDuration(v.now - v.startedAt)}</dd>
            <dt>Host name in keys</dt>
            <dd>${s.hostname || 'not set'}</dd>
            <dt>Port for new keys</dt>
            <dd>${s.portForNewKeys}</dd>
            <dt>Default method</dt>
            <dd>${s.defaultMethod}</dd>
            <dt>Default limit</dt>
            <dd>${s.defaultDataLimit ? describeLimit(s.defaultDataLimit) : 'none'}</dd>
            <dt>Management API</dt>
            <dd>${v.apiUrl}</dd>
          </dl>
        </section>
        <section class="card" aria-labelledby="now-h">
          <h2 id="now-h">Now</h2>
          <dl class="facts">
            <dt>Active connections</dt>
            <dd id="active-connections">${orUnknown(v.activeConnections)}</dd>
            <dt>Keys</dt>
            <dd>
              ${v.counts.total} (${v.counts.active} active, ${v.counts.paused} paused, ${v.counts.expired}
              expired, ${v.counts['over limit']} over their limit)
            </dd>
            <dt>Transferred, 30 days</dt>
            <dd>${formatBytes(v.transfer.last30d)}</dd>
            <dt>Transferred, all time</dt>
            <dd>${formatBytes(v.transfer.total)}</dd>
            <dt>Since this start</dt>
            <dd>${orUnknown(v.transfer.sinceStart, formatBytes)}</dd>
          </dl>
        </section>
      </div>
      <section class="card" aria-labelledby="inbounds-h">
        <h2 id="inbounds-h">Inbounds</h2>
        <p class="muted">Each port serves Shadowsocks over TCP and UDP, for every key on it.</p>
        ${
          v.inbounds.length === 0
            ? html`<p>No keys, so no ports. <a href="${ADMIN_BASE}/keys">Create a key</a>.</p>`
            : html`<div class="scroll">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">Port</th>
                      <th scope="col">Methods</th>
                      <th scope="col">Keys</th>
                      <th scope="col">Connections</th>
                      <th scope="col">State</th>
                    </tr>
                  </thead>
                  <tbody>
                    ${inboundRows}
                  </tbody>
                </table>
              </div>`
        }
      </section>`,
  );
}

// ---- keys

export interface KeyRow {
  key: AccessKey;
  status: KeyStatus;
  usage: KeyUsage;
  /** The limit that applies (the key's own or the server's default) and how much of it is used. */
  limit: DataLimit | null;
  limitIsDefault: boolean;
  used: number;
  connections: number | null;
}

const statusBadge = (st: KeyStatus): Html => html`<span class="badge ${st.replace(' ', '-')}">${st}</span>`;

function usageBar(r: KeyRow, id: string): Html {
  if (!r.limit)
    return html`<p class="usage">${formatBytes(r.usage.last30d)} in the last 30 days · no limit</p>`;
  const text = `${formatBytes(r.used)} of ${describeLimit(r.limit)}${r.limitIsDefault ? ' (server default)' : ''}`;
  return html`<div class="usage">
    <label for="${id}">${text}</label>
    <meter
      id="${id}"
      min="0"
      max="${Math.max(1, r.limit.bytes)}"
      value="${Math.min(r.used, r.limit.bytes)}"
      high="${Math.floor(r.limit.bytes * 0.9)}"
      optimum="0"
    >
      ${text}
    </meter>
  </div>`;
}

function pauseForm(ctx: PageContext, k: AccessKey, back: 'list' | 'key'): Html {
  const action = k.paused ? 'resume' : 'pause';
  const verb = k.paused ? 'Resume' : 'Pause';
  return html`<form method="post" action="${keyPath(k.id, action)}">
    ${csrfField(ctx.csrf)}<input type="hidden" name="back" value="${back}" />
    <button type="submit" class="secondary" aria-label="${verb} ${keyLabel(k)}">${verb}</button>
  </form>`;
}

const methodOptions = (selected: MethodName): Html[] =>
  METHODS.map((m) => html`<option value="${m}" ${m === selected ? html`selected` : ''}>${m}</option>`);

const windowOptions = (selected: DataLimit['window'] | undefined): Html => html`
  <option value="rolling-30d" ${selected !== 'total' ? html`selected` : ''}>per 30 days (rolling)</option>
  <option value="total" ${selected === 'total' ? html`selected` : ''}>in total</option>
`;

export function keysPage(ctx: PageContext, rows: KeyRow[], s: ServerSettings): string {
  const items = rows.map(
    (r) =>
      html`<li data-key-id="${r.key.id}">
        <div class="head">
          <a class="name" href="${keyPath(r.key.id)}">${keyLabel(r.key)}</a>
          ${statusBadge(r.status)}
          <span class="muted">#${r.key.id} · ${r.key.method} · port ${r.key.port}</span>
        </div>
        ${usageBar(r, `usage-${r.key.id}`)}
        <div class="actions">
          ${pauseForm(ctx, r.key, 'list')}
          <a class="button secondary" href="${keyPath(r.key.id)}" aria-label="Details of ${keyLabel(r.key)}"
            >Details</a
          >
        </div>
      </li>`,
  );
  return layout(
    'Keys',
    { ...ctx, nav: 'keys' },
    html`<h1>Access keys</h1>
      <section class="card" aria-labelledby="new-h">
        <h2 id="new-h">New key</h2>
        <form method="post" action="${ADMIN_BASE}/keys" id="create-key">
          ${csrfField(ctx.csrf)}
          <div class="field">
            <label for="new-name">Name</label>
            <input id="new-name" name="name" type="text" maxlength="100" autocomplete="off" />
            <span class="hint">Who or what it is for, e.g. “Mum's phone”.</span>
          </div>
          <div class="row">
            <div class="field">
              <label for="new-limit">Data limit</label>
              <input id="new-limit" name="limit" type="text" inputmode="decimal" placeholder="e.g. 20GB" />
              <span class="hint"
                >Empty:
                ${s.defaultDataLimit ? `the server's default, ${describeLimit(s.defaultDataLimit)}` : 'no limit'}.</span
              >
            </div>
            <div class="field">
              <label for="new-window">Limit counts</label>
              <select id="new-window" name="window">
                ${windowOptions(undefined)}
              </select>
            </div>
          </div>
          <div class="row">
            <div class="field">
              <label for="new-expires">Expires on</label>
              <input id="new-expires" name="expires" type="date" />
              <span class="hint">Optional; the key stops at 00:00 UTC that day.</span>
            </div>
            <div class="field">
              <label for="new-method">Method</label>
              <select id="new-method" name="method">
                ${methodOptions(s.defaultMethod)}
              </select>
            </div>
          </div>
          <div class="check">
            <input
              id="new-disguise"
              name="disguise"
              type="checkbox"
              value="on"
              ${s.defaultDisguise ? html`checked` : ''}
            />
            <label for="new-disguise">First-packet disguise (apps that do not know it still connect)</label>
          </div>
          <button type="submit">Create key</button>
        </form>
      </section>
      <section class="card" aria-labelledby="list-h">
        <h2 id="list-h">${rows.length} key${rows.length === 1 ? '' : 's'}</h2>
        ${
          rows.length === 0
            ? html`<p>No keys yet.</p>`
            : html`<ul class="keys">
                ${items}
              </ul>`
        }
      </section>`,
  );
}

export interface KeyDetailView {
  row: KeyRow;
  settings: ServerSettings;
  /** null when the server has no host name for keys yet. */
  uri: string | null;
  qrSvg: Html | null;
  subscriptions: { id: string; label: string; hint: string; url: string }[];
  daily: DailyUsage[];
}

function copyField(id: string, label: string, value: string, hint?: string, multiline = false): Html {
  return html`<div class="field">
    <label for="${id}">${label}</label>
    <div class="copy">
      ${
        multiline
          ? html`<textarea id="${id}" readonly rows="3" spellcheck="false">${value}</textarea>`
          : html`<input id="${id}" type="text" readonly value="${value}" spellcheck="false" />`
      }
      <button type="button" class="secondary" data-copy="${id}" hidden>Copy</button>
    </div>
    ${hint ? html`<span class="hint">${hint}</span>` : ''}
  </div>`;
}

export function keyPage(ctx: PageContext, v: KeyDetailView): string {
  const k = v.row.key;
  const csrf = csrfField(ctx.csrf);
  const connect =
    v.uri === null
      ? html`<p class="flash error">
          The server has no host name for keys yet: <a href="${ADMIN_BASE}/settings">set one</a>.
        </p>`
      : html`<div class="qr" id="qr">${v.qrSvg ?? ''}</div>
          ${copyField(
            'access-uri',
            'Access key (ss:// URI)',
            v.uri,
            'Paste into Outline, Shadowrocket, v2rayNG, Clash or sing-box, or scan the QR code.',
            true,
          )}`;
  const subs = v.subscriptions.map((s) => copyField(`sub-${s.id}`, s.label, s.url, s.hint));
  return layout(
    keyLabel(k),
    { ...ctx, nav: 'keys' },
    html`<h1>${keyLabel(k)} ${statusBadge(v.row.status)}</h1>
      <div class="grid">
        <section class="card" aria-labelledby="connect-h">
          <h2 id="connect-h">Connect</h2>
          ${connect}
        </section>
        <section class="card" aria-labelledby="subs-h">
          <h2 id="subs-h">Subscription links</h2>
          <p class="muted">
            Apps that refresh a subscription follow the server to a new host or port by themselves. They check
            certificates: serve <code>/sub/</code> through a name with a CA-signed certificate.
          </p>
          ${subs}
        </section>
      </div>
      <section class="card" aria-labelledby="usage-h">
        <h2 id="usage-h">Usage</h2>
        ${usageBar(v.row, 'key-usage')}
        <dl class="facts">
          <dt>Last 30 days</dt>
          <dd>${formatBytes(v.row.usage.last30d)}</dd>
          <dt>All time</dt>
          <dd>${formatBytes(v.row.usage.total)}</dd>
          <dt>Open connections</dt>
          <dd>${orUnknown(v.row.connections)}</dd>
          <dt>Last seen</dt>
          <dd>${formatTime(k.lastSeen)}</dd>
          <dt>Expires</dt>
          <dd>${formatTime(k.expiresAt)}</dd>
          <dt>Created</dt>
          <dd>${formatTime(k.createdAt)}</dd>
          <dt>Method, port</dt>
          <dd>${k.method}, ${k.port}</dd>
          <dt>Disguise</dt>
          <dd>${k.prefix === null ? 'off' : 'on'}</dd>
        </dl>
        ${usageChart(v.daily, 'chart')}
      </section>
      <section class="card" aria-labelledby="change-h">
        <h2 id="change-h">Change</h2>
        <form method="post" action="${keyPath(k.id, 'rename')}">
          ${csrf}
          <div class="row">
            <div class="field">
              <label for="key-name">Name</label>
              <input
                id="key-name"
                name="name"
                type="text"
                maxlength="100"
                value="${k.name}"
                autocomplete="off"
              />
            </div>
            <div class="field end"><button type="submit">Rename</button></div>
          </div>
        </form>
        <form method="post" action="${keyPath(k.id, 'limit')}">
          ${csrf}
          <div class="row">
            <div class="field">
              <label for="key-limit">Data limit</label>
              <input
                id="key-limit"
                name="limit"
                type="text"
                inputmode="decimal"
                placeholder="e.g. 20GB"
                value="${k.dataLimit ? sizeInput(k.dataLimit.bytes) : ''}"
              />
              <span class="hint"
                >${
                  k.dataLimit
                    ? 'Its own limit.'
                    : v.settings.defaultDataLimit
                      ? `Now the server's default: ${describeLimit(v.settings.defaultDataLimit)}.`
                      : 'None now.'
                }</span
              >
            </div>
            <div class="field">
              <label for="key-window">Limit counts</label>
              <select id="key-window" name="window">
                ${windowOptions(k.dataLimit?.window)}
              </select>
            </div>
          </div>
          <div class="actions">
            <button type="submit" name="action" value="set">Set limit</button>
            ${
              k.dataLimit
                ? html`<button type="submit" name="action" value="remove" class="secondary">
                    Remove limit
                  </button>`
                : ''
            }
          </div>
        </form>
        <hr />
        <form method="post" action="${keyPath(k.id, 'expiry')}">
          ${csrf}
          <div class="field">
            <label for="key-expires">Expires on</label>
            <input id="key-expires" name="expires" type="date" value="${dateInput(k.expiresAt)}" />
            <span class="hint">The key stops at 00:00 UTC that day.</span>
          </div>
          <div class="actions">
            <button type="submit" name="action" value="set">Set expiry</button>
            ${
              k.expiresAt !== null
                ? html`<button type="submit" name="action" value="remove" class="secondary">
                    Remove expiry
                  </button>`
                : ''
            }
          </div>
        </form>
        <hr />
        <form method="post" action="${keyPath(k.id, 'disguise')}">
          ${csrf}<input type="hidden" name="disguise" value="${k.prefix === null ? 'on' : 'off'}" />
          <p class="muted">
            First-packet disguise is ${k.prefix === null ? 'off' : 'on'}. Changing it changes the key's URI:
            hand out the new one.
          </p>
          <button type="submit" class="secondary">Turn disguise ${k.prefix === null ? 'on' : 'off'}</button>
        </form>
      </section>
      <section class="card" aria-labelledby="state-h">
        <h2 id="state-h">Pause or delete</h2>
        <p class="muted">
          A paused key stops working within seconds, open connections too; resuming brings it back.
        </p>
        <div class="actions">
          ${pauseForm(ctx, k, 'key')}
          <a class="button danger" href="${keyPath(k.id, 'delete')}">Delete…</a>
        </div>
      </section>`,
  );
}

export function deletePage(ctx: PageContext, k: AccessKey): string {
  return layout(
    `Delete ${keyLabel(k)}`,
    { ...ctx, nav: 'keys' },
    html`<section class="card">
      <h1>Delete “${keyLabel(k)}”?</h1>
      <p>
        The key stops working at once and cannot be brought back; its usage history goes with it. To stop it
        for a while, pause it instead.
      </p>
      <form method="post" action="${keyPath(k.id, 'delete')}">
        ${csrfField(ctx.csrf)}
        <div class="actions">
          <button type="submit" class="danger">Delete key</button>
          <a class="button secondary" href="${keyPath(k.id)}">Cancel</a>
        </div>
      </form>
    </section>`,
  );
}

// ---- settings

export function settingsPage(ctx: PageContext, s: ServerSettings): string {
  return layout(
    'Settings',
    { ...ctx, nav: 'settings' },
    html`<h1>Settings</h1>
      <section class="card">
        <form method="post" action="${ADMIN_BASE}/settings">
          ${csrfField(ctx.csrf)}
          <div class="field">
            <label for="set-name">Server name</label>
            <input id="set-name" name="name" type="text" maxlength="100" required value="${s.name}" />
          </div>
          <div class="field">
            <label for="set-hostname">Host name or IP address in keys</label>
            <input
              id="set-hostname"
              name="hostname"
              type="text"
              maxlength="255"
              required
              autocapitalize="off"
              spellcheck="false"
              value="${s.hostname}"
            />
            <span class="hint">Every key's URI and subscription uses it at once.</span>
          </div>
          <div class="field">
            <label for="set-port">Port for new keys</label>
            <input
              id="set-port"
              name="port"
              type="number"
              min="1"
              max="65535"
              required
              value="${s.portForNewKeys}"
            />
            <span class="hint">Keys created before keep their port.</span>
          </div>
          <div class="field">
            <label for="set-method">Method for new keys</label>
            <select id="set-method" name="method">
              ${methodOptions(s.defaultMethod)}
            </select>
          </div>
          <div class="row">
            <div class="field">
              <label for="set-limit">Default data limit</label>
              <input
                id="set-limit"
                name="limit"
                type="text"
                inputmode="decimal"
                placeholder="none"
                value="${s.defaultDataLimit ? sizeInput(s.defaultDataLimit.bytes) : ''}"
              />
              <span class="hint">For every key without a limit of its own. Empty: none.</span>
            </div>
            <div class="field">
              <label for="set-window">Limit counts</label>
              <select id="set-window" name="window">
                ${windowOptions(s.defaultDataLimit?.window)}
              </select>
            </div>
          </div>
          <div class="check">
            <input
              id="set-disguise"
              name="disguise"
              type="checkbox"
              value="on"
              ${s.defaultDisguise ? html`checked` : ''}
            />
            <label for="set-disguise">New keys get a first-packet disguise</label>
          </div>
          <button type="submit">Save settings</button>
        </form>
      </section>`,
  );
}
