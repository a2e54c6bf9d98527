// `pigeon client`: loads the plan (flags + YAML), starts the client, and tells the person what runs where,
// which server each group uses, and how many connections are open.
import { startClient, type RunningClient } from '../client/index.js';
import { parseHostPort } from '../wire/socks-address.js';
import type { Log } from '../log.js';
import { loadClientPlan, type ClientFlags, type ClientPlan } from './client-config.js';
import { formatBytes } from './key-commands.js';

/** Where the DNS listener goes when neither --dns nor the config says (Clash's customary port). */
export const DEFAULT_DNS_LISTEN = '127.0.0.1:1053';
const STATUS_EVERY_MS = 10_000;

export function clientPlan(flags: ClientFlags): ClientPlan {
  return loadClientPlan(flags);
}

export async function runClient(
  plan: ClientPlan,
  log: Log,
  out: NodeJS.WritableStream,
): Promise<RunningClient> {
  const dnsListen = plan.dns.listen ?? parseHostPort(DEFAULT_DNS_LISTEN);
  const running = await startClient({
    listen: plan.listen,
    auth: plan.auth,
    forwards: plan.forwards,
    groups: plan.groups,
    rules: plan.rules,
    ruleSets: plan.ruleSets,
    geoip: plan.geoip,
    dns: { ...plan.dns, listen: dnsListen, optional: plan.dns.listen === undefined },
    control: plan.control,
    tun: plan.tun,
    log,
  });
  const say = (line: string): void => void out.write(`pigeon client: ${line}\n`);
  const host = (h: string): string => (h.includes(':') ? `[${h}]` : h);
  say(
    `SOCKS5 and HTTP proxy on ${host(plan.listen.host)}:${running.port} (TCP and UDP), preset ${plan.preset}`,
  );
  for (const [name, g] of running.groups) {
    const st = g.status();
    say(`group ${name} (${st.kind}): ${st.members.length} server(s), using ${st.current ?? 'none yet'}`);
    g.onChange((current) => say(`group ${name} now uses ${current ?? 'no server (all down)'}`));
  }
  if (running.dns) {
    say(
      `DNS on ${host(dnsListen.host)}:${running.dns.port} (UDP and TCP); tunnelled names go by DNS over HTTPS through the tunnel (${plan.dns.doh})`,
    );
  } else {
    say(
      `DNS listener not started (${dnsListen.host}:${dnsListen.port} is busy); apps that use the proxy are not affected`,
    );
  }
  plan.forwards.forEach((f, i) =>
    say(
      `forwarding ${host(f.listen.host)}:${running.forwardPorts[i]} (tcp+udp) to ${host(f.target.host)}:${f.target.port}`,
    ),
  );
  if (running.control)
    say(`control API ${running.control.url} (Authorization: Bearer ${running.control.token})`);
  if (running.tun) {
    const t = running.tun;
    say(
      `TUN ${t.name} up: ${t.routes === 'all' ? 'all traffic' : "the rules' tunnelled ranges and DNS"} (IPv4${t.v6 ? ' and IPv6' : ''}) through the router${t.killSwitch ? ', kill switch on' : ''}`,
    );
  }

  // Live counts, when they change (at most every 10 s).
  let last = '';
  const timer = setInterval(() => {
    const s = running.connections.summary();
    const line = `${s.tcp} TCP connection(s) and ${s.udp} UDP association(s) open; sent ${formatBytes(s.up)}, received ${formatBytes(s.down)}`;
    if (line !== last) {
      last = line;
      say(line);
    }
  }, STATUS_EVERY_MS);
  timer.unref();
  const close = running.close;
  running.close = async () => {
    clearInterval(timer);
    await close();
  };
  return running;
}
