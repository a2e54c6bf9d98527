// The `pigeon` command: argument parsing and human-friendly output over the server and client.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { startServer } from '../server/index.js';
import { startClient } from '../client/index.js';
import { METHODS, methodSpec, normalizeMethodName, type MethodName } from '../wire/shadowsocks-methods.js';
import { parseHostPort, makeAddress, type Address } from '../wire/socks-address.js';
import { formatSsUri, parseSsUri, type SsUri } from '../wire/sip002.js';
import { masterKey, KeyError } from '../crypto/kdf.js';
import { WireError } from '../wire/errors.js';
import { createLog } from '../log.js';
import { loadQuickServer, publicHostGuess } from './quick-server.js';
import { printShareable } from './output.js';

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

function ssUri(text: string): SsUri {
  try {
    return parseSsUri(text);
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
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'EADDRINUSE')
    return new UserError(`cannot listen: address already in use (${err.message})`, 1);
  if (err.code === 'EACCES') return new UserError(`cannot listen: permission denied (${err.message})`, 1);
  if (err.code === 'EADDRNOTAVAIL')
    return new UserError(`cannot listen: address not available on this machine`, 1);
  if (e instanceof KeyError || e instanceof WireError) return new UserError(e.message);
  return new UserError(`unexpected error: ${err.message ?? String(e)}`, 1);
}

export function buildProgram(): Command {
  const program = new Command('pigeon')
    .description('Pigeon: a messaging VPN. Shadowsocks-compatible server and client.')
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('server')
    .description(
      'run a Shadowsocks server (TCP and UDP on one port); with no options, uses a saved key and port, creating them on first start',
    )
    .option('--listen <HOST:PORT>', 'address to listen on', hostPort('--listen'))
    .addOption(new Option('--method <METHOD>', `cipher: ${METHODS.join(', ')}`).argParser(method))
    .option('--password <SECRET>', 'password (for 2022 methods: the base64 PSK)')
    .option(
      '--allow-private',
      'allow destinations on loopback, private, link-local and metadata addresses',
      false,
    )
    .option(
      '--public-host <HOST>',
      'host name or IP that clients use to reach this server (for the printed URI)',
    )
    .option('--no-qr', 'do not print a QR code')
    .action(async (o: ServerOpts) => {
      if (!o.method !== !o.password) throw new UserError('--method and --password go together');
      let listen: Address;
      let m: MethodName;
      let password: string;
      if (o.method && o.password) {
        listen = o.listen ?? makeAddress('0.0.0.0', 8388);
        m = o.method;
        password = o.password;
        try {
          masterKey(methodSpec(m), password);
        } catch (e) {
          throw new UserError(`--password: ${(e as Error).message}`);
        }
      } else {
        const saved = loadQuickServer();
        listen = o.listen ?? makeAddress('0.0.0.0', saved.port);
        m = saved.method;
        password = saved.password;
      }
      const log = createLog();
      let running;
      try {
        running = await startServer({ listen, method: m, password, allowPrivate: o.allowPrivate, log });
      } catch (e) {
        throw runtimeError(e);
      }
      const host = o.publicHost ?? publicHostGuess(listen.host);
      const uri = formatSsUri({ method: m, password, host, port: running.port, tag: 'Pigeon', params: {} });
      await printShareable(uri, {
        qr: o.qr,
        listen: `${listen.host}:${running.port}`,
        hostGuessed: !o.publicHost,
        allowPrivate: o.allowPrivate,
      });
      onShutdown(running.close);
    });

  program
    .command('client')
    .description('run a local SOCKS5 + HTTP proxy that tunnels through a Shadowsocks server')
    .requiredOption('--server <URI>', 'the server, as an ss:// URI', ssUri)
    .option(
      '--listen <HOST:PORT>',
      'local proxy port (SOCKS5 and HTTP)',
      hostPort('--listen'),
      parseHostPort('127.0.0.1:1080'),
    )
    .option(
      '--forward <LHOST:LPORT=DHOST:DPORT>',
      'fixed TCP+UDP forward through the server (repeatable)',
      forwardSpec,
      [],
    )
    .option(
      '--auth <USER:PASSWORD>',
      'require these credentials from local apps (SOCKS5 and HTTP)',
      credentials,
    )
    .action(async (o: ClientOpts) => {
      const log = createLog();
      let running;
      try {
        running = await startClient({
          server: o.server,
          listen: o.listen,
          forwards: o.forward,
          auth: o.auth,
          log,
        });
      } catch (e) {
        throw runtimeError(e);
      }
      const where = `${o.listen.host}:${running.port}`;
      process.stdout.write(
        `pigeon client: SOCKS5 and HTTP proxy on ${where}, via ${o.server.host}:${o.server.port} (${o.server.method})\n`,
      );
      o.forward.forEach((f, i) =>
        process.stdout.write(
          `pigeon client: forwarding ${f.listen.host}:${running.forwardPorts[i]} (tcp+udp) to ${f.target.host}:${f.target.port}\n`,
        ),
      );
      onShutdown(running.close);
    });

  return program;
}

interface ServerOpts {
  listen?: Address;
  method?: MethodName;
  password?: string;
  allowPrivate: boolean;
  publicHost?: string;
  qr: boolean;
}

interface ClientOpts {
  server: SsUri;
  listen: Address;
  forward: { listen: Address; target: Address }[];
  auth?: { username: string; password: string };
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
    const u = e instanceof UserError ? e : runtimeError(e);
    process.stderr.write(`pigeon: ${u.message}\n`);
    return u.exitCode;
  }
}

const code = await main(process.argv);
if (code !== 0) process.exit(code);
