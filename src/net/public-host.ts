// Guessing the address that clients should use, when the server listens on a wildcard.
import { networkInterfaces } from 'node:os';

/** The first non-internal IPv4 address of this machine, else 127.0.0.1. */
export function publicHostGuess(listenHost: string): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return listenHost;
  const all = Object.values(networkInterfaces()).flatMap((l) => l ?? []);
  const v4 = all.find((i) => i.family === 'IPv4' && !i.internal);
  return v4?.address ?? '127.0.0.1';
}
