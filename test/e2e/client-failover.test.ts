// `pigeon client` with a fallback group of two real `pigeon server` processes: kill the one in use
// (SIGKILL, mid-connection) and the next requests from curl go through the other within 5 s, the
// client says so, and neither its proxy port nor its DNS listener restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomPassword } from '../helpers/peers.js';
import { ensureBuilt, pigeonServer } from '../helpers/pigeon.js';
import { httpTarget, tcpEcho } from '../helpers/targets.js';
import { startProcess, waitForLine, waitForTcpPort } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { curl } from '../helpers/curl.js';
import { socks5Connect } from '../helpers/socks5.js';

const BIN = join(import.meta.dirname, '../../bin/pigeon.js');
const TOKEN = 'failover-test-token-0123';

test(
  'fallback group: the server in use is killed mid-use; curl works again through the other within 5 s',
  { timeout: 90_000 },
  async (t) => {
    ensureBuilt();
    const method = 'aes-256-gcm';
    const password = randomPassword();
    const a = await pigeonServer(t, { method, password });
    const b = await pigeonServer(t, { method, password });
    const web = await httpTarget(t);
    const echo = await tcpEcho(t);
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-failover-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort('tcp');
    const controlPort = await freePort('tcp');
    const config = join(dir, 'client.yaml');
    writeFileSync(
      config,
      `listen: 127.0.0.1:${port}
groups:
  - name: proxy
    type: fallback
    servers: ["${a.uri.replace(/#.*/, '')}#A", "${b.uri.replace(/#.*/, '')}#B"]
    check: { url: "http://127.0.0.1:${web.port}/hello", interval: 10s, timeout: 2s }
rules:
  - IP-CIDR,127.0.0.0/8,proxy
dns: { listen: "127.0.0.1:0" }
control: { listen: "127.0.0.1:${controlPort}", token: "${TOKEN}" }
`,
    );
    const client = startProcess(t, process.execPath, [BIN, 'client', '--config', config], {
      name: 'pigeon client',
    });
    await waitForTcpPort(port, 20_000, client);
    await waitForLine(client, /group proxy \(fallback\): 2 server\(s\), using A/, 20_000);
    const get = () =>
      curl(
        ['--socks5-hostname', `127.0.0.1:${port}`, '--max-time', '3'],
        `http://127.0.0.1:${web.port}/hello`,
      );
    assert.equal((await get()).body.toString(), web.helloBody);

    // A long-lived connection through A, as a messaging app holds one.
    const held = await socks5Connect(port, '127.0.0.1', echo.port);
    t.after(() => held.destroy());
    held.resume();
    held.write('ping');
    const heldEnded = new Promise<void>((r) => held.once('end', () => r()));

    const killedAt = Date.now();
    a.proc.child.kill('SIGKILL');
    let ok = false;
    for (let i = 0; i < 50 && !ok && Date.now() - killedAt < 5000; i++) {
      ok = await get().then(
        (r) => r.body.toString() === web.helloBody,
        () => false,
      );
    }
    const took = Date.now() - killedAt;
    assert.ok(ok, `a request succeeded within 5 s of the kill (gave up after ${took} ms)`);
    t.diagnostic(`first good request after the kill: ${took} ms`);
    await waitForLine(client, /group proxy now uses B/, 5000);
    await heldEnded; // the app sees its connection through the dead server end (EOF), and reconnects

    // The control API shows the new connection on B.
    const again = await socks5Connect(port, '127.0.0.1', echo.port);
    t.after(() => again.destroy());
    const res = await fetch(`http://127.0.0.1:${controlPort}/connections`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const { connections } = (await res.json()) as { connections: { destination: string; via: string }[] };
    assert.ok(
      connections.some((c) => c.destination === `127.0.0.1:${echo.port}` && c.via === 'proxy/B'),
      JSON.stringify(connections),
    );
    assert.equal(client.exit, null, 'the client kept running');
  },
);
