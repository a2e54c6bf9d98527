// What TUN mode changes on the system, and how it is undone: the device's addresses, two routing
// tables and a few policy rules (iproute2), and the kill switch (an nftables table). Every name and
// number here is Pigeon's own, so leftovers of a crashed run are recognised and removed on the next
// start. The commands run synchronously: at start, at exit, and in a process 'exit' handler.
//
// Policy rules (IPv4 and IPv6 alike; lower priority numbers are tried first):
//   7360  uidrange BYPASS_UID      lookup main      Pigeon's own sockets take the normal routes
//   7361  ipproto udp|tcp dport 53 lookup 7366      plain DNS always enters the TUN (Pigeon answers it)
//   7362  lookup main suppress_prefixlength 0       ("all" only) the LAN and other specific routes stay
//   7363  lookup 7366 ("all") | lookup 7367 (ranges) everything else, or the tunnelled ranges, to the TUN
// Table 7366: default dev TUN, and an unreachable default under it that outlives the device: after a
// crash, traffic meant for the tunnel gets "network unreachable" instead of the normal default route.
// Table 7367: the tunnelled ranges, dev TUN.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export const TABLE_ALL = 7366;
export const TABLE_RANGES = 7367;
export const PRIORITIES = { bypass: 7360, dns: 7361, lan: 7362, tun: 7363 } as const;
export const NFT_TABLE = 'pigeon';
/** Metric of the unreachable defaults: below everything a person would add. */
const UNREACHABLE_METRIC = 4_000_000_000;
const COMMAND_TIMEOUT_MS = 15_000;
/** At most this many rules of one priority are deleted (ours add two at most). */
const MAX_RULES_PER_PRIORITY = 8;

export class SystemError extends Error {
  override name = 'TunError';
}

export interface Family {
  /** The TUN's own address, where the local listener lives. */
  address: string;
  /** The reserved peer address that translated connections come from. */
  peer: string;
  prefix: number;
}

export interface RoutePlan {
  device: string;
  /** Everything into the TUN, or only `ranges` (plus plain DNS). */
  mode: 'all' | 'ranges';
  ranges: { v4: string[]; v6: string[] };
  bypassUid: number;
  /** IPv6 routes too (false when the device has no IPv6 address). */
  v6: boolean;
}

export interface KillSwitchPlan {
  device: string;
  mode: 'all' | 'ranges';
  bypassUid: number;
  /** "all": destinations that may still be reached outside the TUN (the LAN). */
  lan: { v4: string[]; v6: string[] };
  /** "ranges": destinations that must never leave outside the TUN. */
  ranges: { v4: string[]; v6: string[] };
}

interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], input?: string): RunResult {
  const r = spawnSync(cmd, args, { input, encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  return {
    ok: r.status === 0,
    stdout: r.stdout ?? '',
    stderr: (r.stderr ?? '') + (r.error ? r.error.message : ''),
  };
}

function must(cmd: string, args: string[], input?: string): string {
  const r = run(cmd, args, input);
  if (!r.ok) {
    const what = input
      ? `${cmd} ${args.join(' ')} (${input.split('\n').length} lines)`
      : `${cmd} ${args.join(' ')}`;
    throw new SystemError(`${what} failed: ${r.stderr.trim().split('\n').slice(0, 3).join('; ')}`);
  }
  return r.stdout;
}

/** Throws unless `ip` (iproute2) and `nft` (nftables) can be run. */
export function requireTools(): void {
  const missing = ['ip', 'nft'].filter((c) => run('sh', ['-c', 'command -v "$1"', 'sh', c]).ok === false);
  if (missing.length) {
    throw new SystemError(
      `TUN mode needs ${missing.map((m) => `"${m}"`).join(' and ')} (Debian: apt-get install iproute2 nftables)`,
    );
  }
}

function rulePriorities(family: '-4' | '-6'): number[] {
  const r = run('ip', [family, '-j', 'rule', 'show']);
  if (!r.ok) return [];
  try {
    const rules = JSON.parse(r.stdout) as { priority?: number }[];
    return rules.map((x) => x.priority ?? -1);
  } catch {
    return [];
  }
}

function tableHasRoutes(family: '-4' | '-6', table: number): boolean {
  const r = run('ip', [family, 'route', 'show', 'table', String(table)]);
  return r.ok && r.stdout.trim().length > 0;
}

/** Our rules and both tables, for one family: a batch for `ip -4|-6 -force -batch`. */
function routeRemovalBatch(): string {
  const lines: string[] = [];
  for (const prio of Object.values(PRIORITIES)) {
    for (let i = 0; i < MAX_RULES_PER_PRIORITY; i++) lines.push(`rule del priority ${prio}`);
  }
  for (const t of [TABLE_ALL, TABLE_RANGES]) lines.push(`route flush table ${t}`);
  return `${lines.join('\n')}\n`;
}

/** Removes the policy rules and empties both tables (errors for what is not there are ignored). */
export function removeRoutes(): void {
  for (const fam of ['-4', '-6']) run('ip', [fam, '-force', '-batch', '-'], routeRemovalBatch());
}

export function removeKillSwitch(): void {
  run('nft', ['delete', 'table', 'inet', NFT_TABLE]);
}

export function deviceExists(name: string): boolean {
  return run('ip', ['link', 'show', 'dev', name]).ok;
}

/**
 * Removes what an earlier run left behind (a crash, SIGKILL): rules of our priorities, our tables,
 * the device, the nftables table. Returns what it found, for the log.
 */
export function cleanupLeftovers(device: string): string[] {
  const found: string[] = [];
  const ours = new Set<number>(Object.values(PRIORITIES));
  for (const fam of ['-4', '-6'] as const) {
    if (rulePriorities(fam).some((p) => ours.has(p))) found.push(`IPv${fam[1]} policy rules`);
    for (const t of [TABLE_ALL, TABLE_RANGES])
      if (tableHasRoutes(fam, t)) found.push(`IPv${fam[1]} routes of table ${t}`);
  }
  const nft = run('nft', ['list', 'table', 'inet', NFT_TABLE]).ok;
  if (nft) found.push(`nftables table inet ${NFT_TABLE}`);
  const dev = deviceExists(device);
  if (dev) found.push(`device ${device}`);
  if (found.length) {
    removeRoutes();
    if (dev) run('ip', ['link', 'del', 'dev', device]);
    if (nft) removeKillSwitch();
  }
  return found;
}

/** MTU, addresses, up, loose reverse-path filtering. Returns whether IPv6 could be configured. */
export function configureDevice(name: string, mtu: number, v4: Family, v6: Family): { v6: boolean } {
  must('ip', ['link', 'set', 'dev', name, 'mtu', String(mtu), 'txqueuelen', '1000']);
  must('ip', ['-4', 'addr', 'add', `${v4.address}/${v4.prefix}`, 'dev', name]);
  // nodad: the address is usable at once (no duplicate detection on a link with no one else on it).
  const six = run('ip', ['-6', 'addr', 'add', `${v6.address}/${v6.prefix}`, 'dev', name, 'nodad']).ok;
  must('ip', ['link', 'set', 'dev', name, 'up']);
  // Loose: translated replies arrive on the TUN from addresses the main table routes elsewhere.
  try {
    writeFileSync(`/proc/sys/net/ipv4/conf/${name}/rp_filter`, '2');
  } catch {
    // no /proc/sys in this namespace: the default (often 0 or 2) applies
  }
  return { v6: six };
}

/** The main table's own destinations other than the default route: the LAN and static routes. */
export function lanRanges(): { v4: string[]; v6: string[] } {
  const out = { v4: [] as string[], v6: [] as string[] };
  for (const fam of ['-4', '-6'] as const) {
    const r = run('ip', [fam, '-j', 'route', 'show', 'table', 'main']);
    if (!r.ok) continue;
    let routes: { dst?: string; type?: string }[] = [];
    try {
      routes = JSON.parse(r.stdout) as { dst?: string; type?: string }[];
    } catch {
      continue;
    }
    for (const x of routes) {
      if (!x.dst || x.dst === 'default' || (x.type && x.type !== 'unicast')) continue;
      (fam === '-4' ? out.v4 : out.v6).push(x.dst);
    }
  }
  out.v4.push('169.254.0.0/16', '224.0.0.0/4', '255.255.255.255');
  out.v6.push('fe80::/10', 'ff00::/8');
  return out;
}

function nftSet(name: string, type: 'ipv4_addr' | 'ipv6_addr', elements: string[]): string {
  const items = elements.length ? `\n    elements = { ${elements.join(', ')} }` : '';
  return `  set ${name} {\n    type ${type}\n    flags interval\n    auto-merge${items}\n  }\n`;
}

/** The kill switch's ruleset, as `nft -f` reads it. */
export function killSwitchRuleset(plan: KillSwitchPlan): string {
  const dev = JSON.stringify(plan.device);
  const sets =
    plan.mode === 'all'
      ? nftSet('lan4', 'ipv4_addr', plan.lan.v4) + nftSet('lan6', 'ipv6_addr', plan.lan.v6)
      : nftSet('tunnelled4', 'ipv4_addr', plan.ranges.v4) + nftSet('tunnelled6', 'ipv6_addr', plan.ranges.v6);
  const policy =
    plan.mode === 'all'
      ? ['ip daddr @lan4 accept', 'ip6 daddr @lan6 accept', 'counter drop']
      : [
          'ip daddr @tunnelled4 counter drop',
          'ip6 daddr @tunnelled6 counter drop',
          'udp dport 53 counter drop',
          'tcp dport 53 counter drop',
        ];
  const chain = (name: 'output' | 'forward', own: string[]): string =>
    `  chain ${name} {\n    type filter hook ${name} priority filter; policy accept;\n` +
    [`oifname "lo" accept`, `oifname ${dev} accept`, ...own, ...policy].map((l) => `    ${l}\n`).join('') +
    '  }\n';
  return (
    `table inet ${NFT_TABLE} {\n` +
    sets +
    chain('output', [`meta skuid ${plan.bypassUid} accept`]) +
    chain('forward', []) +
    '}\n'
  );
}

export function installKillSwitch(plan: KillSwitchPlan): void {
  removeKillSwitch();
  must('nft', ['-f', '-'], killSwitchRuleset(plan));
}

/** The `ip -4|-6 -batch` lines that install the routes and rules of `plan` for one family. */
export function routeBatch(plan: RoutePlan, fam: '-4' | '-6'): string {
  const lines: string[] = [];
  const any = fam === '-4' ? '0.0.0.0/0' : '::/0';
  lines.push(`route replace ${any} dev ${plan.device} table ${TABLE_ALL}`);
  lines.push(`route replace unreachable ${any} table ${TABLE_ALL} metric ${UNREACHABLE_METRIC}`);
  if (plan.mode === 'ranges') {
    for (const r of fam === '-4' ? plan.ranges.v4 : plan.ranges.v6) {
      lines.push(`route replace ${r} dev ${plan.device} table ${TABLE_RANGES}`);
    }
  }
  const uid = plan.bypassUid;
  lines.push(`rule add priority ${PRIORITIES.bypass} uidrange ${uid}-${uid} lookup main`);
  for (const proto of ['udp', 'tcp']) {
    lines.push(`rule add priority ${PRIORITIES.dns} ipproto ${proto} dport 53 lookup ${TABLE_ALL}`);
  }
  if (plan.mode === 'all') {
    lines.push(`rule add priority ${PRIORITIES.lan} lookup main suppress_prefixlength 0`);
    lines.push(`rule add priority ${PRIORITIES.tun} lookup ${TABLE_ALL}`);
  } else {
    lines.push(`rule add priority ${PRIORITIES.tun} lookup ${TABLE_RANGES}`);
  }
  return `${lines.join('\n')}\n`;
}

export function installRoutes(plan: RoutePlan): void {
  must('ip', ['-4', '-batch', '-'], routeBatch(plan, '-4'));
  if (plan.v6) must('ip', ['-6', '-batch', '-'], routeBatch(plan, '-6'));
}

function runAsync(cmd: string, args: string[], input: string): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'ignore'], timeout: COMMAND_TIMEOUT_MS });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/**
 * Host routes into the TUN (and the kill switch's "tunnelled" sets) added while running, in "ranges"
 * mode: the addresses DNS gave for tunnelled names. Requests within a few milliseconds share one
 * `ip -batch` and one `nft -f`; each address is added once; at most `max` of them.
 */
