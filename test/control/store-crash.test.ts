// kill -9 recovery: a child process writes keys and usage to the store and is killed mid-stream;
// every key it created must survive, and at most about a second of usage may be lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/control/sqlite-store.js';

const WRITER = join(import.meta.dirname, 'fixtures', 'crash-writer.ts');
const RUN_MS = 1500; // how long the child adds usage before the kill
const LOSS_MS = 1000; // usage the store may lose to a kill (flushes run every 200 ms)

test('kill -9: no key is lost, and at most ~1 s of usage', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));

  const keyIds: string[] = [];
  const reports: { added: number; at: number }[] = [];
  let stderr = '';
  let rest = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    const lines = (rest + d).split('\n');
    rest = lines.pop()!;
    for (const line of lines) {
      const key = /^key (\d+)$/.exec(line);
      if (key) keyIds.push(key[1]!);
      const m = /^added (\d+) (\d+)$/.exec(line);
      if (m) reports.push({ added: Number(m[1]), at: Number(m[2]) });
    }
  });
  // 'close' comes after the last of stdout has been read, unlike 'exit'.
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  let exitedEarly = false;
  void closed.then(() => (exitedEarly = true));

  const deadline = Date.now() + 20_000; // tsx may take a while to start on a slow machine
  const started = () => reports.length > 0 && Date.now() - reports[0]!.at >= RUN_MS;
  while (!started() && !exitedEarly && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!exitedEarly, `the writer exited by itself:\n${stderr}`);
  assert.ok(started(), `the writer did not get going within 20 s:\n${stderr}`);
  child.kill('SIGKILL');
  const killed = await Promise.race([
    closed,
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5000).unref()),
  ]);
  assert.notEqual(killed, 'timeout', 'the writer did not die within 5 s of SIGKILL');
  assert.equal(child.signalCode, 'SIGKILL');

  const store = openStore(dir, { flushIntervalMs: 0 });
  t.after(() => store.close());
  assert.deepEqual(
    keyIds,
    Array.from({ length: 50 }, (_, i) => String(i + 1)),
  );
  assert.deepEqual(
    store.listKeys().map((k) => k.id),
    keyIds,
    'every key the writer created is there',
  );

  const last = reports.at(-1)!;
  const saved = [...store.usageAll().values()].reduce((sum, u) => sum + u.total, 0);
  const floor = reports.findLast((r) => r.at <= last.at - LOSS_MS)?.added ?? 0;
  t.diagnostic(`stored ${saved} of ${last.added} bytes added; floor ${floor}`);
  assert.ok(saved > 0, 'some usage was flushed before the kill');
  assert.ok(saved <= last.added, `more usage stored than was added: ${saved} > ${last.added}`);
  assert.ok(
    saved >= floor,
    `lost more than ${LOSS_MS} ms of usage: stored ${saved}, had added ${floor} by ${LOSS_MS} ms before the end`,
  );
});
