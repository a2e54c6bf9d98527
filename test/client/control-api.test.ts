// The client's local control API: token required; live connections with destination, matched rule,
// server and bytes; groups with manual selection; and rule dry-runs on real-world names (no dialling).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { startClient } from '../../src/client/index.js';
import { parseRule } from '../../src/wire/rules.js';
import { presetRules } from '../../src/client/presets.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';
import { socks5Connect } from '../helpers/socks5.js';

const TOKEN = 'test-token-0123456789';

async function setup(t: import('node:test').TestContext) {
  const password = randomBytes(8).toString('hex');
  const servers = await Promise.all(
    ['A', 'B'].map(() =>
      startServer({
        listen: makeAddress('127.0.0.1', 0),
        method: 'aes-128-gcm',
        password,
        allowPrivate: true,
        log: silentLog,
      }),
    ),
  );
  for (const s of servers) t.after(() => s.close());
  const echo = await tcpEcho(t);
  const uri = (port: number, tag: string) => ({
    method: 'aes-128-gcm' as const,
    password,
    host: '127.0.0.1',
    port,
    tag,
    params: {},
  });
  const client = await startClient({
    groups: [
      {
        name: 'proxy',
        kind: 'select',
        servers: servers.map((s, i) => ({ uri: uri(s.port, 'AB'[i]!), name: 'AB'[i]! })),
        subscriptions: [],
        check: { url: `http://127.0.0.1:${echo.port}/`, intervalMs: 60_000, timeoutMs: 1000 },
      },
    ],
    listen: makeAddress('127.0.0.1', 0),
    forwards: [],
    rules: [`DST-PORT,${echo.port},proxy`, ...presetRules('messaging', 'proxy')].map((r) => parseRule(r)),
    control: { listen: makeAddress('127.0.0.1', 0), token: TOKEN },
    log: silentLog,
  });
  t.after(() => client.close());
  const api = async (path: string, init: RequestInit = {}, token = TOKEN) => {
    const res = await fetch(`${client.control!.url}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { client, echo, api };
}

test('connections list destination, rule, server and bytes while open; token required', async (t) => {
  const { echo, api, client } = await setup(t);
  assert.equal((await api('/connections', {}, 'wrong-token')).status, 401);
  assert.equal((await fetch(`${client.control!.url}/connections`)).status, 401);

  const s = await socks5Connect(client.port, '127.0.0.1', echo.port);
  t.after(() => s.destroy());
  const data = randomBytes(5000);
  s.write(data);
  let got = 0;
  for await (const chunk of s) {
    got += (chunk as Buffer).length;
    if (got >= data.length) break;
  }
  const { status, body } = await api('/connections');
  assert.equal(status, 200);
  const conns = body.connections as {
    destination: string;
    rule: string;
    via: string;
    up: number;
    down: number;
    network: string;
    inbound: string;
  }[];
  const c = conns.find((x) => x.destination === `127.0.0.1:${echo.port}`);
  assert.ok(c, JSON.stringify(conns));
  assert.equal(c.network, 'tcp');
  assert.equal(c.inbound, 'mixed');
  assert.equal(c.rule, `DST-PORT,${echo.port},proxy`);
  assert.equal(c.via, 'proxy/A');
  assert.equal(c.up, 5000);
  assert.equal(c.down, 5000);
  const st = await api('/status');
  assert.deepEqual((st.body.connections as { tcp: number }).tcp, 1);
});

test('select groups switch server through the API; later connections use it', async (t) => {
  const { echo, api, client } = await setup(t);
  assert.equal(
    (await api('/groups/proxy', { method: 'PUT', body: JSON.stringify({ server: 'B' }) })).status,
    200,
  );
  assert.equal(
    (await api('/groups/proxy', { method: 'PUT', body: JSON.stringify({ server: 'C' }) })).status,
    404,
  );
  assert.equal(
    (await api('/groups/nope', { method: 'PUT', body: JSON.stringify({ server: 'B' }) })).status,
    404,
  );
  assert.equal(
    (await api('/groups/proxy', { method: 'PUT', body: JSON.stringify({ srv: 'B' }) })).status,
    400,
  );
  const groups = (await api('/groups')).body.groups as { name: string; current: string }[];
  assert.equal(groups[0]!.current, 'B');
  const s = await socks5Connect(client.port, '127.0.0.1', echo.port);
  t.after(() => s.destroy());
  const conns = (await api('/connections')).body.connections as { via: string }[];
  assert.deepEqual(
    conns.map((c) => c.via),
    ['proxy/B'],
  );
});

test('rule dry-run: messaging names and Telegram addresses are tunnelled, others direct', async (t) => {
  const { api } = await setup(t);
  const route = async (q: string) => (await api(`/route?${q}`)).body;
  assert.deepEqual(await route('host=web.telegram.org'), {
    target: 'proxy',
    rule: 'RULE-SET,messaging,proxy',
  });
  assert.deepEqual(await route('host=91.108.4.10&port=443'), {
    target: 'proxy',
    rule: 'RULE-SET,messaging,proxy',
  });
  assert.deepEqual(await route('host=www.baidu.com'), { target: 'DIRECT', rule: 'MATCH,DIRECT' });
  assert.deepEqual(await route('host=192.168.1.1'), { target: 'DIRECT', rule: 'RULE-SET,private,DIRECT' });
  assert.equal((await api('/route?host=')).status, 400);
});
