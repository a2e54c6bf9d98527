// The floor of a Node.js design, for the latency figure: a plain TCP relay with no encryption, no
// protocol and no routing (accept, connect to the target, pipe both ways), run as two processes in a
// row like a tunnel's client and server. Whatever Pigeon's latency is above two of these is Pigeon's
// own; what these add over the direct baseline is Node's. Usage: relay.ts LISTEN_PORT TARGET_PORT
// (loopback only); prints "listening" once it accepts.
import { connect, createServer } from 'node:net';

const [listenPort, targetPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(targetPort)) {
  process.stderr.write('usage: relay.ts LISTEN_PORT TARGET_PORT\n');
  process.exit(2);
}
const server = createServer({ noDelay: true, allowHalfOpen: true }, (s) => {
  s.pause();
  const r = connect({ port: targetPort!, host: '127.0.0.1', noDelay: true, allowHalfOpen: true }, () => {
    s.pipe(r);
    r.pipe(s);
    s.resume();
  });
  r.on('error', () => s.destroy());
  s.on('error', () => r.destroy());
  r.on('close', () => s.destroy());
  s.on('close', () => r.destroy());
});
server.listen({ port: listenPort, host: '127.0.0.1', backlog: 4096 }, () =>
  process.stdout.write('listening\n'),
);
