// A client for a remote Pigeon management API, pinning its self-signed certificate by SHA-256
// (as Outline Manager does with certSha256) instead of trusting any certificate.
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ApiTarget {
  /** e.g. https://203.0.113.7:8081/SECRET */
  url: string;
  /** Uppercase hex SHA-256 of the server certificate, without colons; required for https. */
  certSha256?: string;
}

function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toUpperCase();
}

export function apiRequest<T>(target: ApiTarget, method: string, path: string, body?: unknown): Promise<T> {
  const base = new URL(target.url);
  const url = new URL(base.pathname.replace(/\/$/, '') + path, base);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        timeout: 15_000,
        // The certificate is self-signed: identity comes from the pinned fingerprint below.
        rejectUnauthorized: false,
        headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status >= 400) {
            let msg = text;
            try {
              msg = (JSON.parse(text) as { message?: string }).message ?? text;
            } catch {
              /* not JSON */
            }
            reject(new ApiError(status, `API ${method} ${path}: ${status} ${msg}`.trim()));
            return;
          }
          resolve((text ? JSON.parse(text) : undefined) as T);
        });
      },
    );
    req.on('socket', (s) => {
      s.once('secureConnect', () => {
        const want = target.certSha256 ? normalizeFingerprint(target.certSha256) : undefined;
        const got = normalizeFingerprint((s as TLSSocket).getPeerCertificate().fingerprint256 ?? '');
        if (!want || want !== got) {
          req.destroy(
            new ApiError(
              0,
              want
                ? `certificate fingerprint ${got} does not match --cert-sha256`
                : 'give the server certificate with --cert-sha256 (printed by `pigeon server`)',
            ),
          );
        }
      });
    });
    req.on('timeout', () => req.destroy(new ApiError(0, 'API request timed out')));
    req.on('error', (e) =>
      reject(e instanceof ApiError ? e : new ApiError(0, `cannot reach the API: ${e.message}`)),
    );
    req.end(payload);
  });
}
