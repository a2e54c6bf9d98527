import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Admission } from '../../src/net/admission.js';

test('caps per address and in total; releasing makes room; releasing twice counts once', () => {
  const a = new Admission({ perAddress: 2, total: 3 });
  const r1 = a.admit('198.51.100.1');
  const r2 = a.admit('198.51.100.1');
  assert.ok(r1 && r2);
  assert.equal(a.admit('198.51.100.1'), undefined, 'third from one address');
  const r3 = a.admit('198.51.100.2');
  assert.ok(r3);
  assert.equal(a.admit('198.51.100.3'), undefined, 'fourth in total');
  r1();
  r1();
  assert.deepEqual(a.stats(), { pending: 2, addresses: 2, refused: 2 });
  assert.ok(a.admit('198.51.100.3'));
  r2();
  r3();
  assert.equal(a.stats().pending, 1);
});
