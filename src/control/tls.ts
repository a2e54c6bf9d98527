// The management API's self-signed certificate, made on first start and kept in the data directory.
// Clients pin it by its SHA-256 fingerprint (Outline's certSha256), not by a CA.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

export interface ApiCertificate {
  key: string;
  cert: string;
  /** Uppercase hex without colons. */
  sha256: string;
}

function fingerprint(cert: string): string {
  return new X509Certificate(cert).fingerprint256.replace(/:/g, '').toUpperCase();
}

export async function loadOrCreateCertificate(dir: string, hostname: string): Promise<ApiCertificate> {
  const certFile = join(dir, 'api-cert.pem');
  const keyFile = join(dir, 'api-key.pem');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    return { cert, key: readFileSync(keyFile, 'utf8'), sha256: fingerprint(cert) };
  }
  const host = hostname || 'localhost';
  const altName = isIP(host) ? { type: 7 as const, ip: host } : { type: 2 as const, value: host };
  const notBeforeDate = new Date();
  const notAfterDate = new Date(notBeforeDate.getTime() + 10 * 365 * 86_400_000);
  const pems = await generate([{ name: 'commonName', value: host }], {
    keyType: 'ec',
    curve: 'P-256',
    notBeforeDate,
    notAfterDate,
    extensions: [{ name: 'subjectAltName', altNames: [altName] }],
  });
  writeFileSync(keyFile, pems.private, { mode: 0o600 });
  writeFileSync(certFile, pems.cert, { mode: 0o600 });
  return { cert: pems.cert, key: pems.private, sha256: fingerprint(pems.cert) };
}
