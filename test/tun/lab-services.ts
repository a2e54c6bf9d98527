// The destination host of the TUN lab (run inside its network namespace by test/tun/tun.test.ts):
//   HTTP on HOST:8080 and [HOST6]:8080      answers "hello from dest, you are ADDRESS"
//   UDP echo on HOST:7007 and [HOST6]:7007  answers "echo from ADDRESS: PAYLOAD"
//   UDP on HOST:7008 answers from another port (7009): "other port" (what a full-cone NAT must pass)
//   DNS over HTTPS on HOST:8443 (the fake zone of the DNS tests), printing "DOH name" per query
//   plain DNS on HOST:53 (UDP and TCP; another zone: SYSTEM_V4.x), printing "PLAIN name" per query
// Usage: node --import tsx test/tun/lab-services.ts HOST HOST6 CA_FILE. Prints READY when all listen.
import { createServer } from 'node:http';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { generate } from 'selfsigned';
import { DOH_V4, SYSTEM_V4, makeZone, startFakeDns, startFakeDoh } from '../e2e/dns-leak-scenario.js';

export const HTTP_PORT = 8080;
export const ECHO_PORT = 7007;
export const CONE_PORT = 7008;
export const DOH_PORT = 8443;

async function serve(host: string): Promise<void> {
  const http = createServer((req, res) => {
    res.end(`hello from dest, you are ${req.socket.remoteAddress}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(HTTP_PORT, host, () => resolve());
  });
  const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', (msg, rinfo) => {
    udp.send(Buffer.from(`echo from ${rinfo.address}: ${msg.toString('latin1')}`), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(ECHO_PORT, host, () => resolve());
  });
}

async function main(host: string, host6: string, caFile: string): Promise<void> {
  await serve(host);
  await serve(host6);
  const cone = createSocket('udp4');
  const other = createSocket('udp4');
  cone.on('message', (_msg, rinfo) => other.send(Buffer.from('other port'), rinfo.port, rinfo.address));
  for (const [sock, port] of [
    [cone, CONE_PORT],
    [other, CONE_PORT + 1],
  ] as const) {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(port, host, () => resolve());
    });
  }
  const pems = await generate([{ name: 'commonName', value: host }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: host }] }],
  });
  const cert = { key: pems.private, cert: pems.cert };
  writeFileSync(caFile, cert.cert);
  const zone = makeZone(DOH_V4, '2001:db8:d');
  const doh = await startFakeDoh(
    (q) => {
      console.log(`DOH ${q.name.toLowerCase()}`);
      return zone(q);
    },
    cert,
    host,
  );
  if (doh.port === 0) throw new Error('DoH did not listen');
  // startFakeDoh listens on a free port; forward the fixed one to it within this process.
  const { createServer: tcpServer, connect } = await import('node:net');
  const fwd = tcpServer((s) => {
    const up = connect(doh.port, host);
    s.pipe(up).pipe(s);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    fwd.once('error', reject);
    fwd.listen(DOH_PORT, host, () => resolve());
  });
  const plainZone = makeZone(SYSTEM_V4, '2001:db8:5');
  await startFakeDns(
    (q) => {
      console.log(`PLAIN ${q.name.toLowerCase()}`);
      return plainZone(q);
    },
    host,
    53,
  );
  console.log('READY');
}

const [host, host6, caFile] = process.argv.slice(2);
if (!host || !host6 || !caFile) {
  console.error('usage: lab-services.ts HOST HOST6 CA_FILE');
  process.exit(2);
}
// Never outlives its test by long.
setTimeout(() => process.exit(0), 10 * 60_000).unref();
main(host, host6, caFile).catch((e: unknown) => {
  console.error(`lab-services failed: ${(e as Error).stack ?? String(e)}`);
  process.exit(1);
});
