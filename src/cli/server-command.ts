// `pigeon server`: quick mode (one key from the flags) or store mode (every key in the data
// directory, with the management API), and what each prints for a person.
import { existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createHmac, randomBytes } from 'node:crypto';
import { randomServicePort } from '../net/listen.js';
import { startMultiServer, startServer, type RunningServer } from '../server/index.js';
import { formatSsUri } from '../wire/sip002.js';
import { escapeSip003 } from '../wire/sip003.js';
import { formatTrojanUri, trojanPasswordHash } from '../wire/trojan.js';
import { selfSignedCertificate, startTrojanServer } from '../server/trojan.js';
import type { Address } from '../wire/socks-address.js';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import { disguisePrefix } from '../wire/first-packet.js';
import type { Log } from '../log.js';
import { openStore } from '../control/sqlite-store.js';
import { defaultDataDir } from '../control/paths.js';
import { StoreUserSource } from '../control/user-source.js';
import { PrometheusMetrics } from '../control/metrics.js';
import { createManagementApi } from '../control/api.js';
import { loadOrCreateCertificate } from '../control/tls.js';
import { accessUri } from '../control/share.js';
import { createAccessKey } from '../control/keys.js';
import { publicHostGuess } from '../net/public-host.js';
import { printShareable } from './output.js';

export const VERSION = '0.1.0';

export interface QuickOptions {
  listen: Address;
  method: MethodName;
  password: string;
  allowPrivate: boolean;
  publicHost?: string;
  qr: boolean;
  /** Print the URI with a first-packet disguise prefix (the default). */
  disguise: boolean;
  /** Carry TCP inside WebSocket on this path (v2ray-plugin's carrier, for CDNs); UDP stays plain. */
  wsPath?: string;
  /** The WebSocket's Host (the CDN's name); the public host by default. */
  wsHost?: string;
  /** PEM files: serve the WebSocket over TLS (without them plain, for a CDN that ends TLS). */
  tls?: { cert: string; key: string };
  log: Log;
}

/** Quick mode's disguise prefix: derived from the password (stable across restarts, unguessable). */
export function quickPrefix(method: MethodName, password: string): string {
  const seed = createHmac('sha256', password).update('pigeon first-packet disguise').digest();
  return disguisePrefix(seed, methodSpec(method).saltSize);
}

export async function runQuickServer(o: QuickOptions): Promise<RunningServer> {
  const running = await startServer({
    listen: o.listen,
    method: o.method,
    password: o.password,
    allowPrivate: o.allowPrivate,
    // Replays are refused across restarts on a fixed port (an ephemeral one is new after a restart).
    ...(o.listen.port ? { replayDir: join(defaultDataDir(), 'replay', `quick-${o.listen.port}`) } : {}),
    ...(o.wsPath ? { carrier: { kind: 'websocket' as const, path: o.wsPath, tls: o.tls } } : {}),
    log: o.log,
  });
  const host = o.publicHost ?? publicHostGuess(o.listen.host);
  const wsOptions = o.wsPath
    ? [...(o.tls ? ['tls'] : []), `host=${escapeSip003(o.wsHost ?? host)}`, `path=${escapeSip003(o.wsPath)}`]
    : [];
  const uri = formatSsUri({
    method: o.method,
    password: o.password,
    host,
    port: running.port,
    tag: 'Pigeon',
    ...(o.wsPath ? { plugin: { name: 'v2ray-plugin', options: wsOptions.join(';') } } : {}),
    // The disguise prefix comes from the password, so a restart prints the same URI. Inside a
    // WebSocket the first packet is the HTTP upgrade, so there is nothing to disguise.
    params: o.disguise && !o.wsPath ? { prefix: quickPrefix(o.method, o.password) } : {},
  });
  process.stdout.write(`Pigeon server listening on ${o.listen.host}:${running.port} (TCP and UDP)\n`);
  await printShareable(uri, { qr: o.qr, hostGuessed: !o.publicHost, allowPrivate: o.allowPrivate });
  return running;
}

export interface TrojanQuickOptions {
  listen: Address;
  password: string;
  allowPrivate: boolean;
  publicHost?: string;
  qr: boolean;
  /** PEM files of a real certificate; a self-signed one (pinned in the URI) otherwise. */
  tls?: { cert: string; key: string };
  /** Reverse-proxy the cover website to this URL; the built-in static site otherwise. */
  coverUrl?: string;
  log: Log;
}

