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

test('with no options the server creates a key once and reuses it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-data-'));
  try {
    const first = async () => {
      const p = spawn(process.execPath, [BIN, 'server', '--listen', '127.0.0.1:0', '--no-qr'], {
        env: { ...process.env, PIGEON_DATA: dir },
      });
      try {
        return await new Promise<string>((resolve, reject) => {
          let buf = '';
          const timer = setTimeout(() => reject(new Error(`no ss:// line: ${buf}`)), 15_000);
          p.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            const m = /^ss:\/\/[^@]*/m.exec(buf);
            if (m) {
              clearTimeout(timer);
              resolve(m[0]);
            }
          });
        });
      } finally {
        p.kill('SIGTERM');
      }
    };
    const a = await first();
    const b = await first();
    assert.equal(a, b, 'the credentials changed between restarts');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
