// The first-packet disguise on the wire: tcpdump on loopback records the connections of a disguised key
// and of the same key without its prefix; the censor's fully-encrypted rule (Wu et al. 2023) is applied
// to the first data segment of each. Disguised: 100% exempt and of varying lengths. Undisguised: the
// rule flags nearly all (the sanity check that the capture and the judge work). The server answers both
// forms on the same port.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { startServer } from '../../src/server/index.js';
import { ShadowsocksOutbound } from '../../src/client/shadowsocks-outbound.js';
import { judgeFirstPacket } from '../../src/wire/first-packet.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { quickPrefix } from '../../src/cli/server-command.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';
import { firstDataSegments, readPcap, requireCapture, startCapture } from '../helpers/capture.js';
import { METHODS, type MethodName } from '../../src/wire/shadowsocks-methods.js';

const CONNECTIONS = 60;

function echo(stream: Duplex, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`echo timed out after ${got} bytes`)), 10_000);
    stream.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= data.length) {
        clearTimeout(timer);
        stream.destroy();
        resolve();
      }
    });
    stream.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    stream.write(data);
  });
}

async function serve(t: TestContext, method: MethodName) {
  const password = method.startsWith('2022')
    ? randomBytes(method.includes('128') ? 16 : 32).toString('base64')
    : 'pw';
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method,
    password,
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  return { server, password };
}

for (const method of METHODS) {
  test(
    `${method}: disguised first segments are exempt, undisguised ones flagged`,
    { timeout: 120_000 },
    async (t) => {
      if (!requireCapture(t, 'the first-packet test')) return;
      const { server, password } = await serve(t, method);
      const target = await tcpEcho(t);
      const capture = await startCapture(t, { filter: `tcp dst port ${server.port}` });
      const uri = { method, password, host: '127.0.0.1', port: server.port, params: {} };
      const prefix = quickPrefix(method, password);
      const disguised = new ShadowsocksOutbound({ ...uri, params: { prefix } });
      const plain = new ShadowsocksOutbound(uri);
      for (let i = 0; i < CONNECTIONS; i++) {
        for (const [kind, out] of [
          ['disguised', disguised],
          ['plain', plain],
        ] as const) {
          const s = await out.dialTcp(makeAddress('127.0.0.1', target.port));
          // The server answers both forms on the same port.
          await echo(s, randomBytes(randomInt(1, 1400))).catch((e: Error) => {
            throw new Error(`${kind} connection ${i}: ${e.message}`);
          });
        }
      }
      // Connections alternate, disguised first, one at a time: their SYNs come in that order.
      const conns = firstDataSegments(readPcap(await capture.stop()), server.port);
      assert.equal(conns.length, 2 * CONNECTIONS, 'every connection was captured');
      const judge = (kind: 'disguised' | 'plain') => {
        const segs = conns
          .filter((_, i) => (i % 2 === 0) === (kind === 'disguised'))
          .map((c) => c.first)
          .filter((x): x is Buffer => !!x);
        assert.equal(segs.length, CONNECTIONS, `${kind}: a first segment for every connection`);
        return {
          flagged: segs.filter((s) => !judgeFirstPacket(s).exempt).length,
          lengths: new Set(segs.map((s) => s.length)),
          prefixed: segs.filter((s) => s.subarray(0, prefix.length).toString('latin1') === prefix).length,
        };
      };
      const d = judge('disguised');
      const p = judge('plain');
      t.diagnostic(
        `prefix ${JSON.stringify(prefix)}: disguised flagged ${d.flagged}/${CONNECTIONS}, ${d.lengths.size} lengths; plain flagged ${p.flagged}/${CONNECTIONS}`,
      );
      assert.equal(d.flagged, 0, 'every disguised first segment is exempt');
      assert.equal(d.prefixed, CONNECTIONS, 'every disguised first segment starts with the prefix');
      assert.ok(
        d.lengths.size >= 3,
        `disguised first segments vary in length (${[...d.lengths].join(', ')})`,
      );
      assert.ok(p.flagged >= CONNECTIONS * 0.8, `plain AEAD is flagged (${p.flagged}/${CONNECTIONS})`);
    },
  );
}