export class HostRoutes {
  private readonly added = new Set<string>();
  private pending: string[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly o: { device: string; v6: boolean; killSwitch: boolean; max?: number }) {}

  get size(): number {
    return this.added.size;
  }

  /** Resolves once every address is routed into the TUN (or could not be). */
  add(ips: string[]): Promise<void> {
    const max = this.o.max ?? 20_000;
    for (const ip of ips) {
      if (this.added.has(ip) || this.added.size >= max || (!this.o.v6 && ip.includes(':'))) continue;
      this.added.add(ip);
      this.pending.push(ip);
    }
    if (!this.pending.length) return this.flushing ?? Promise.resolve();
    if (!this.flushing) {
      this.flushing = new Promise<void>((r) => setTimeout(r, 2))
        .then(() => this.flush())
        .finally(() => (this.flushing = undefined));
    }
    return this.flushing;
  }

  close(): void {
    this.closed = true;
  }

  private async flush(): Promise<void> {
    for (let round = 0; round < 100 && this.pending.length && !this.closed; round++) {
      const ips = this.pending;
      this.pending = [];
      const v4 = ips.filter((ip) => !ip.includes(':'));
      const v6 = ips.filter((ip) => ip.includes(':'));
      const routes = (list: string[]): string =>
        list.map((ip) => `route replace ${ip} dev ${this.o.device} table ${TABLE_RANGES}\n`).join('');
      const nft = [
        v4.length ? `add element inet ${NFT_TABLE} tunnelled4 { ${v4.join(', ')} }` : '',
        v6.length ? `add element inet ${NFT_TABLE} tunnelled6 { ${v6.join(', ')} }` : '',
      ].filter(Boolean);
      await Promise.all([
        v4.length ? runAsync('ip', ['-4', '-force', '-batch', '-'], routes(v4)) : true,
        v6.length ? runAsync('ip', ['-6', '-force', '-batch', '-'], routes(v6)) : true,
        this.o.killSwitch && nft.length ? runAsync('nft', ['-f', '-'], `${nft.join('\n')}\n`) : true,
      ]);
    }
  }
}
