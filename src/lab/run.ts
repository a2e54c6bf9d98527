// `pigeon lab`: builds the four hosts (topology.ts), and for each configuration starts a real
// `pigeon server` on the server host and a real `pigeon client` on the client host, pushes traffic
// through them (hosts.ts traffic) while the censor captures the client's link, applies the passive
// rules to the capture (censor.ts), probes the server with the published probe set and replays of the
// recorded first flights (prober.ts), and reports each rule's verdict with its numbers. A TLS server
// with a cover site (Trojan) is probed side by side with an ordinary HTTPS server (hosts.ts baseline)
// on the server host, and must react to each probe as it does.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { generate } from 'selfsigned';
import type { MethodName } from '../wire/shadowsocks-methods.js';
import {
  analyseCapture,
  startObserver,
  type CensorReport,
  type RecordedTlsFlight,
  type Verdict,
} from './censor.js';
import type { ProbeReport } from './prober.js';
import { have, nodeModuleCommand, startIn, type LabProc } from './proc.js';
import {
  CENSOR_CLIENT_IFACE,
  cleanLeftovers,
  createTopology,
  LAB_ADDRESSES as A,
  type Topology,
} from './topology.js';
import type { BaselineConfig, DestConfig, ProbeConfig, TrafficConfig, TrafficResult } from './hosts.js';

export interface LabConfigSpec {
  name: string;
  /** What `pigeon server` runs: Shadowsocks (`--method`), or Trojan over TLS (`--trojan`). */
  carrier: 'shadowsocks' | 'trojan';
  /** Shadowsocks only. */
  method?: MethodName;
  /** The first-packet disguise (a `prefix=` in the ss:// key); Shadowsocks only. */
  disguise: boolean;
  what: string;
}

export const LAB_CONFIGS: LabConfigSpec[] = [
  {
    name: 'plain-aead',
    carrier: 'shadowsocks',
    method: 'chacha20-ietf-poly1305',
    disguise: false,
    what: 'SIP004 AEAD without the disguise (the sanity check: the fully-encrypted rule must flag it)',
  },
  {
    name: 'disguised-aead',
    carrier: 'shadowsocks',
    method: 'chacha20-ietf-poly1305',
    disguise: true,
    what: 'SIP004 AEAD with the first-packet disguise (the default key)',
  },
  {
    name: 'disguised-2022',
    carrier: 'shadowsocks',
    method: '2022-blake3-aes-128-gcm',
    disguise: true,
    what: 'SIP022 with the first-packet disguise',
  },
  {
    name: 'trojan',
    carrier: 'trojan',
    disguise: false,
    what: 'Trojan over TLS (self-signed, pinned), the built-in cover site for everything else',
  },
];

export const BLOCKED_NAME = 'web.telegram.org';
export const HOME_NAME = 'www.baidu.com';
const SERVER_PORT = 8388;
/** Trojan's port, as an HTTPS site's; the baseline HTTPS server listens on BASELINE_PORT. */
const TROJAN_PORT = 443;
const BASELINE_PORT = 8443;
const SOCKS_PORT = 1080;
const DNS_PORT = 5353;
const START_TIMEOUT_MS = 20_000;

export interface LabOptions {
  configs?: string[];
  /** Plain HTTP connections through the tunnel per configuration. */
  connections?: number;
  /** HTTPS connections through the tunnel per configuration (the TLS-in-TLS pattern). */
  httpsConnections?: number;
  /** How long each probe waits for a reaction before the prober sends its FIN. */
  probeWaitMs?: number;
  /** Keep the working directory (captures, configs) and name it in the report. */
  keep?: boolean;
  /** Progress lines (to stderr in the CLI). */
  progress?: (line: string) => void;
}

export interface ConfigReport {
  config: string;
  carrier: LabConfigSpec['carrier'];
  method?: MethodName;
  disguise: boolean;
  /** The prefix parameter of the key the server printed, if any. */
  prefix?: string;
  traffic: TrafficResult;
  censor: Omit<CensorReport, 'recordedFlights' | 'recordedTls'>;
  prober: ProbeReport & { replaysReachingDestination: number };
  rules: { rule: string; verdict: Verdict; numbers: string }[];
  durationMs: number;
}

export interface LabReport {
  configs: ConfigReport[];
  connections: number;
  httpsConnections: number;
  probeWaitMs: number;
  durationMs: number;
  /** The working directory, when kept (--keep): each configuration's censor.pcap is there. */
  dir?: string;
}

