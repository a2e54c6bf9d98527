// The lab's active prober: `pigeon probe HOST:PORT` against a real Pigeon server on loopback (whatever
// the probe, no data back and the same reaction: indistinguishable), and against a deliberately bad
// server that closes once it has read 50 bytes (the sanity check: the prober must call it
// distinguishable, exit code 1). Plus the probe set itself and the verdict rules, and the comparison
// with a baseline HTTPS server that TLS servers get (two HTTPS servers on loopback: alike, and not when
// one keeps a connection open after the prober's FIN in the middle of a handshake).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTlsServer } from 'node:tls';
import { generate } from 'selfsigned';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { StreamWriter } from '../../src/crypto/ss-stream.js';
import { masterKey } from '../../src/crypto/kdf.js';
import { methodSpec } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import {
  backClass,
  compareProbes,
  judgeProbes,
  probeAgainstBaseline,
  publishedProbeSet,
  RANDOM_PROBE_LENGTHS,
  recordTlsFlights,
  type ProbeReport,
  type ProbeResult,
} from '../../src/lab/prober.js';
import { tcpEcho } from '../helpers/targets.js';

const ROOT = join(import.meta.dirname, '../..');

/** `pigeon probe …` from the sources (tsx), so the test runs the code it checks. */
function pigeonProbe(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'probe', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Sends `payload` on a new connection and counts the bytes back within 500 ms. */
function exchange(port: number, payload: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = 0;
    s.on('data', (d: Buffer) => (got += d.length));
    s.on('error', () => undefined);
    s.on('connect', () => s.write(payload));
    setTimeout(() => {
      s.destroy();
      resolve(got);
    }, 500);
  });
}

function tempFile(t: TestContext, name: string, data: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-probe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  writeFileSync(file, data);
  return file;
}

test('the published probe set: replays with the published byte changes, then the random lengths', () => {
  const rec = Buffer.alloc(100, 0xaa);
  const set = publishedProbeSet([rec], (n) => Buffer.alloc(n, 0x01));
  assert.equal(set.length, 5 + RANDOM_PROBE_LENGTHS.length);
  assert.deepEqual(set[0]!.payload, rec);
  const changed = (i: number) => [...set[i]!.payload.keys()].filter((k) => set[i]!.payload[k] !== 0xaa);
  assert.deepEqual(changed(1), [0]);
  assert.deepEqual(changed(2), [0, 1, 2, 3, 4, 5, 6, 7, 62, 63]);
  assert.deepEqual(changed(3), [16]);
  assert.deepEqual(changed(4), [6, 16]);
  assert.deepEqual(
    set.filter((s) => s.kind === 'random').map((s) => s.payload.length),
    [7, 8, 9, 11, 12, 13, 15, 16, 17, 21, 22, 23, 32, 33, 34, 40, 41, 42, 48, 49, 50, 221],
  );
  assert.equal(
    publishedProbeSet([Buffer.alloc(10)]).length,
    5 + 22,
    'short recordings are changed where they can be',
  );
});

test('the verdict: any data back, mixed reactions or close times that depend on the probe give a server away', () => {
  const r = (length: number, o: Partial<ProbeResult>): ProbeResult => ({
    kind: 'random',
    label: `random ${length} B`,
    length,
    bytesBack: 0,
    close: 'open',
    afterFin: { close: 'fin', ms: 1 },
    ...o,
  });
  assert.ok(judgeProbes([r(7, {}), r(221, {})]).indistinguishable);
  assert.match(judgeProbes([r(7, {}), r(221, { bytesBack: 5 })]).reasons.join(), /got data back/);
  assert.match(
    judgeProbes([r(7, {}), r(221, { close: 'rst', closeMs: 3, afterFin: undefined })]).reasons.join(),
    /reactions differ/,
  );
  const timed = (length: number, closeMs: number) =>
    r(length, { close: 'fin', closeMs, afterFin: undefined });
  assert.ok(judgeProbes([timed(7, 60_000), timed(221, 64_000)]).indistinguishable, 'timer jitter is allowed');
  assert.match(judgeProbes([timed(7, 1000), timed(221, 9000)]).reasons.join(), /close times vary/);
  assert.match(judgeProbes([r(7, { close: 'refused' })]).reasons.join(), /could not connect/);
});

