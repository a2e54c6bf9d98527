// `npm install` step: builds the native AEAD addon (native/aead.c) with node-gyp. Never fails the
// install: without a compiler, headers or node-gyp, Pigeon runs its pure-JavaScript path (slower).
// PIGEON_NO_NATIVE=1 skips the build. Plain JavaScript with no dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));

function warn(msg) {
  process.stderr.write(`pigeon: native AEAD addon not built (${msg}); using the JavaScript path\n`);
  process.exit(0);
}

if (process.env.PIGEON_NO_NATIVE === '1') warn('PIGEON_NO_NATIVE=1');

// node-gyp: the copy npm passes to install scripts, else the one bundled with this npm.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
  join(dirname(process.execPath), 'node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((p) => existsSync(p));
if (!gyp) warn('node-gyp not found');

const args = [gyp, 'rebuild', '--release'];
// Build offline against the headers installed with this Node (Debian/NodeSource put them in
// /usr/include/node) unless a nodedir is configured; node-gyp otherwise downloads them.
const prefix = join(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include/node/node_api.h'))) {
  args.push(`--nodedir=${prefix}`);
}
const r = spawnSync(process.execPath, args, {
  cwd: dir,
  stdio: ['ignore', 'pipe', 'pipe'],
  encoding: 'utf8',
});
if (r.error || r.status !== 0) {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').slice(-15).join('\n'));
  warn(r.error ? r.error.message : `node-gyp exited with ${r.status}`);
}
process.stderr.write('pigeon: native AEAD addon built (native/build/Release/pigeon_aead.node)\n');
