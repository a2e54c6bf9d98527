import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPrivateAddress } from '../../src/net/address-guard.js';
import { resolveAllowed, DialError } from '../../src/net/dialer.js';
import { makeAddress } from '../../src/wire/socks-address.js';

test('loopback, private, link-local, CGNAT, multicast, reserved and metadata addresses are refused', () => {
  for (const ip of [
    '127.0.0.1',
    '127.8.9.10',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.254',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fc00::1',
    'fd00:ec2::254',
    'fe80::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:10.0.0.1',
    '::ffff:a9fe:a9fe', // 169.254.169.254 in hex form
    'not-an-ip',
  ]) {
    assert.equal(isPrivateAddress(ip), true, ip);
  }
});

test('public addresses are allowed', () => {
  for (const ip of [
    '1.1.1.1',
    '8.8.8.8',
    '172.32.0.1',
    '100.128.0.1',
    '149.154.167.50',
    '2001:4860:4860::8888',
    '2a0a:f280::1',
    '::ffff:1.1.1.1',
  ]) {
    assert.equal(isPrivateAddress(ip), false, ip);
  }
});

test('names that resolve to private addresses are refused unless allowed', async () => {
  // "localhost" resolves through the hosts file, so no DNS packet leaves the machine.
  await assert.rejects(
    resolveAllowed(makeAddress('localhost', 80), { allowPrivate: false }),
    (e: unknown) => {
      assert.ok(e instanceof DialError);
      assert.equal(e.kind, 'forbidden');
      return true;
    },
  );
  const ips = await resolveAllowed(makeAddress('localhost', 80), { allowPrivate: true });
  assert.ok(ips.length > 0);
  await assert.rejects(resolveAllowed(makeAddress('10.0.0.1', 80), { allowPrivate: false }), DialError);
});