test('against a baseline: what came back, how and when the connection ended, probe by probe', () => {
  assert.equal(backClass(Buffer.alloc(0)), undefined);
  assert.equal(backClass(Buffer.from([0x15, 3, 3, 0, 2, 2, 70])), 'TLS alert');
  assert.equal(backClass(Buffer.from([0x16, 3, 3, 0, 90])), 'TLS handshake');
  assert.equal(backClass(Buffer.from('HTTP/1.1 400 Bad Request\r\n'), true), 'over TLS, HTTP 400');
  assert.equal(backClass(Buffer.from([1, 2, 3])), 'data');
  const r = (o: Partial<ProbeResult>): ProbeResult => ({
    kind: 'random',
    label: 'random 7 B',
    length: 7,
    bytesBack: 0,
    close: 'fin',
    closeMs: 20,
    ...o,
  });
  const alert = { bytesBack: 7, back: 'TLS alert' };
  assert.ok(
    compareProbes([r({}), r(alert)], [r({ closeMs: 3 }), r({ ...alert, closeMs: 400 })]).indistinguishable,
  );
  // Certificate sizes differ; classes do not.
  const hs = (bytesBack: number) =>
    r({ bytesBack, back: 'TLS handshake', close: 'open', closeMs: undefined });
  assert.equal(compareProbes([hs(738)], [hs(696)]).matched, 1);
  const v = compareProbes([r({}), r(alert)], [r({}), r({})]);
  assert.equal(v.matched, 1);
  assert.match(v.reasons.join(), /another reaction than at the baseline: "random 7 B": TLS alert, fin/);
  assert.match(
    compareProbes([r({ closeMs: 5000 })], [r({})]).reasons.join(),
    /\(5000 ms\), baseline: .*\(20 ms\)/,
  );
  const open = (after: 'fin' | 'open') =>
    r({
      close: 'open',
      closeMs: undefined,
      afterFin: after === 'fin' ? { close: 'fin', ms: 1 } : { close: 'open' },
    });
  assert.equal(compareProbes([open('open')], [open('fin')]).indistinguishable, false);
  assert.match(compareProbes([r({ close: 'refused' })], [r({})]).reasons.join(), /could not connect/);
});

test('against a baseline: two HTTPS servers are alike; one that stays open after a FIN mid-handshake is not', async (t) => {
  const cert = async () => {
    const p = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
      keyType: 'ec',
      curve: 'P-256',
      algorithm: 'sha256',
    });
    return { key: p.private, cert: p.cert };
  };
  const listen = async (srv: ReturnType<typeof createServer>): Promise<number> => {
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    t.after(() => srv.close());
    return (srv.address() as { port: number }).port;
  };
  const page = (_req: unknown, res: { end(b: string): void }) => res.end('<html>hello</html>');
  const baseline = await listen(createHttpsServer(await cert(), page));
  const other = await listen(createHttpsServer(await cert(), page));
  // A TLS server behind a half-open TCP listener (what Pigeon's Trojan inbound was): a client's FIN
  // before the handshake is done leaves the connection open.
  const tls = createTlsServer(await cert(), (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  tls.on('tlsClientError', (_e, s) => s.destroy());
  const halfOpen = await listen(createServer({ allowHalfOpen: true }, (raw) => tls.emit('connection', raw)));
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const run = async (port: number) => {
    const first = await recordTlsFlights('127.0.0.1', port, request);
    const resumed = await recordTlsFlights('127.0.0.1', port, request, first.session);
    return probeAgainstBaseline({
      host: '127.0.0.1',
      port,
      waitMs: 800,
      finWaitMs: 800,
      baseline: { host: '127.0.0.1', port: baseline },
      recorded: [
        { bytes: first.flights[0]!, flights: 1, psk: false },
        { bytes: Buffer.concat(first.flights.slice(0, 2)), flights: 2, psk: false },
        { bytes: Buffer.concat(resumed.flights.slice(0, 2)), flights: 2, psk: !!first.session },
      ],
    });
  };
  const alike = await run(other);
  t.diagnostic(JSON.stringify(alike.reactions));
  assert.ok(alike.indistinguishable, alike.reasons.join('; '));
  assert.equal(alike.method, 'baseline');
  assert.equal(alike.baseline?.matched, 15 + 22 + 3);
  assert.ok(alike.probes.some((p) => p.back === 'TLS handshake'));
  assert.ok(alike.probes.some((p) => p.back === 'over TLS, HTTP 200'));
  const unlike = await run(halfOpen);
  assert.equal(unlike.indistinguishable, false);
  assert.match(
    unlike.reasons.join(),
    /"replay #1 \(ClientHello, \d+ B\)": TLS handshake, open at the deadline, then still open/,
  );
});

