// The `pigeon` command: argument parsing and error reporting over the server, client and key commands.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ClientConfigError } from '../client/index.js';
import { ConfigError } from './client-config.js';
import { clientPlan, runClient, DEFAULT_DNS_LISTEN } from './client-command.js';
import { METHODS, methodSpec, normalizeMethodName, type MethodName } from '../wire/shadowsocks-methods.js';
import { parseHostPort, makeAddress, type Address } from '../wire/socks-address.js';
import { parseServerUri, type ServerUri } from '../client/server-uri.js';
import { masterKey, KeyError } from '../crypto/kdf.js';
import { WireError } from '../wire/errors.js';
import { createLog } from '../log.js';
import { runQuickServer, runStoreServer, runTrojanQuickServer, VERSION } from './server-command.js';
import { readFileSync } from 'node:fs';
import {
  LocalKeys,
  NotFound,
  RemoteKeys,
  keyTable,
  parseBytes,
  parseExpiry,
  status,
  formatBytes,
  type KeyBackend,
} from './key-commands.js';
import { ApiError } from './api-client.js';
import { printShareable } from './output.js';
import { addLabCommands } from './lab-command.js';

/** An error meant for a person: printed as one line, exit code 2 (usage) or 1 (runtime). */
class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
  }
}

function hostPort(what: string) {
  return (text: string): Address => {
    try {
      return parseHostPort(text);
    } catch (e) {
      throw new InvalidArgumentError(`${what}: ${(e as Error).message}`);
    }
  };
}

function method(text: string): MethodName {
  const m = normalizeMethodName(text);
  if (!m) throw new InvalidArgumentError(`unknown method "${text}"; choose one of: ${METHODS.join(', ')}`);
  return m;
}

function port(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535)
    throw new InvalidArgumentError(`expected a port 1..65535, got "${text}"`);
  return n;
}

function forwardSpec(text: string, prev: { listen: Address; target: Address }[] = []) {
  const i = text.indexOf('=');
  if (i < 0) throw new InvalidArgumentError(`expected LHOST:LPORT=DHOST:DPORT, got "${text}"`);
  const listen = hostPort('local side')(text.slice(0, i));
  const target = hostPort('destination')(text.slice(i + 1));
  return [...prev, { listen, target }];
}

