// Prometheus metrics: the exposition text after server events, own registry, key IDs only.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { register as globalRegistry } from 'prom-client';
import { PrometheusMetrics } from '../../src/control/metrics.js';
import type { ServerEvents } from '../../src/server/users.js';

/** The value of one sample line, e.g. sample(text, 'pigeon_connections_total{protocol="tcp"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('PrometheusMetrics', () => {
  test('is a ServerEvents sink; the text after some events', async () => {
    const m: ServerEvents & PrometheusMetrics = new PrometheusMetrics();
    m.bytes('1', 'in', 100);
    m.bytes('1', 'in', 50);
    m.bytes('1', 'out', 1000);
    m.bytes('2', 'out', 7);
    m.connectionOpened('1', 'tcp');
    m.connectionOpened('1', 'tcp');
    m.connectionOpened('2', 'udp');
    m.connectionClosed('1', 'tcp');
    m.authFailure('no-matching-key');
    m.authFailure('no-matching-key');
    m.authFailure('replay');
    m.connectionError('refused');
    m.connectionError('timeout');
    m.connectionError('timeout');
    const text = await m.text();

    assert.equal(sample(text, 'pigeon_key_bytes_total{key="1",direction="in"}'), 150);
    assert.equal(sample(text, 'pigeon_key_bytes_total{key="1",direction="out"}'), 1000);
    assert.equal(sample(text, 'pigeon_key_bytes_total{key="2",direction="out"}'), 7);
    assert.equal(sample(text, 'pigeon_key_bytes_total{key="2",direction="in"}'), undefined);
    assert.equal(sample(text, 'pigeon_active_connections{protocol="tcp"}'), 1);
    assert.equal(sample(text, 'pigeon_active_connections{protocol="udp"}'), 1);
    assert.equal(sample(text, 'pigeon_key_active_connections{key="1"}'), 1);
    assert.equal(sample(text, 'pigeon_key_active_connections{key="2"}'), 1);
    assert.equal(sample(text, 'pigeon_connections_total{protocol="tcp"}'), 2);
    assert.equal(sample(text, 'pigeon_connections_total{protocol="udp"}'), 1);
    assert.equal(sample(text, 'pigeon_auth_failures_total{reason="no-matching-key"}'), 2);
    assert.equal(sample(text, 'pigeon_auth_failures_total{reason="replay"}'), 1);
    assert.equal(sample(text, 'pigeon_connection_errors_total{kind="refused"}'), 1);
    assert.equal(sample(text, 'pigeon_connection_errors_total{kind="timeout"}'), 2);

    assert.match(text, /^# TYPE pigeon_key_bytes_total counter$/m);
    assert.match(text, /^# TYPE pigeon_active_connections gauge$/m);
    assert.match(text, /^# TYPE pigeon_key_active_connections gauge$/m);
    assert.match(text, /^# TYPE pigeon_connections_total counter$/m);
    assert.match(text, /^# TYPE pigeon_auth_failures_total counter$/m);
    assert.match(text, /^# TYPE pigeon_connection_errors_total counter$/m);
    // Default process metrics, prefixed.
    assert.match(text, /^pigeon_process_cpu_user_seconds_total /m);
    assert.match(text, /^pigeon_nodejs_heap_size_total_bytes /m);
    assert.doesNotMatch(text, /^process_cpu_user_seconds_total /m);
    assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
  });

  test('protocol series exist at zero before any connection; closing brings gauges back to zero', async () => {
    const m = new PrometheusMetrics();
    let text = await m.text();
    for (const p of ['tcp', 'udp']) {
      assert.equal(sample(text, `pigeon_active_connections{protocol="${p}"}`), 0);
      assert.equal(sample(text, `pigeon_connections_total{protocol="${p}"}`), 0);
    }
    m.connectionOpened('9', 'udp');
    m.connectionClosed('9', 'udp');
    text = await m.text();
    assert.equal(sample(text, 'pigeon_active_connections{protocol="udp"}'), 0);
    assert.equal(sample(text, 'pigeon_key_active_connections{key="9"}'), 0);
    assert.equal(sample(text, 'pigeon_connections_total{protocol="udp"}'), 1);
  });

  test('bytes() ignores zero and negative counts instead of throwing on the hot path', async () => {
    const m = new PrometheusMetrics();
    m.bytes('1', 'in', 0);
    m.bytes('1', 'in', -5);
    m.bytes('1', 'in', Number.NaN);
    m.bytes('1', 'in', 3);
    assert.equal(sample(await m.text(), 'pigeon_key_bytes_total{key="1",direction="in"}'), 3);
  });

  test('each instance has its own registry; the global one stays empty of pigeon metrics', async () => {
    const a = new PrometheusMetrics();
    const b = new PrometheusMetrics();
    a.bytes('1', 'in', 10);
    assert.equal(sample(await b.text(), 'pigeon_key_bytes_total{key="1",direction="in"}'), undefined);
    assert.notEqual(a.registry, b.registry);
    assert.doesNotMatch(await globalRegistry.metrics(), /pigeon_/);
  });

  test('labels carry key IDs, protocols, reasons and kinds only', async () => {
    const m = new PrometheusMetrics();
    m.bytes('42', 'out', 1);
    m.connectionOpened('42', 'tcp');
    m.authFailure('bad-salt');
    m.connectionError('unreachable');
    const text = await m.text();
    const labels = new Set<string>();
    for (const line of text.split('\n')) {
      if (
        !line.startsWith('pigeon_key_') &&
        !/^pigeon_(active|connections|auth|connection_errors)/.test(line)
      )
        continue;
      for (const [, name] of line.matchAll(/([a-z_]+)="/g)) labels.add(name!);
    }
    assert.deepEqual([...labels].sort(), ['direction', 'key', 'kind', 'protocol', 'reason']);
    assert.doesNotMatch(text, /\b\d{1,3}(\.\d{1,3}){3}\b/); // no IPv4 address anywhere
  });

  // About 70 ms here; going through prom-client's labelled children (which hash and validate their
  // labels on every inc) takes about 750 ms.
  test('bytes() per chunk is cheap: a million calls in well under half a second', () => {
    const m = new PrometheusMetrics();
    const t0 = performance.now();
    for (let i = 0; i < 1_000_000; i++) m.bytes(String(i & 7), i & 1 ? 'in' : 'out', 1400);
    const ms = performance.now() - t0;
    assert.ok(ms < 500, `${ms.toFixed(0)} ms`);
  });
});
