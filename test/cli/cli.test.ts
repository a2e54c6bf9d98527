// The `pigeon` command as a person meets it: help works, bad flags and bad URIs get one clear line
// and a non-zero exit, never a stack trace; quick mode prints the URI on a line of its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSsUri } from '../../src/wire/sip002.js';

const BIN = join(import.meta.dirname, '../../bin/pigeon.js');

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 20_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function assertCleanError(r: { code: number | null; err: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0);
  assert.match(r.err, pattern);
  assert.doesNotMatch(r.err, /\n\s+at /, 'stack trace shown to the user');
}

test('--help lists the commands', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.out, /server/);
  assert.match(r.out, /client/);
});

test('bad flags and values are refused with a clear message', () => {
  assertCleanError(
    run(['server', '--listen', 'nonsense', '--method', 'aes-128-gcm', '--password', 'x']),
    /HOST:PORT/,
  );
  assertCleanError(
    run(['server', '--listen', '127.0.0.1:99999', '--method', 'aes-128-gcm', '--password', 'x']),
    /port/,
  );
  assertCleanError(
    run(['server', '--listen', '127.0.0.1:0', '--method', 'rc4-md5', '--password', 'x']),
    /unknown method "rc4-md5"/,
  );
  assertCleanError(
    run(['server', '--listen', '127.0.0.1:0', '--method', '2022-blake3-aes-128-gcm', '--password', 'short']),
    /base64 key of 16 bytes/,
  );
  assertCleanError(run(['server', '--method', 'aes-128-gcm']), /--method and --password go together/);
  assertCleanError(run(['client']), /--server/);
  assertCleanError(run(['client', '--server', 'http://example.com']), /ss:\/\//);
  assertCleanError(run(['client', '--server', 'ss://not-base64@@']), /invalid|ss:\/\//i);
  assertCleanError(
    run(['client', '--server', 'ss://YWVzLTEyOC1nY206dGVzdA@127.0.0.1:1', '--forward', '1:2']),
    /LHOST:LPORT=DHOST:DPORT/,
  );
  assertCleanError(run(['frobnicate']), /unknown command/);
});

test('a port already in use is reported, not thrown', async () => {
  const net = await import('node:net');
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    const r = run([
      'server',
      '--listen',
      `127.0.0.1:${port}`,
      '--method',
      'aes-128-gcm',
      '--password',
      'x',
      '--no-qr',
    ]);
    assertCleanError(r, /address already in use/);
    assert.equal(r.code, 1);
  } finally {
    srv.close();
  }
});

test('quick mode prints a URI line that parses back to the same server', async () => {
  const psk = Buffer.alloc(16, 3).toString('base64');
  const p = spawn(process.execPath, [
    BIN,
    'server',
    '--listen',
    '127.0.0.1:0',
    '--method',
    '2022-blake3-aes-128-gcm',
    '--password',
    psk,
    '--no-qr',
  ]);
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`no ss:// line in: ${buf}`)), 15_000);
      p.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const m = /^ss:\/\/.*$/m.exec(buf);
        if (m) {
          clearTimeout(timer);
          resolve(m[0]);
        }
      });
    });
    const u = parseSsUri(line);
    assert.equal(u.method, '2022-blake3-aes-128-gcm');
    assert.equal(u.password, psk);
    assert.equal(u.host, '127.0.0.1');
    assert.ok(u.port > 0);
  } finally {
    p.kill('SIGTERM');
  }
});

test('store mode creates the first key once and serves the same key after a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-data-'));
  try {
    const start = async () => {
      const p = spawn(
        process.execPath,
        [BIN, 'server', '--data', dir, '--listen', '127.0.0.1:0', '--no-qr'],
        {
          env: { ...process.env },
        },
      );
      try {
        let buf = '';
        const uri = await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ss:// line: ${buf}`)), 30_000);
          p.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            const m = /^ss:\/\/\S+$/m.exec(buf);
            if (m) {
              clearTimeout(timer);
              resolve(m[0]);
            }
          });
        });
        assert.match(buf, /^Management API: https:\/\/\S+\/\S{16,}$/m);
        assert.match(buf, /^API certificate SHA-256: [0-9A-F]{64}$/m);
        return { uri, created: /Created the first access key/.test(buf) };
      } finally {
        p.kill('SIGTERM');
      }
    };
    const a = await start();
    const b = await start();
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(a.uri, b.uri, 'the key changed between restarts');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('key commands: add with limit and expiry, list, show, pause, resume, remove; unknown IDs are errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-keys-'));
  try {
    const add = run(['key', 'add', 'mum', '--data', dir, '--limit', '10GB', '--expires', '30d']);
    assert.equal(add.code, 0, add.err);
    const id = /Created key (\S+)/.exec(add.out)![1]!;
    assert.match(add.out, /^ss:\/\/\S+$/m);
    const list = run(['key', 'list', '--data', dir]);
    assert.match(list.out, /^ID\s+NAME\s+METHOD\s+STATUS/m);
    assert.match(list.out, new RegExp(`^${id}\\s+mum\\s+\\S+\\s+active\\s+0 B\\s+10\\.0 GB/30d`, 'm'));
    const show = run(['key', 'show', id, '--data', dir]);
    assert.match(show.out, /^ss:\/\/\S+$/m);
    assert.match(show.out, /▄|█/, 'QR code');
    assert.equal(run(['key', 'pause', id, '--data', dir]).code, 0);
    assert.match(run(['key', 'list', '--data', dir]).out, new RegExp(`^${id}\\s+mum\\s+\\S+\\s+paused`, 'm'));
    assert.equal(run(['key', 'resume', id, '--data', dir]).code, 0);
    assert.equal(run(['key', 'remove', id, '--data', dir]).code, 0);
    assertCleanError(run(['key', 'show', id, '--data', dir]), /not found/);
    assertCleanError(run(['key', 'add', 'x', '--data', dir, '--limit', 'lots']), /size like 10GB/);
    assertCleanError(run(['key', 'add', 'x', '--data', dir, '--expires', 'yesterday']), /duration like 30d/);
    assertCleanError(run(['key', 'list', '--api', 'http://x']), /https/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
