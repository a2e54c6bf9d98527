// The lab's network: four network namespaces joined by veth pairs, all on private 10.66.0.0/16 addresses,
// with no link to the host's own network (so nothing the lab does can leave the machine):
//
//   client 10.66.1.2 ──── 10.66.1.1 ┐
//                                 censor (forwards; observes the client link) ── 10.66.2.1 ──── 10.66.2.2 server
//   dest 10.66.3.2 "abroad"  ─ 10.66.3.1 ┘
//        10.66.3.3 "at home"
//
// The censor is the client's only router; it sees every packet the client sends or receives, as a
// border firewall does. Its own probes leave by the server link, so they are not in the capture.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from './proc.js';

export const NS_PREFIX = 'plab-';

export const LAB_ADDRESSES = {
  client: '10.66.1.2',
  censorClientSide: '10.66.1.1',
  censorServerSide: '10.66.2.1',
  censorDestSide: '10.66.3.1',
  server: '10.66.2.2',
  /** A site abroad (reached through the tunnel): HTTP, HTTPS and DNS over HTTPS. */
  destAbroad: '10.66.3.2',
  /** A site and a plain DNS resolver at home (reached directly): the controls. */
  destHome: '10.66.3.3',
} as const;

/** The censor's interface towards the client: what the observer captures. */
export const CENSOR_CLIENT_IFACE = 'to-client';

export type Role = 'client' | 'censor' | 'server' | 'dest';
const ROLES: Role[] = ['client', 'censor', 'server', 'dest'];

export interface Topology {
  id: string;
  ns: Record<Role, string>;
  teardown(): void;
}

/** Namespace names look like plab-<creator pid>-<random>-<role>. */
function creatorPid(ns: string): number | undefined {
  const m = /^plab-(\d+)-[0-9a-f]+-/.exec(ns);
  return m ? Number(m[1]) : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

function deleteNamespace(ns: string): void {
  // Processes in a deleted namespace would live on: end them first (they are the lab's own).
  try {
    for (const pid of run('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number))
      if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) process.kill(pid, 'SIGKILL');
  } catch {
    // no such namespace, or the process is already gone
  }
  try {
    run('ip', ['netns', 'del', ns]);
  } catch {
    // already gone
  }
  rmSync(join('/etc/netns', ns), { recursive: true, force: true });
}

/** Removes lab namespaces left behind by lab runs whose process is gone (a crash, a SIGKILL). */
export function cleanLeftovers(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    if (!ns.startsWith(NS_PREFIX)) continue;
    const pid = creatorPid(ns);
    if (pid !== undefined && pid !== process.pid && alive(pid)) continue; // another lab run, still going
    deleteNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

const active = new Set<Topology>();

/** Tears down every topology this process has built and not yet torn down (for SIGINT handlers). */
export function teardownAll(): void {
  for (const t of [...active]) t.teardown();
}

/** Builds the four namespaces and their links. On failure removes what it made, then throws. */
export function createTopology(): Topology {
  const id = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const ns = Object.fromEntries(ROLES.map((r) => [r, `${NS_PREFIX}${id}-${r}`])) as Record<Role, string>;
  let torn = false;
  const teardown = (): void => {
    if (torn) return;
    torn = true;
    active.delete(topo);
    // Deleting a namespace destroys its veth ends, and with them their peers.
    for (const r of ROLES) deleteNamespace(ns[r]);
  };
  const topo: Topology = { id, ns, teardown };
  active.add(topo);
  const A = LAB_ADDRESSES;
  const inNs = (role: Role, ...args: string[]): void => void run('ip', ['-n', ns[role], ...args]);
  const sysctl = (role: Role, kv: string): void =>
    void run('ip', ['netns', 'exec', ns[role], 'sysctl', '-q', '-w', kv]);
  try {
    for (const r of ROLES) {
      run('ip', ['netns', 'add', ns[r]]);
      inNs(r, 'link', 'set', 'lo', 'up');
      // IPv4 only: no router solicitations or MLD reports in the capture.
      sysctl(r, 'net.ipv6.conf.all.disable_ipv6=1');
      sysctl(r, 'net.ipv6.conf.default.disable_ipv6=1');
      // Names a process looks up by accident go to the lab's resolver, never to the host's.
      mkdirSync(join('/etc/netns', ns[r]), { recursive: true });
      writeFileSync(join('/etc/netns', ns[r], 'resolv.conf'), `nameserver ${A.destHome}\n`);
    }
    // veth pairs created inside the namespaces: no interface ever appears in the host's namespace.
    const link = (iface: string, peerRole: Role, peerIface: string): void =>
      inNs('censor', 'link', 'add', iface, 'type', 'veth', 'peer', 'name', peerIface, 'netns', ns[peerRole]);
    link(CENSOR_CLIENT_IFACE, 'client', 'eth0');
    link('to-server', 'server', 'eth0');
    link('to-dest', 'dest', 'eth0');
    const addr = (role: Role, iface: string, cidr: string): void => {
      inNs(role, 'addr', 'add', cidr, 'dev', iface);
      inNs(role, 'link', 'set', iface, 'up');
    };
    addr('censor', CENSOR_CLIENT_IFACE, `${A.censorClientSide}/24`);
    addr('censor', 'to-server', `${A.censorServerSide}/24`);
    addr('censor', 'to-dest', `${A.censorDestSide}/24`);
    addr('client', 'eth0', `${A.client}/24`);
    addr('server', 'eth0', `${A.server}/24`);
    addr('dest', 'eth0', `${A.destAbroad}/24`);
    inNs('dest', 'addr', 'add', `${A.destHome}/24`, 'dev', 'eth0');
    inNs('client', 'route', 'add', 'default', 'via', A.censorClientSide);
    inNs('server', 'route', 'add', 'default', 'via', A.censorServerSide);
    inNs('dest', 'route', 'add', 'default', 'via', A.censorDestSide);
    // The censor routes between its three links and nowhere else (it has no default route).
    sysctl('censor', 'net.ipv4.ip_forward=1');
  } catch (e) {
    teardown();
    throw e;
  }
  return topo;
}