/** Why the lab cannot run here (not root, a program missing), or undefined. */
export function labUnavailable(): string | undefined {
  if (process.getuid?.() !== 0)
    return 'the lab needs root (it creates network namespaces and captures packets); run it with sudo';
  for (const cmd of ['ip', 'tcpdump'])
    if (!have(cmd))
      return `the lab needs the "${cmd}" program (Debian: apt-get install ${cmd === 'ip' ? 'iproute2' : cmd})`;
  return undefined;
}

export function configsByName(names: string[]): LabConfigSpec[] {
  const all = names.includes('all') ? LAB_CONFIGS.map((c) => c.name) : names;
  return all.map((n) => {
    const c = LAB_CONFIGS.find((x) => x.name === n);
    if (!c)
      throw new Error(
        `unknown configuration "${n}"; choose from: ${LAB_CONFIGS.map((x) => x.name).join(', ')}, all`,
      );
    return c;
  });
}

const pigeon = nodeModuleCommand('cli/main.js');
const hosts = nodeModuleCommand('lab/hosts.js');

/** The baseline HTTPS server's own self-signed certificate, for the server's address. */
async function baselineCertificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const pems = await generate([{ name: 'commonName', value: A.server }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: A.server }] }],
  });
  const certFile = join(dir, 'baseline-cert.pem');
  const keyFile = join(dir, 'baseline-key.pem');
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  return { certFile, keyFile };
}

/**
 * The flights the prober replays to a TLS server: a full handshake's ClientHello alone (what the
 * firewall records as a first packet), the same with the client's second flight (Finished and the
 * encrypted Trojan header), and a resumed connection's with its second flight when there is one.
 */
function tlsReplays(rec: RecordedTlsFlight[]): { bytes: Buffer; flights: 1 | 2; psk: boolean }[] {
  const full = rec.find((r) => !r.psk) ?? rec[0];
  if (!full) return [];
  const other = rec.find((r) => r.psk && r !== full) ?? rec.find((r) => r !== full);
  return [
    { bytes: full.hello, flights: 1 as const, psk: full.psk },
    { bytes: full.withSecond, flights: 2 as const, psk: full.psk },
    ...(other ? [{ bytes: other.withSecond, flights: 2 as const, psk: other.psk }] : []),
  ];
}

async function certificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const pems = await generate([{ name: 'commonName', value: 'pigeon-lab' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: A.destAbroad },
          { type: 7, ip: A.destHome },
          { type: 2, value: 'localhost' }, // what Pigeon's DoH client checks for a server reached by IP
          { type: 2, value: BLOCKED_NAME },
        ],
      },
    ],
  });
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, pems.cert);
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  return { certFile, keyFile };
}

function resultLine<T>(proc: LabProc, timeoutMs: number): Promise<T> {
  return proc.waitForLine(/^RESULT /, timeoutMs).then((line) => {
    const r = JSON.parse(line.slice('RESULT '.length)) as T & { error?: string };
    if (r.error) throw new Error(`${proc.name} failed: ${r.error}`);
    return r;
  });
}

const fromServer = (proc: LabProc): number => proc.lines.filter((l) => l === `ACCEPT ${A.server}`).length;

