// Plain DNS to the server an app asked, for names that go direct in TUN mode. Answering them from the
// resolver's own upstreams instead would loop on hosts whose resolv.conf points at a local stub
// (systemd-resolved on 127.0.0.53): the stub's upstream query enters the TUN, Pigeon asks the stub, and
// so on. The sockets are Pigeon's own, so they take the normal routes (src/tun/bypass.ts).
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

/** One query over UDP from a fresh socket (random port); the answer with the same ID, or undefined. */
export function forwardUdp(
  query: Buffer,
  ip: string,
  port: number,
  timeoutMs = 3000,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = createSocket(ip.includes(':') ? 'udp6' : 'udp4');
    let done = false;
    const finish = (answer: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.close();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('error', () => finish(undefined));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== port || msg.length < 12 || msg.readUInt16BE(0) !== query.readUInt16BE(0)) return;
      finish(msg);
    });
    sock.send(query, port, ip);
  });
}

/** One query over TCP (RFC 7766 framing); the answer, or undefined. */
export function forwardTcp(
  query: Buffer,
  ip: string,
  port: number,
  timeoutMs = 5000,
): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (answer: Buffer | undefined): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('error', () => finish(undefined));
    sock.on('close', () => finish(undefined));
    sock.on('connect', () => {
      const frame = Buffer.allocUnsafe(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      sock.write(frame);
    });
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length > 70_000) return finish(undefined);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
}
