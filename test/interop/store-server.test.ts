// The multi-user server as a host runs it: keys made with `pigeon key`, served by `pigeon server
// --data DIR`, used by real ss-local (shadowsocks-libev) and pigeon clients; limits and pauses bite
// while the server runs; nothing is lost to kill -9; the remote API manages the same keys.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { parseSsUri } from '../../src/wire/sip002.js';
import { ensureBuilt } from '../helpers/pigeon.js';
import { startProcess, waitForLine, waitForTcpPort, type Proc } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { libevLocal } from '../helpers/peers.js';
import { socks5Connect } from '../helpers/socks5.js';
import { tcpEcho } from '../helpers/targets.js';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/pigeon.js');

function pigeonCli(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function addKey(dir: string, name: string, extra: string[]): { id: string; uri: string } {
  const r = pigeonCli(['key', 'add', name, '--data', dir, ...extra]);
  assert.equal(r.code, 0, r.err);
  const id = /Created key (\S+)/.exec(r.out)?.[1];
  const uri = /^ss:\/\/\S+$/m.exec(r.out)?.[0];
  assert.ok(id && uri, r.out);
  return { id, uri };
}

async function startServer(
  t: TestContext,
  dir: string,
  apiPort: number,
): Promise<{ proc: Proc; api: string; fp: string }> {
  const proc = startProcess(
    t,
    process.execPath,
    [
      BIN,
      'server',
      '--data',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--public-host',
      '127.0.0.1',
      '--allow-private',
      '--no-qr',
      '--api-port',
      String(apiPort),
    ],
    { name: 'pigeon server --data' },
  );
  const api = (await waitForLine(proc, /^Management API: /, 30_000)).replace('Management API: ', '').trim();
  const fp = (await waitForLine(proc, /^API certificate SHA-256: /, 5000))
    .replace('API certificate SHA-256: ', '')
    .trim();
  return { proc, api, fp };
}

/** Echoes `chunk` repeatedly until the connection dies; returns how many bytes came back. */
async function pumpUntilCut(s: Socket, chunk: Buffer, maxRounds: number): Promise<number> {
  let back = 0;
  s.on('data', (d: Buffer) => (back += d.length));
  s.on('error', () => undefined);
  s.resume();
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  for (let i = 0; i < maxRounds && !s.destroyed; i++) {
    s.write(chunk);
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
  s.destroy();
  return back;
}

test(
  'store mode: limits, pause, kill -9 and the remote API with real clients',
  { timeout: 120_000 },
  async (t) => {
    ensureBuilt();
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-store-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const echo = await tcpEcho(t);
    const alice = addKey(dir, 'alice', ['--method', 'aes-256-gcm', '--limit', '300KB']);
    const bob = addKey(dir, 'bob', ['--method', 'chacha20-ietf-poly1305']);
    const apiPort = await freePort('tcp');
    let server = await startServer(t, dir, apiPort);
    const a = parseSsUri(alice.uri);
    const b = parseSsUri(bob.uri);
    assert.equal(a.port, b.port, 'keys share one port');
    await waitForTcpPort(a.port, 10_000, server.proc);

    // Alice through real ss-local: works, then is cut off at her 300 KB limit.
    const aliceLocal = await libevLocal(t, {
      method: 'aes-256-gcm',
      password: a.password,
      serverPort: a.port,
    });
    const s1 = await socks5Connect(aliceLocal.port, '127.0.0.1', echo.port);
    const back = await pumpUntilCut(s1, randomBytes(20_000), 60);
    assert.ok(back >= 100_000, `cut too early: ${back} bytes echoed`);
    assert.ok(back <= 300_000, `not cut at the limit: ${back} bytes echoed`);
    const s2 = await socks5Connect(aliceLocal.port, '127.0.0.1', echo.port).catch(() => undefined);
    if (s2)
      assert.equal(await pumpUntilCut(s2, Buffer.from('again'), 3), 0, 'a key over its limit still works');

    // Bob works; paused from the CLI while the server runs, his open connection and new ones stop.
    const bobLocal = await libevLocal(t, {
      method: 'chacha20-ietf-poly1305',
      password: b.password,
      serverPort: b.port,
    });
    const s3 = await socks5Connect(bobLocal.port, '127.0.0.1', echo.port);
    let bobBack = 0;
    s3.on('data', (d: Buffer) => (bobBack += d.length));
    s3.on('error', () => undefined);
    s3.resume();
    s3.write('hello');
    for (let i = 0; i < 100 && bobBack < 5; i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(bobBack, 5);
    const paused = Date.now();
    assert.equal(pigeonCli(['key', 'pause', bob.id, '--data', dir]).code, 0);
    // The server closes the tunnel; ss-local passes that on as the end of the SOCKS stream.
    let ended = false;
    await new Promise<void>((r) => {
      if (s3.destroyed) r();
      s3.once('end', () => ((ended = true), r()));
      s3.once('close', () => ((ended = true), r()));
      setTimeout(r, 12_000);
    });
    assert.ok(ended, 'the open connection survived the pause');
    s3.destroy();
    assert.ok(Date.now() - paused < 10_000);
    const s4 = await socks5Connect(bobLocal.port, '127.0.0.1', echo.port).catch(() => undefined);
    if (s4) assert.equal(await pumpUntilCut(s4, Buffer.from('x'), 3), 0, 'a paused key still works');

    const list = pigeonCli(['key', 'list', '--data', dir]);
    assert.match(list.out, new RegExp(`^${alice.id}\\s+alice\\s+aes-256-gcm\\s+over limit`, 'm'));
    assert.match(list.out, new RegExp(`^${bob.id}\\s+bob\\s+chacha20-ietf-poly1305\\s+paused`, 'm'));

    // The remote API sees the same keys (certificate pinned by its fingerprint), and can resume Bob.
    const remote = pigeonCli(['key', 'list', '--api', server.api, '--cert-sha256', server.fp]);
    assert.equal(remote.code, 0, remote.err);
    assert.match(remote.out, /alice/);
    const wrongPin = pigeonCli(['key', 'list', '--api', server.api, '--cert-sha256', 'AA'.repeat(32)]);
    assert.notEqual(wrongPin.code, 0);
    assert.match(wrongPin.err, /fingerprint/);
    assert.equal(
      pigeonCli(['key', 'resume', bob.id, '--api', server.api, '--cert-sha256', server.fp]).code,
      0,
    );

    // kill -9, restart: every key is still there, Bob works again.
    server.proc.child.kill('SIGKILL');
    await server.proc.exited;
    server = await startServer(t, dir, apiPort);
    await waitForTcpPort(b.port, 10_000, server.proc);
    const after = pigeonCli(['key', 'list', '--data', dir]);
    assert.match(after.out, /alice/);
    assert.match(after.out, new RegExp(`^${bob.id}\\s+bob\\s+chacha20-ietf-poly1305\\s+active`, 'm'));
    const s5 = await socks5Connect(bobLocal.port, '127.0.0.1', echo.port);
    const got = await new Promise<string>((resolve) => {
      let text = '';
      s5.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.length >= 4) resolve(text);
      });
      s5.resume();
      s5.write('back');
      setTimeout(() => resolve(text), 5000);
    });
    s5.destroy();
    assert.equal(got, 'back');
  },
);
