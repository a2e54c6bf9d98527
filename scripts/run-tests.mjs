// The whole suite: type-check (src + tests), lint, then every test/**/*.test.ts under node:test.
// Usage: node scripts/run-tests.mjs [substring filter…]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const filters = process.argv.slice(2);

function step(name, cmd, args) {
  process.stdout.write(`\n== ${name}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    process.stderr.write(`\n${name} failed\n`);
    process.exit(r.status ?? 1);
  }
}

function findTests(dir) {
  const out = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(p));
    else if (e.name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out.sort();
}

const bin = (name) => join(root, 'node_modules', name);
if (filters.length === 0) {
  step('type-check', process.execPath, [bin('typescript/bin/tsc'), '-p', 'tsconfig.test.json']);
  step('lint', process.execPath, [bin('eslint/bin/eslint.js'), '.']);
  step('format', process.execPath, [bin('prettier/bin/prettier.cjs'), '--check', '--log-level', 'warn', '.']);
}
const files = findTests(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((s) => f.includes(s)),
);
if (files.length === 0) {
  process.stderr.write('no test files matched\n');
  process.exit(1);
}
step('tests', process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files]);
