// `npm start` and `npm test` entry: installs dependencies when missing, builds, then runs.
// Plain JavaScript with no dependencies, so it works in a fresh clone before `npm install`.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) {
    process.stderr.write(`bootstrap: cannot run ${cmd}: ${r.error.message}\n`);
    process.exit(1);
  }
  if (r.signal) process.kill(process.pid, r.signal);
  return r.status ?? 1;
}

function depsMissing() {
  const lock = join(root, 'package-lock.json');
  const marker = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(marker)) return true;
  return existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs + 1000;
}

if (depsMissing()) {
  process.stderr.write('bootstrap: installing dependencies (npm ci)…\n');
  if (run(npm, ['ci', '--no-audit', '--no-fund']) !== 0) process.exit(1);
}
// The native AEAD addon (native/aead.c): `npm install` builds it; a checkout that pulled it (or a
// change to it) after installing gets it built here. A failed build only means the slower JS path.
const addon = join(root, 'native/build/Release/pigeon_aead.node');
const addonSource = join(root, 'native/aead.c');
if (
  process.env.PIGEON_NO_NATIVE !== '1' &&
  existsSync(addonSource) &&
  (!existsSync(addon) || statSync(addonSource).mtimeMs > statSync(addon).mtimeMs)
) {
  run(process.execPath, [join(root, 'native/build.mjs')]);
}
if (run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']) !== 0) {
  process.exit(1);
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'start') {
  process.exit(run(process.execPath, [join(root, 'bin/pigeon.js'), 'server', ...rest]));
} else if (mode === 'test') {
  process.exit(run(process.execPath, [join(root, 'scripts/run-tests.mjs'), ...rest]));
} else {
  process.stderr.write('usage: node scripts/bootstrap.mjs start|test [args…]\n');
  process.exit(2);
}
