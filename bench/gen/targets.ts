// The destinations the tunnels relay to, in a process of their own (it holds one socket per tunnelled
// connection, up to the 8,000 idle ones): a TCP echo server and a UDP echo server on the same port
// (ss-tunnel forwards TCP and UDP to one address), and a minimal HTTP/1.1 responder (fixed 200 reply,
// Connection: close). Loopback only. Sends {echo, http} over IPC once listening; exits with its parent.
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';

const HOST = '127.0.0.1';
const REPLY = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: HOST, backlog: 4096 }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

function bindUdp(sock: UdpSocket, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    sock.once('error', () => resolve(false));
    sock.bind(port, HOST, () => resolve(true));
  });
}

const sockets = new Set<Socket>();
function track(s: Socket): void {
  sockets.add(s);
  s.on('error', () => s.destroy());
  s.once('close', () => sockets.delete(s));
}

async function main(): Promise<void> {
  const http = createServer((s) => {
    track(s);
    let head = '';
    s.on('data', (d) => {
      head += d.toString('latin1');
      if (head.length > 8192) s.destroy();
      else if (head.includes('\r\n\r\n')) s.end(REPLY);
    });
  });
  const httpPort = await listen(http, 0);

  // TCP echo and UDP echo on one port number; retry if the UDP side is taken.
  for (let i = 0; i < 20; i++) {
    const echo = createServer((s) => {
      track(s);
      s.setNoDelay(true);
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
    });
    const port = await listen(echo, 0);
    const udp = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    if (await bindUdp(udp, port)) {
      udp.on('message', (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
      udp.on('error', () => {});
      process.send?.({ echo: port, http: httpPort });
      return;
    }
    udp.close();
    echo.close();
  }
  throw new Error('targets: no port free for both TCP and UDP');
}

process.on('message', (m: { cmd?: string }) => {
  if (m.cmd === 'count') process.send?.({ sockets: sockets.size });
});
process.on('disconnect', () => process.exit(0));
main().catch((e: unknown) => {
  process.stderr.write(`targets: ${String(e)}\n`);
  process.exit(1);
});
