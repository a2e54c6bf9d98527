// `pigeon server --trojan` and `pigeon server --ws PATH` in quick mode, used by `pigeon client` from the
// URI they print, with curl through the client; a browser-like request to the Trojan port gets the
// cover website; and the flags that do not go together are refused with one clear line.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ensureBuilt, pigeonClient } from '../helpers/pigeon.js';
import { startProcess, waitForLine } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { httpTarget } from '../helpers/targets.js';
import { curl } from '../helpers/curl.js';

const BIN = join(import.meta.dirname, '../../bin/pigeon.js');

async function quickServer(t: TestContext, args: string[], uriPattern: RegExp): Promise<string> {
  ensureBuilt();
  const port = await freePort('both');
  const proc = startProcess(
    t,
    process.execPath,
    [BIN, 'server', '--listen', `127.0.0.1:${port}`, '--allow-private', '--no-qr', ...args],
    { name: 'pigeon server' },
  );
  return (await waitForLine(proc, uriPattern, 20_000)).trim();
}

async function curlThrough(t: TestContext, uri: string) {
  const web = await httpTarget(t);
  const client = await pigeonClient(t, { uri });
  const r = await curl(
    ['--socks5-hostname', `127.0.0.1:${client.port}`],
    `http://127.0.0.1:${web.port}/hello`,
  );
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), web.helloBody);
  return web;
}

test(
  'pigeon server --trojan: a pinned self-signed URI that pigeon client uses; others get the cover site',
  { timeout: 60_000 },
  async (t) => {
    const uri = await quickServer(
      t,
      ['--trojan', '--password', randomBytes(9).toString('base64url')],
      /^trojan:\/\//,
    );
    assert.match(uri, /[?&]pcs=[0-9A-F]{64}/, 'the self-signed certificate is pinned in the URI');
    await curlThrough(t, uri);
    const port = /@127\.0\.0\.1:(\d+)/.exec(uri)![1]!;
    const page = await curl(['--insecure'], `https://127.0.0.1:${port}/`);
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<html/i, 'a browser sees an ordinary web page');
  },
);

test(
  'pigeon server --ws: an ss:// URI with v2ray-plugin that pigeon client uses',
  { timeout: 60_000 },
  async (t) => {
    const uri = await quickServer(
      t,
      ['--method', 'chacha20-ietf-poly1305', '--password', 'pw-ws', '--ws', '/chat'],
      /^ss:\/\//,
    );
    assert.match(uri, /plugin=v2ray-plugin%3Bhost%3D[^&#]*%3Bpath%3D%2Fchat/);
    assert.doesNotMatch(uri, /prefix=/, 'nothing to disguise inside a WebSocket');
    await curlThrough(t, uri);
  },
);

test('server carrier flags that do not go together are refused with one line', () => {
  ensureBuilt();
  const cases: [string[], RegExp][] = [
    [['--trojan'], /--trojan needs --password/],
    [['--trojan', '--password', 'x', '--method', 'aes-128-gcm'], /--trojan goes with --password alone/],
    [['--ws', '/x'], /--ws is for quick mode/],
    [['--method', 'aes-128-gcm', '--password', 'x', '--ws', 'x'], /the path starts with "\/"/],
    [['--cover', 'https://example.org'], /--cover goes with --trojan/],
    [['--trojan', '--password', 'x', '--tls-cert', '/nonexistent'], /--tls-cert and --tls-key go together/],
    [
      ['--trojan', '--password', 'x', '--tls-cert', '/nonexistent', '--tls-key', '/nonexistent'],
      /cannot read \/nonexistent/,
    ],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, 'server', '--listen', '127.0.0.1:0', ...args], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, re, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
