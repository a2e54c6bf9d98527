// The WireError code a call throws ('no error' if it returns); anything else thrown fails the test.
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';

export function wireCode(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (e) {
    assert.ok(e instanceof WireError, `expected WireError, got ${String(e)}`);
    return e.code;
  }
}