async function runConfig(
  spec: LabConfigSpec,
  topo: Topology,
  dir: string,
  dest: LabProc,
  o: Required<Omit<LabOptions, 'configs' | 'progress' | 'keep'>> & {
    progress: (l: string) => void;
    certFile: string;
  },
): Promise<ConfigReport> {
  const started = Date.now();
  const procs: LabProc[] = [];
  const work = join(dir, spec.name);
  mkdirSync(work, { recursive: true });
  try {
    const trojan = spec.carrier === 'trojan';
    const method = spec.method ?? 'chacha20-ietf-poly1305';
    const port = trojan ? TROJAN_PORT : SERVER_PORT;
    const password =
      !trojan && method.startsWith('2022-')
        ? randomBytes(16).toString('base64')
        : randomBytes(12).toString('base64url');
    const env = { ...process.env, PIGEON_DATA: join(work, 'data'), PIGEON_LOG: 'warn' };
    const server = startIn(
      topo.ns.server,
      'pigeon server',
      pigeon.cmd,
      [
        ...pigeon.args,
        'server',
        '--listen',
        `${A.server}:${port}`,
        ...(trojan ? ['--trojan'] : ['--method', method]),
        '--password',
        password,
        '--allow-private',
        '--public-host',
        A.server,
        '--no-qr',
        ...(spec.disguise || trojan ? [] : ['--no-disguise']),
      ],
      { env },
    );
    procs.push(server);
    const uri = (await server.waitForLine(trojan ? /^trojan:\/\// : /^ss:\/\//, START_TIMEOUT_MS)).trim();
    if (!uri.includes(`@${A.server}:${port}`))
      throw new Error(`pigeon server printed a key for another address than ${A.server}:${port}: ${uri}`);
    if (trojan && !/[?&]pcs=[0-9A-F]{64}/.test(uri))
      throw new Error(`pigeon server printed a trojan:// URI without the certificate's pin: ${uri}`);
    const prefix = /[?&]prefix=([^&#]*)/.exec(uri)?.[1];
    if (spec.disguise !== !!prefix)
      throw new Error(`pigeon server printed ${spec.disguise ? 'no' : 'a'} prefix for ${spec.name}: ${uri}`);
    if (trojan) {
      // The reference for the prober: an ordinary HTTPS site on the same host.
      const bc: BaselineConfig = {
        host: A.server,
        port: BASELINE_PORT,
        ...(await baselineCertificate(work)),
      };
      const baselineFile = join(work, 'baseline.json');
      writeFileSync(baselineFile, JSON.stringify(bc));
      const baseline = startIn(topo.ns.server, 'baseline', hosts.cmd, [
        ...hosts.args,
        'baseline',
        baselineFile,
      ]);
      procs.push(baseline);
      await baseline.waitForLine(/^READY$/, START_TIMEOUT_MS);
    }

    const pcapFile = join(work, 'censor.pcap');
    const observer = await startObserver(topo.ns.censor, CENSOR_CLIENT_IFACE, pcapFile);
    procs.push(observer.proc);

    const clientConfig = join(work, 'client.yaml');
    writeFileSync(
      clientConfig,
      [
        'preset: none',
        'rules:',
        `  - DOMAIN-SUFFIX,${BLOCKED_NAME.split('.').slice(-2).join('.')},proxy`,
        `  - IP-CIDR,${A.destAbroad}/32,proxy`,
        'dns:',
        `  doh: https://${A.destAbroad}/dns-query`,
        `  ca: ${o.certFile}`,
        `  direct: ['${A.destHome}:53']`,
        '',
      ].join('\n'),
    );
    const client = startIn(
      topo.ns.client,
      'pigeon client',
      pigeon.cmd,
      [
        ...pigeon.args,
        'client',
        '--config',
        clientConfig,
        '--server',
        uri,
        '--listen',
        `127.0.0.1:${SOCKS_PORT}`,
        '--dns',
        `127.0.0.1:${DNS_PORT}`,
      ],
      { env },
    );
    procs.push(client);
    await client.waitForLine(/SOCKS5 and HTTP proxy on/, START_TIMEOUT_MS);
    await client.waitForLine(/DNS on /, START_TIMEOUT_MS);

    const trafficFile = join(work, 'traffic.json');
    const tc: TrafficConfig = {
      socksPort: SOCKS_PORT,
      dnsPort: DNS_PORT,
      abroad: A.destAbroad,
      home: A.destHome,
      caFile: o.certFile,
      connections: o.connections,
      httpsConnections: o.httpsConnections,
      blockedName: BLOCKED_NAME,
      homeName: HOME_NAME,
    };
    writeFileSync(trafficFile, JSON.stringify(tc));
    o.progress(`${spec.name}: traffic (${o.connections} HTTP + ${o.httpsConnections} HTTPS connections)`);
    const trafficProc = startIn(topo.ns.client, 'traffic', hosts.cmd, [
      ...hosts.args,
      'traffic',
      trafficFile,
    ]);
    procs.push(trafficProc);
    const traffic = await resultLine<TrafficResult>(trafficProc, 90_000);
    await client.stop();
    const censor = analyseCapture(await observer.stop(), {
      client: A.client,
      server: { host: A.server, port },
    });

    o.progress(`${spec.name}: active probing (${o.probeWaitMs / 1000} s)`);
    const before = fromServer(dest);
    const probeFile = join(work, 'probe.json');
    const replays = trojan ? tlsReplays(censor.recordedTls) : undefined;
    const pc: ProbeConfig = {
      host: A.server,
      port,
      waitMs: o.probeWaitMs,
      finWaitMs: 1500,
      recorded: (replays?.map((r) => r.bytes) ?? censor.recordedFlights.slice(0, 3)).map((b) =>
        b.toString('base64'),
      ),
      ...(replays
        ? {
            baseline: { host: A.server, port: BASELINE_PORT },
            recordedTls: replays.map(({ flights, psk }) => ({ flights, psk })),
          }
        : {}),
    };
    writeFileSync(probeFile, JSON.stringify(pc));
    const probeProc = startIn(topo.ns.censor, 'prober', hosts.cmd, [...hosts.args, 'probe', probeFile]);
    procs.push(probeProc);
    const probe = await resultLine<ProbeReport>(probeProc, o.probeWaitMs + 30_000);
    await new Promise((r) => setTimeout(r, 200));
    const prober = { ...probe, replaysReachingDestination: fromServer(dest) - before };
    const { packets, tunnelConnections, fullyEncrypted, sni, dns, tlsInTls } = censor;
    const censorReport = { packets, tunnelConnections, fullyEncrypted, sni, dns, tlsInTls };
    return {
      config: spec.name,
      carrier: spec.carrier,
      ...(spec.method ? { method: spec.method } : {}),
      disguise: spec.disguise,
      ...(prefix ? { prefix: decodeURIComponent(prefix) } : {}),
      traffic,
      censor: censorReport,
      prober,
      rules: ruleRows(censorReport, prober),
      durationMs: Date.now() - started,
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
}

function ruleRows(c: ConfigReport['censor'], p: ConfigReport['prober']): ConfigReport['rules'] {
  const fe = c.fullyEncrypted;
  const ex = fe.exemptions;
  const kinds = (k: string): number => p.probes.filter((x) => x.kind === k).length;
  const reactions = Object.entries(p.reactions)
    .map(([k, n]) => `${n}× ${k}`)
    .join(', ');
  const t = c.tlsInTls;
  const shapes = t.samples
    .filter((s) => s.flagged)
    .slice(0, 2)
    .map((s) => s.bursts.join('/'));
  const probeVerdict: Verdict =
    p.indistinguishable && p.replaysReachingDestination === 0 ? 'PASS' : 'DETECTED';
  const gotData = p.probes.filter((x) => x.bytesBack > 0).length;
  const b = p.baseline;
  const how = b
    ? `compared one by one with the same probes to a plain HTTPS server (${b.target}): ` +
      `${b.matched}/${p.probes.length} met its reaction class (what came back, how and when it closed, ` +
      `±15 % + 0.5 s); ${gotData} got data; `
    : `${gotData} got data; `;
  return [
    {
      rule: 'fully-encrypted',
      verdict: fe.verdict,
      numbers:
        `${fe.flagged}/${fe.judged} first segments flagged; exemptions held: ex1 ${ex.ex1}, ex2 ${ex.ex2}, ` +
        `ex3 ${ex.ex3}, ex4 ${ex.ex4}, ex5 ${ex.ex5}; lengths ${fe.firstSegmentLengths.min}–` +
        `${fe.firstSegmentLengths.max} B (${fe.firstSegmentLengths.distinct} distinct); ` +
        `${fe.probeTriggers} would draw probes (160–700 B, high entropy)`,
    },
    {
      rule: 'active-probing',
      verdict: probeVerdict,
      numbers:
        `${p.probes.length} probes (${kinds('replay')} replays, ${kinds('replay-changed')} changed, ` +
        `${kinds('random')} random${kinds('tls') ? `, ${kinds('tls')} over TLS` : ''}): ${how}${reactions}; ` +
        `replays reaching the destination: ${p.replaysReachingDestination}` +
        (p.reasons.length ? `; ${p.reasons.join('; ')}` : ''),
    },
    {
      rule: 'sni',
      verdict: c.sni.verdict,
      numbers:
        `${c.sni.tunnelBlocked.length} blocklisted of ${c.sni.tunnelHellos} ClientHellos to the server` +
        (c.sni.tunnelHellos ? ` (${c.sni.tunnelNames.join(', ')})` : '') +
        `; control: ${c.sni.otherBlocked.length ? `direct hello for ${c.sni.otherBlocked.join(', ')} seen` : 'NO direct blocked hello seen'}`,
    },
    {
      rule: 'dns',
      verdict: c.dns.verdict,
      numbers:
        `${c.dns.blocked.length ? `blocked names in plaintext: ${c.dns.blocked.join(', ')}` : 'no plaintext query for a blocked name'}` +
        `; ${c.dns.queries} plaintext queries (${c.dns.names.join(', ') || 'none'})`,
    },
    {
      rule: 'tls-in-tls',
      verdict: t.verdict,
      numbers:
        `${t.flagged}/${t.judged} tunnel connections handshake-shaped` +
        (shapes.length ? ` (bursts C/S/C/S ${shapes.join(', ')} B)` : ''),
    },
  ];
}

export async function runLab(opts: LabOptions = {}): Promise<LabReport> {
  const why = labUnavailable();
  if (why) throw new Error(why);
  const specs = configsByName(opts.configs ?? ['all']);
  const o = {
    connections: Math.max(1, Math.min(opts.connections ?? 20, 500)),
    httpsConnections: Math.max(0, Math.min(opts.httpsConnections ?? 2, 50)),
    probeWaitMs: Math.max(200, Math.min(opts.probeWaitMs ?? 3000, 120_000)),
    progress: opts.progress ?? (() => undefined),
  };
  const started = Date.now();
  cleanLeftovers();
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-lab-'));
  let topo: Topology | undefined;
  let dest: LabProc | undefined;
  try {
    topo = createTopology();
    o.progress(`lab ${topo.id}: namespaces ${Object.values(topo.ns).join(', ')}`);
    const cert = await certificate(dir);
    const destFile = join(dir, 'dest.json');
    const dc: DestConfig = { abroad: A.destAbroad, home: A.destHome, ...cert };
    writeFileSync(destFile, JSON.stringify(dc));
    dest = startIn(topo.ns.dest, 'dest', hosts.cmd, [...hosts.args, 'dest', destFile]);
    await dest.waitForLine(/^READY$/, START_TIMEOUT_MS);
    const configs: ConfigReport[] = [];
    for (const spec of specs) {
      o.progress(`${spec.name}: ${spec.what}`);
      configs.push(await runConfig(spec, topo, dir, dest, { ...o, certFile: cert.certFile }));
    }
    return {
      configs,
      connections: o.connections,
      httpsConnections: o.httpsConnections,
      probeWaitMs: o.probeWaitMs,
      durationMs: Date.now() - started,
      ...(opts.keep ? { dir } : {}),
    };
  } finally {
    await dest?.stop();
    topo?.teardown();
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  }
}

/** The report as a table: configuration × rule → verdict and numbers. */
export function formatLabReport(r: LabReport): string {
  const lines = [
    `Pigeon censor lab: ${r.connections} HTTP + ${r.httpsConnections} HTTPS connections per configuration, ` +
      `probes wait ${r.probeWaitMs / 1000} s; ${(r.durationMs / 1000).toFixed(1)} s in all`,
    '',
  ];
  const w = Math.max(14, ...r.configs.map((c) => c.config.length));
  lines.push(`${'Config'.padEnd(w)}  ${'Rule'.padEnd(15)}  ${'Verdict'.padEnd(8)}  Numbers`);
  for (const c of r.configs) {
    c.rules.forEach((row, i) => {
      lines.push(
        `${(i ? '' : c.config).padEnd(w)}  ${row.rule.padEnd(15)}  ${row.verdict.padEnd(8)}  ${row.numbers}`,
      );
    });
    const t = c.traffic;
    lines.push(
      `${''.padEnd(w)}  ${'(traffic)'.padEnd(15)}  ${''.padEnd(8)}  HTTP ${t.http.ok}/${t.http.ok + t.http.failed}, ` +
        `HTTPS ${t.https.ok}/${t.https.ok + t.https.failed}, DNS ${BLOCKED_NAME} → ${t.dns.blocked.join(' ') || 'no answer'}, ` +
        `${HOME_NAME} → ${t.dns.home.join(' ') || 'no answer'}; ${c.method ?? c.carrier}${c.prefix ? `, prefix ${JSON.stringify(c.prefix)}` : ''}; ` +
        `${(c.durationMs / 1000).toFixed(1)} s` +
        (t.errors.length ? `; errors: ${t.errors.join('; ')}` : ''),
    );
  }
  if (r.dir) lines.push('', `Captures and configurations kept in ${r.dir}`);
  lines.push(
    '',
    'PASS: the rule did not single out the configuration. DETECTED: it did (plain-aead is meant to be',
    'flagged by fully-encrypted: that is the sanity check). The lab checks the published rules of',
    'censor-model.md, not the real firewall; see docs/lab.md.',
  );
  return lines.join('\n') + '\n';
}
