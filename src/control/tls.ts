// The management API's self-signed certificate, made on first start and kept in the data directory.
// Clients pin it by its SHA-256 fingerprint (Outline's certSha256), not by a CA.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';

export interface ApiCertificate {
  /** PEM private key. */
  key: string;
  /** PEM certificate. */
  cert: string;
  /** The certificate's SHA-256 fingerprint: uppercase hex without colons (Outline's certSha256). */
  sha256: string;
}

export const CERT_FILE = 'api-cert.pem';
export const KEY_FILE = 'api-key.pem';
const TEN_YEARS_MS = 3652 * 86_400_000;

/** Uppercase hex SHA-256 of the DER certificate, without colons. */
export function certificateSha256(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toUpperCase();
}

function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file); // whole or not at all
}

/**
 * The certificate in `dir` (api-cert.pem, api-key.pem), or a new one made and saved there: EC P-256,
 * SHA-256 signed, valid ten years, CN and subjectAltName = `hostname` (an IP address or a DNS name).
 * A kept certificate is reused as it is (its fingerprint is what clients pinned), even after the
 * hostname changes. Async because selfsigned 5 only generates asynchronously (WebCrypto).
 */
export async function loadOrCreateCertificate(dir: string, hostname: string): Promise<ApiCertificate> {
  const certFile = join(dir, CERT_FILE);
  const keyFile = join(dir, KEY_FILE);
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = readFileSync(certFile, 'utf8');
    const key = readFileSync(keyFile, 'utf8');
    let matches = false;
    try {
      matches = new X509Certificate(cert).checkPrivateKey(createPrivateKey(key));
    } catch {
      matches = false;
    }
    if (!matches)
      throw new Error(
        `${certFile} and ${KEY_FILE} are unreadable or do not belong together; remove both to make a new certificate (clients must then pin the new fingerprint)`,
      );
    return { key, cert, sha256: certificateSha256(cert) };
  }

  const host = hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const notBeforeDate = new Date(Date.now() - 60 * 60_000); // an hour of slack for clients whose clock is behind
  const pems = await generate([{ name: 'commonName', value: host }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + TEN_YEARS_MS),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [isIP(host) ? { type: 7, ip: host } : { type: 2, value: host }] },
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writePrivate(keyFile, pems.private);
  writePrivate(certFile, pems.cert);
  return { key: pems.private, cert: pems.cert, sha256: certificateSha256(pems.cert) };
}