function credentials(text: string) {
  const i = text.indexOf(':');
  if (i <= 0) throw new InvalidArgumentError('expected USER:PASSWORD');
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

function serverUri(text: string): ServerUri {
  try {
    return parseServerUri(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function onShutdown(close: () => Promise<void>): void {
  let closing = false;
  const stop = (): void => {
    if (closing) process.exit(1);
    closing = true;
    const force = setTimeout(() => process.exit(0), 3000);
    force.unref();
    void close().then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

function runtimeError(e: unknown): UserError {
  if (e instanceof UserError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EADDRINUSE')
    return new UserError(`cannot listen: address already in use (${err.message})`, 1);
  if (err.code === 'EACCES') return new UserError(`cannot listen: permission denied (${err.message})`, 1);
  if (err.code === 'EADDRNOTAVAIL')
    return new UserError('cannot listen: address not available on this machine', 1);
  if (e instanceof KeyError || e instanceof WireError) return new UserError(e.message);
  if (e instanceof NotFound) return new UserError(e.message, 1);
  if (e instanceof ApiError) return new UserError(e.message, 1);
  if (err.name === 'StoreError') return new UserError(err.message, 1);
  return new UserError(`unexpected error: ${err.message ?? String(e)}`, 1);
}

interface ServerOpts {
  listen?: Address;
  method?: MethodName;
  password?: string;
  allowPrivate: boolean;
  publicHost?: string;
  qr: boolean;
  disguise: boolean;
  data?: string;
  apiPort?: number;
  trojan?: boolean;
  ws?: string;
  wsHost?: string;
  tlsCert?: string;
  tlsKey?: string;
  cover?: string;
}

/** --tls-cert and --tls-key, read; undefined when neither is given. */
function tlsFiles(o: ServerOpts): { cert: string; key: string } | undefined {
  if (!o.tlsCert !== !o.tlsKey) throw new UserError('--tls-cert and --tls-key go together');
  if (!o.tlsCert || !o.tlsKey) return undefined;
  const read = (flag: string, file: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`${flag}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  return { cert: read('--tls-cert', o.tlsCert), key: read('--tls-key', o.tlsKey) };
}

interface ClientOpts {
  server?: ServerUri[];
  preset?: string;
  rules?: string;
  dns?: Address;
  config?: string;
  listen?: Address;
  forward?: { listen: Address; target: Address }[];
  auth?: { username: string; password: string };
  control?: Address;
  tun?: boolean;
  tunRoutes?: string;
}

interface KeyOpts {
  data?: string;
  api?: string;
  certSha256?: string;
}

function backend(o: KeyOpts): KeyBackend {
  if (o.api) {
    if (!/^https:\/\//.test(o.api))
      throw new UserError('--api must be the https:// URL that `pigeon server` printed');
    return new RemoteKeys({ url: o.api, certSha256: o.certSha256 });
  }
  return new LocalKeys(o.data);
}

async function withKeys<T>(cmd: Command, fn: (b: KeyBackend) => Promise<T>): Promise<T> {
  const b = backend(cmd.optsWithGlobals<KeyOpts>());
  try {
    return await fn(b);
  } finally {
    b.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('pigeon')
    .description('Pigeon: a messaging VPN. Shadowsocks-compatible server and client.')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('server')
    .description(
      'run a Shadowsocks server. With --method and --password: one key on --listen (quick mode). Otherwise: every key in the data directory, with the management API; the first start creates a key.',
    )
    .option(
      '--listen <HOST:PORT>',
      'quick mode: address to listen on (default 0.0.0.0:8388); store mode: HOST is the bind address',
      hostPort('--listen'),
    )
    .addOption(new Option('--method <METHOD>', `quick mode cipher: ${METHODS.join(', ')}`).argParser(method))
    .option('--password <SECRET>', 'quick mode password (for 2022 methods: the base64 PSK)')
    .option('--data <DIR>', 'store mode: data directory (default: $PIGEON_DATA or ~/.local/share/pigeon)')
    .option('--api-port <PORT>', 'store mode: management API port (default: chosen on first start)', port)
    .option(
      '--allow-private',
      'allow destinations on loopback, private, link-local and metadata addresses',
      false,
    )
    .option(
      '--public-host <HOST>',
      'host name or IP that clients use to reach this server (for the printed URIs)',
    )
    .option('--no-qr', 'do not print a QR code')
    .option('--no-disguise', 'quick mode: print the key without its first-packet disguise (prefix)')
    .option('--trojan', 'quick mode: Trojan over TLS with --password (anything else gets a cover website)')
    .option(
      '--cover <URL>',
      'with --trojan: reverse-proxy the cover website to this URL (default: a built-in site)',
    )
    .option('--ws <PATH>', 'quick mode: carry TCP inside WebSocket on this path (v2ray-plugin, for CDNs)')
    .option('--ws-host <NAME>', 'with --ws: the Host name clients put in the upgrade (the CDN name)')
    .option('--tls-cert <FILE>', 'PEM certificate for --trojan or --ws (default: self-signed for --trojan)')
    .option('--tls-key <FILE>', 'PEM private key that goes with --tls-cert')
    .action(async (o: ServerOpts) => {
      if (o.trojan) {
        if (!o.password) throw new UserError('--trojan needs --password');
        if (o.method || o.ws || o.data)
          throw new UserError('--trojan goes with --password alone, not --method, --ws or --data');
      } else if (!o.method !== !o.password) throw new UserError('--method and --password go together');
      if (o.cover && !o.trojan) throw new UserError('--cover goes with --trojan');
      if ((o.ws || o.wsHost) && !o.method)
        throw new UserError('--ws is for quick mode: give --method and --password');
      if (o.wsHost && !o.ws) throw new UserError('--ws-host goes with --ws');
      const tls = tlsFiles(o);
      if (tls && !o.trojan && !o.ws) throw new UserError('--tls-cert and --tls-key go with --trojan or --ws');
      if (o.ws && !o.ws.startsWith('/')) throw new UserError('--ws: the path starts with "/"');
      const log = createLog();
      try {
        if (o.trojan && o.password) {
          const running = await runTrojanQuickServer({
            listen: o.listen ?? makeAddress('0.0.0.0', 443),
            password: o.password,
            allowPrivate: o.allowPrivate,
            publicHost: o.publicHost,
            qr: o.qr,
            tls,
            coverUrl: o.cover,
            log,
          });
          onShutdown(running.close);
        } else if (o.method && o.password) {
          try {
            masterKey(methodSpec(o.method), o.password);
          } catch (e) {
            throw new UserError(`--password: ${(e as Error).message}`);
          }
          if (o.data)
            throw new UserError('--data is for store mode; drop --method and --password to serve the store');
          const running = await runQuickServer({
            listen: o.listen ?? makeAddress('0.0.0.0', 8388),
            method: o.method,
            password: o.password,
            allowPrivate: o.allowPrivate,
            publicHost: o.publicHost,
            qr: o.qr,
            disguise: o.disguise,
            wsPath: o.ws,
            wsHost: o.wsHost,
            tls,
            log,
          });
          onShutdown(running.close);
        } else {
          const running = await runStoreServer({
            dataDir: o.data,
            bind: o.listen?.host ?? '0.0.0.0',
            apiPort: o.apiPort,
            allowPrivate: o.allowPrivate,
            publicHost: o.publicHost,
            qr: o.qr,
            log,
          });
          onShutdown(running.close);
        }
      } catch (e) {
        throw runtimeError(e);
      }
    });

  program
    .command('client')
    .description('run a local SOCKS5 + HTTP proxy and DNS that route messaging apps through the tunnel')
    .option(
      '--server <URI>',
      'a server, as an ss:// URI (repeat for a fallback group)',
      (t: string, prev: ServerUri[] = []) => [...prev, serverUri(t)],
    )
    .option('--preset <NAME>', 'messaging (default), global, bypass-china or none')
    .option('--rules <FILE>', 'rules file, one rule a line (TYPE,VALUE,TARGET), before the preset')
    .option(
      '--dns <HOST:PORT>',
      `local DNS listener, UDP and TCP (default ${DEFAULT_DNS_LISTEN})`,
      hostPort('--dns'),
    )
    .option('--config <FILE>', 'YAML config: groups, subscriptions, rules, DNS (docs/client.md)')
    .option(
      '--listen <HOST:PORT>',
      'local proxy port, SOCKS5 and HTTP (default 127.0.0.1:1080)',
      hostPort('--listen'),
    )
    .option(
      '--forward <LHOST:LPORT=DHOST:DPORT>',
      'fixed TCP+UDP forward through the server (repeatable)',
      forwardSpec,
    )
    .option(
      '--auth <USER:PASSWORD>',
      'require these credentials from local apps (SOCKS5 and HTTP)',
      credentials,
    )
    .option(
      '--control <HOST:PORT>',
      'control API (connections, groups) on this address (default 127.0.0.1, any port)',
      hostPort('--control'),
    )
    .option('--tun', 'full-VPN mode (Linux, root): route every app through a TUN device (docs/tun.md)')
    .option(
      '--tun-routes <WHAT>',
      'with --tun: all (default) or preset (the ranges the rules tunnel, and DNS)',
    )
    .action(async (o: ClientOpts) => {
      if (!o.server?.length && !o.config) throw new UserError('give --server ss://… (or --config FILE)');
      if (o.tunRoutes !== undefined && !o.tun) throw new UserError('--tun-routes goes with --tun');
      if (o.tunRoutes !== undefined && o.tunRoutes !== 'all' && o.tunRoutes !== 'preset')
        throw new UserError(`--tun-routes: "${o.tunRoutes}" is not all or preset`);
      if (o.tun && process.getuid?.() !== 0)
        throw new UserError('--tun needs root (it creates a network device and routes): run it with sudo', 1);
      let plan;
      try {
        plan = clientPlan({
          config: o.config,
          server: o.server,
          preset: o.preset,
          rules: o.rules,
          dns: o.dns,
          listen: o.listen,
          auth: o.auth,
          forward: o.forward,
          control: o.control,
          tun: o.tun ? { routes: o.tunRoutes === 'preset' ? 'preset' : 'all' } : undefined,
        });
      } catch (e) {
        if (e instanceof ConfigError)
          throw new UserError(`invalid client configuration:\n${e.problems.join('\n')}`);
        throw e;
      }
      const log = createLog();
      let running;
      try {
        running = await runClient(plan, log, process.stdout);
      } catch (e) {
        if (e instanceof ClientConfigError)
          throw new UserError(`invalid client configuration:\n${e.message}`);
        if ((e as Error).name === 'TunError') throw new UserError((e as Error).message, 1);
        throw runtimeError(e);
      }
      onShutdown(running.close);
    });

  const key = program
    .command('key')
    .description('manage access keys: in the local store (--data) or on a remote server (--api)')
    .option('--data <DIR>', 'data directory of the store (default: $PIGEON_DATA or ~/.local/share/pigeon)')
    .option('--api <URL>', 'management API URL of a remote server, as `pigeon server` printed it')
    .option('--cert-sha256 <HEX>', "the remote API certificate's SHA-256, as `pigeon server` printed it");

  key
    .command('add')
    .argument('<NAME>', 'a name for the key, e.g. who it is for')
    .description('create a key and print its ss:// URI')
    .addOption(new Option('--method <METHOD>', `cipher (default: the server's default)`).argParser(method))
    .option('--limit <SIZE>', 'data limit per rolling 30 days, e.g. 10GB', parseBytes)
    .option('--limit-total', 'make --limit a total over the key’s life instead of per 30 days', false)
    .option('--expires <WHEN>', 'expiry: a duration (30d, 12h, 2w) or a date (2027-01-31)', (t: string) =>
      parseExpiry(t),
    )
    .option('--no-disguise', 'no first-packet disguise (prefix) in this key, whatever the server default')
    .action(
      async (
        name: string,
        o: { method?: MethodName; limit?: number; limitTotal: boolean; expires?: number; disguise: boolean },
        cmd: Command,
      ) => {
        try {
          const k = await withKeys(cmd, (b) =>
            b.add(name, {
              method: o.method,
              limit:
                o.limit !== undefined
                  ? { bytes: o.limit, window: o.limitTotal ? 'total' : 'rolling-30d' }
                  : undefined,
              expiresAt: o.expires,
              ...(o.disguise ? {} : { disguise: false }),
            }),
          );
          process.stdout.write(`Created key ${k.id} (${k.name}, ${k.method}).\n${k.accessUrl}\n`);
        } catch (e) {
          throw runtimeError(e);
        }
      },
    );

  key
    .command('list')
    .description('list keys with their status and usage')
    .action(async (_o: unknown, cmd: Command) => {
      try {
        const keys = await withKeys(cmd, (b) => b.list());
        process.stdout.write(
          keys.length ? keyTable(keys) : 'No access keys yet: `pigeon key add NAME` creates one.\n',
        );
      } catch (e) {
        throw runtimeError(e);
      }
    });

  key
    .command('show')
    .argument('<ID>')
    .description("print a key's URI and QR code")
    .option('--no-qr', 'do not print a QR code')
    .action(async (id: string, o: { qr: boolean }, cmd: Command) => {
      try {
        const k = await withKeys(cmd, (b) => b.get(id));
        process.stdout.write(
          `Key ${k.id}: ${k.name} (${k.method}), ${status(k)}, used ${formatBytes(k.usage.last30d)} in 30 days, ${formatBytes(k.usage.total)} in all\n`,
        );
        await printShareable(k.accessUrl, { qr: o.qr });
      } catch (e) {
        throw runtimeError(e);
      }
    });

  for (const [name, paused] of [
    ['pause', true],
    ['resume', false],
  ] as const) {
    key
      .command(name)
      .argument('<ID>')
      .description(paused ? 'stop a key from working until resumed' : 'let a paused key work again')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        try {
          await withKeys(cmd, (b) => b.setPaused(id, paused));
          process.stdout.write(`Key ${id} ${paused ? 'paused' : 'resumed'}.\n`);
        } catch (e) {
          throw runtimeError(e);
        }
      });
  }

  key
    .command('remove')
    .argument('<ID>')
    .description('delete a key; its URI stops working')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      try {
        await withKeys(cmd, (b) => b.remove(id));
        process.stdout.write(`Key ${id} removed.\n`);
      } catch (e) {
        throw runtimeError(e);
      }
    });

  addLabCommands(program);

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed the message (or the help/version text)
      return e.exitCode === 0 ? 0 : 2;
    }
    const u = runtimeError(e);
    process.stderr.write(`pigeon: ${u.message}\n`);
    return u.exitCode;
  }
}

const code = await main(process.argv);
if (code !== 0) process.exit(code);
