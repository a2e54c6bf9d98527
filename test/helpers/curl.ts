// Runs the real curl (Debian package curl) with proxy variables removed from its environment.
import { execFile } from 'node:child_process';
import { requireBinary } from './processes.js';

export interface CurlResult {
  status: number;
  body: Buffer;
}

const PROXY_ENV = /^(all|http|https|ftp|socks|no)_proxy$/i;

/**
 * `curl --silent --show-error --max-time 20 ARGS… URL`; resolves with the HTTP status and the body
 * (binary). Rejects with curl's stderr when curl fails.
 */
export function curl(args: string[], url: string): Promise<CurlResult> {
  requireBinary('curl', 'curl');
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !PROXY_ENV.test(k)));
  const marker = `--curl-status:`;
  const full = [
    '--silent',
    '--show-error',
    '--max-time',
    '20',
    ...args,
    '--write-out',
    `${marker}%{http_code}`,
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      full,
      { env, encoding: 'buffer', maxBuffer: 16 * 1024 * 1024, timeout: 30_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          const cmd = full.map((x) => (/[\s'"]/.test(x) ? `'${x}'` : x)).join(' ');
          reject(new Error(`curl ${cmd} failed: ${stderr.toString().trim() || err.message}`));
          return;
        }
        const at = stdout.lastIndexOf(marker);
        if (at < 0) {
          reject(new Error(`curl output has no status marker: ${stderr.toString()}`));
          return;
        }
        resolve({
          status: Number(stdout.subarray(at + marker.length).toString()),
          body: stdout.subarray(0, at),
        });
      },
    );
  });
}