test('pigeon probe: a Pigeon server is indistinguishable (random probes and replays of a real first packet)', async (t) => {
  const echo = await tcpEcho(t);
  for (const [m, handshakeTimeoutMs, wait] of [
    // The server's 60 s timer outlasts the prober: every probe is still open, and its FIN is answered.
    ['chacha20-ietf-poly1305', undefined, '1.5'],
    // A short timer inside the prober's wait: every probe is closed by FIN at the same time.
    ['2022-blake3-aes-128-gcm', 700, '2.5'],
  ] as const) {
    const spec = methodSpec(m);
    const pw = spec.edition === '2022' ? randomBytes(16).toString('base64') : 'probe-me';
    const server = await startServer({
      listen: makeAddress('127.0.0.1', 0),
      method: m,
      password: pw,
      allowPrivate: true,
      log: silentLog,
      ...(handshakeTimeoutMs ? { handshakeTimeoutMs } : {}),
    });
    t.after(() => server.close());
    const first = new StreamWriter(
      { spec, key: masterKey(spec, pw) },
      { kind: 'request', target: makeAddress('127.0.0.1', echo.port) },
    ).write(Buffer.from('GET / HTTP/1.1\r\nHost: example\r\n\r\n'));
    // The genuine connection first (the censor records it), then the probes replay it.
    assert.ok((await exchange(server.port, first)) > 0, `${m}: the genuine connection was answered`);
    const recorded = tempFile(t, 'first.hex', first.toString('hex'));
    const before = echo.accepted();
    const r = await pigeonProbe([
      `127.0.0.1:${server.port}`,
      '--timeout',
      wait,
      '--replay',
      recorded,
      '--json',
    ]);
    assert.equal(r.code, 0, `${m}: exit code ${r.code}\n${r.out}${r.err}`);
    const report = JSON.parse(r.out) as ProbeReport;
    t.diagnostic(`${m}: ${JSON.stringify(report.reactions)}`);
    assert.ok(report.indistinguishable, `${m}: ${report.reasons.join('; ')}`);
    assert.equal(report.probes.length, 5 + RANDOM_PROBE_LENGTHS.length);
    assert.ok(report.probes.every((p) => p.bytesBack === 0));
    assert.equal(report.probes.filter((p) => p.kind === 'replay').length, 1);
    assert.equal(echo.accepted(), before, `${m}: a replay reached the target`);
    const classes = Object.keys(report.reactions);
    assert.deepEqual(
      classes,
      [handshakeTimeoutMs ? 'fin before the deadline' : 'open at the deadline, then fin after our FIN'],
      m,
    );
  }
});

test('pigeon probe: a server that closes after reading 50 bytes is distinguishable (exit code 1)', async (t) => {
  const server = createServer((s) => {
    let got = 0;
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= 50) s.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const r = await pigeonProbe([`127.0.0.1:${port}`, '--timeout', '1']);
  assert.equal(r.code, 1, `exit code ${r.code}\n${r.out}${r.err}`);
  assert.match(r.out, /Verdict: DISTINGUISHABLE/);
  assert.match(r.out, /reactions differ by probe/);
  assert.match(r.out, /random 221 B\s+0 B back\s+fin before the deadline/);
  assert.match(r.out, /random 49 B\s+0 B back\s+open at the deadline/);
});

test('pigeon probe: bad arguments get one line and exit code 2', async () => {
  const r = await pigeonProbe(['nonsense']);
  assert.equal(r.code, 2);
  assert.match(r.err, /HOST:PORT/);
  assert.doesNotMatch(r.err, /\n\s+at /);
});
