// `pigeon lab` (the censor lab: docs/lab.md) and `pigeon probe HOST:PORT` (the lab's active prober
// against any live server). Registered on the program by addLabCommands.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { parseHostPort, type Address } from '../wire/socks-address.js';
import { configsByName, formatLabReport, labUnavailable, LAB_CONFIGS, runLab } from '../lab/run.js';
import { formatProbeReport, probeServer } from '../lab/prober.js';
import { teardownAll } from '../lab/topology.js';

/** Prints one line and ends with exit code 2 (main treats a CommanderError as already reported). */
function usageError(message: string): never {
  process.stderr.write(`pigeon: ${message}\n`);
  throw new CommanderError(2, 'pigeon.usage', message);
}

function count(what: string, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > max)
      throw new InvalidArgumentError(`${what}: expected a whole number 1..${max}, got "${text}"`);
    return n;
  };
}

function seconds(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > 600)
    throw new InvalidArgumentError(`expected seconds in (0, 600], got "${text}"`);
  return n;
}

function target(text: string): Address {
  try {
    const a = parseHostPort(text);
    if (!a.port) throw new Error('the port must not be 0');
    return a;
  } catch (e) {
    throw new InvalidArgumentError(`HOST:PORT: ${(e as Error).message}`);
  }
}

/** A recorded first packet: raw bytes, or hex text (whitespace ignored). */
export function readRecordedPacket(file: string): Buffer {
  const raw = readFileSync(file);
  const text = raw.toString('latin1').replace(/\s+/g, '');
  if (text.length >= 2 && text.length % 2 === 0 && /^[0-9a-fA-F]+$/.test(text))
    return Buffer.from(text, 'hex');
  return raw;
}

export function addLabCommands(program: Command): void {
  program
    .command('lab')
    .description(
      'censor lab (root): client, censor, server and destination hosts in network namespaces; real traffic through each configuration; per censor rule, whether it was detected (docs/lab.md)',
    )
    .option(
      '--config <NAME>',
      `configuration(s) to test, comma-separated or repeated: ${LAB_CONFIGS.map((c) => c.name).join(', ')} or all`,
      (t: string, prev: string[] = []) => [...prev, ...t.split(',').filter(Boolean)],
    )
    .option(
      '--connections <N>',
      'HTTP connections through the tunnel per configuration (default 20)',
      count('--connections', 500),
    )
    .option('--probe-wait <S>', 'seconds each probe waits for the server to react (default 3)', seconds)
    .option('--json', 'print the report as JSON', false)
    .option('--keep', 'keep the working directory with the captures', false)
    .action(
      async (o: {
        config?: string[];
        connections?: number;
        probeWait?: number;
        json: boolean;
        keep: boolean;
      }) => {
        const why = labUnavailable();
        if (why) usageError(why);
        let configs: string[];
        try {
          configs = configsByName(o.config ?? ['all']).map((c) => c.name);
        } catch (e) {
          usageError((e as Error).message);
        }
        // Ctrl-C: remove the namespaces (and the processes in them) before leaving.
        const abort = (): void => {
          teardownAll();
          process.exit(130);
        };
        process.once('SIGINT', abort);
        process.once('SIGTERM', abort);
        try {
          const report = await runLab({
            configs,
            connections: o.connections,
            probeWaitMs: o.probeWait !== undefined ? o.probeWait * 1000 : undefined,
            keep: o.keep,
            progress: (line) => void process.stderr.write(`pigeon lab: ${line}\n`),
          });
          process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatLabReport(report));
        } catch (e) {
          process.stderr.write(`pigeon: lab failed: ${(e as Error).message}\n`);
          process.exitCode = 1;
        } finally {
          process.off('SIGINT', abort);
          process.off('SIGTERM', abort);
        }
      },
    );

  program
    .command('probe')
    .argument('<HOST:PORT>', 'the server to probe', target)
    .description(
      'active-probe a server as the firewall does (random payloads of the published lengths; replays with --replay) and tell whether its reactions give it away; exit code 1 when they do',
    )
    .option(
      '--timeout <S>',
      'seconds each probe waits for a reaction before sending its FIN (default 10)',
      seconds,
    )
    .option(
      '--replay <FILE>',
      'a recorded first packet (raw bytes or hex) to replay, identical and with changed bytes (repeatable)',
      (t: string, prev: string[] = []) => [...prev, t],
    )
    .option('--json', 'print the report as JSON', false)
    .action(async (to: Address, o: { timeout?: number; replay?: string[]; json: boolean }) => {
      let recorded: Buffer[];
      try {
        recorded = (o.replay ?? []).map(readRecordedPacket);
      } catch (e) {
        usageError(`--replay: ${(e as Error).message}`);
      }
      const report = await probeServer({
        host: to.host,
        port: to.port,
        waitMs: (o.timeout ?? 10) * 1000,
        recorded,
      });
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatProbeReport(report));
      if (!report.indistinguishable) process.exitCode = 1;
    });
}
