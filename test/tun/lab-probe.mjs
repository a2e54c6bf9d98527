// What an app on the TUN lab's client host does (plain JavaScript: it starts fast, no TypeScript).
//   node lab-probe.mjs udp HOST PORT       one datagram, prints the reply (exit 1 on timeout)
//   node lab-probe.mjs dns NAME            resolve4 through the system resolver (resolv.conf)
//   node lab-probe.mjs dns-tcp SERVER NAME one A query over TCP to SERVER:53
// Every probe gives up after 4 s.
import { createSocket } from 'node:dgram';
import { promises as dns } from 'node:dns';
import { connect } from 'node:net';

const [what, a, b] = process.argv.slice(2);
setTimeout(() => {
  console.log('TIMEOUT');
  process.exit(1);
}, 4000);

function aQuery(name) {
  const labels = name.split('.').flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]);
  return Buffer.concat([
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...labels,
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
}

if (what === 'udp') {
  const s = createSocket(a.includes(':') ? 'udp6' : 'udp4');
  s.on('message', (m) => {
    console.log(m.toString('latin1'));
    process.exit(0);
  });
  s.send(Buffer.from('ping'), Number(b), a);
} else if (what === 'dns') {
  dns.resolve4(a).then(
    (ips) => {
      console.log(ips.join(','));
      process.exit(0);
    },
    (e) => {
      console.log(`ERROR ${e.code}`);
      process.exit(1);
    },
  );
} else if (what === 'dns-tcp') {
  const q = aQuery(b);
  const sock = connect(53, a, () =>
    sock.write(Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q])),
  );
  let buf = Buffer.alloc(0);
  sock.on('data', (c) => {
    buf = Buffer.concat([buf, c]);
    if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
    const msg = buf.subarray(2);
    // The last answer's RDATA is the address (the fake zone gives one A record).
    const ancount = msg.readUInt16BE(6);
    console.log(ancount > 0 ? [...msg.subarray(msg.length - 4)].join('.') : `ERROR rcode ${msg[3] & 0x0f}`);
    process.exit(ancount > 0 ? 0 : 1);
  });
  sock.on('error', (e) => {
    console.log(`ERROR ${e.code}`);
    process.exit(1);
  });
} else {
  console.error('usage: lab-probe.mjs udp HOST PORT | dns NAME | dns-tcp SERVER NAME');
  process.exit(2);
}