/** Quick mode for Trojan: one password on one TLS port, everything else handed to the cover site. */
export async function runTrojanQuickServer(o: TrojanQuickOptions): Promise<{ close(): Promise<void> }> {
  const host = o.publicHost ?? publicHostGuess(o.listen.host);
  const self = o.tls ? undefined : await selfSignedCertificate([host]);
  const cert = o.tls ?? { cert: self!.cert, key: self!.key };
  const hash = trojanPasswordHash(o.password);
  const server = await startTrojanServer({
    host: o.listen.host,
    port: o.listen.port,
    cert: cert.cert,
    key: cert.key,
    users: { lookup: (h) => (h === hash ? { id: 'default' } : undefined) },
    cover: o.coverUrl ? { kind: 'proxy', url: o.coverUrl } : { kind: 'static' },
    allowPrivate: o.allowPrivate,
    log: o.log,
  });
  const params: Record<string, string> = {};
  const uri = formatTrojanUri({
    password: o.password,
    host,
    port: server.port,
    // A self-signed certificate: Pigeon's client pins it (pcs); apps without pinning skip the check.
    allowInsecure: !!self,
    pinnedCertSha256: self ? [self.sha256] : [],
    tag: 'Pigeon',
    params,
  });
  process.stdout.write(
    `Pigeon Trojan server listening on ${o.listen.host}:${server.port} (TLS; anything else gets the cover site)\n`,
  );
  await printShareable(uri, { qr: o.qr, hostGuessed: !o.publicHost, allowPrivate: o.allowPrivate });
  return server;
}

export interface StoreOptions {
  dataDir?: string;
  bind: string;
  apiPort?: number;
  allowPrivate: boolean;
  publicHost?: string;
  qr: boolean;
  log: Log;
}

interface ApiConfig {
  port: number;
  secret: string;
}

/** The API's port and secret, created on first start and kept beside the database. */
function loadApiConfig(dir: string, wantPort: number | undefined): ApiConfig {
  const file = join(dir, 'api.json');
  let cfg: ApiConfig | undefined;
  if (existsSync(file)) {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<ApiConfig>;
    if (typeof v.secret === 'string' && v.secret.length >= 16 && Number.isInteger(v.port))
      cfg = v as ApiConfig;
  }
  cfg ??= { port: randomServicePort(), secret: randomBytes(16).toString('base64url') };
  if (wantPort !== undefined) cfg.port = wantPort;
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  renameSync(tmp, file);
  return cfg;
}

export async function runStoreServer(o: StoreOptions): Promise<{ close(): Promise<void> }> {
  const dir = o.dataDir ?? defaultDataDir();
  const startedAt = Date.now();
  const store = openStore(dir);
  try {
    let settings = store.settings();
    if (o.publicHost && o.publicHost !== settings.hostname)
      settings = store.updateSettings({ hostname: o.publicHost });
    if (!settings.hostname) settings = store.updateSettings({ hostname: publicHostGuess(o.bind) });
    let firstKey;
    if (store.listKeys().length === 0) {
      firstKey = createAccessKey(store, { name: 'First key' });
    }
    const metrics = new PrometheusMetrics();
    const users = new StoreUserSource(store);
    const server = await startMultiServer({
      host: o.bind,
      users,
      events: metrics,
      allowPrivate: o.allowPrivate,
      replayDir: join(dir, 'replay'),
      log: o.log,
    });
    const api = loadApiConfig(dir, o.apiPort);
    const cert = await loadOrCreateCertificate(dir, settings.hostname);
    const publicUrl = `https://${hostForUrl(settings.hostname)}:${api.port}`;
    const app = await createManagementApi({
      store,
      metrics,
      secret: api.secret,
      tls: { key: cert.key, cert: cert.cert },
      version: VERSION,
      publicUrl,
      // The admin page's overview: uptime, which key ports listen, open connections.
      admin: {
        startedAt,
        listeningPorts: () => server.ports(),
        activeConnections: (id) => server.activeConnections(id),
      },
    });
    await app.listen({ host: o.bind, port: api.port });

    const out = process.stdout;
    out.write(
      `Pigeon server: ${store.listKeys().length} access key(s) on port(s) ${server.ports().join(', ')} (TCP and UDP); data in ${dir}\n`,
    );
    out.write(`Management API: ${publicUrl}/${api.secret}\n`);
    out.write(`API certificate SHA-256: ${cert.sha256}\n`);
    out.write(`${JSON.stringify({ apiUrl: `${publicUrl}/${api.secret}`, certSha256: cert.sha256 })}\n`);
    out.write(
      `Admin page: ${publicUrl}/admin (log in with the secret, or open ${publicUrl}/${api.secret}/admin)\n`,
    );
    out.write(
      'Manage keys with `pigeon key add|list|show|pause|resume|remove` (add --data DIR, or --api URL --cert-sha256 FP from elsewhere).\n',
    );
    const shown = firstKey ?? store.listKeys()[0];
    if (shown) {
      if (firstKey) out.write('Created the first access key.\n');
      await printShareable(accessUri(shown, store.settings()), {
        qr: o.qr,
        hostGuessed: !o.publicHost,
        allowPrivate: o.allowPrivate,
      });
    }
    return {
      close: async () => {
        await app.close();
        await server.close();
        store.close();
      },
    };
  } catch (e) {
    store.close();
    throw e;
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
