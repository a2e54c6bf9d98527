// Packet capture for tests that must see the wire: tcpdump (Debian package tcpdump) on a loopback
// interface, optionally inside a network namespace, and a reader for the pcap files it writes.
// Capturing needs root; in CI a missing tool or privilege is a failure, elsewhere a skip.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { startProcess, waitForLine } from './processes.js';

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** True when root and the programs are there; otherwise skips the test (outside CI) or throws (in CI). */
export function requireCapture(t: TestContext, what: string, programs = ['tcpdump']): boolean {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const cmd of programs) if (!have(cmd)) missing.push(`the "${cmd}" program`);
  if (missing.length === 0) return true;
  const why = `${what} needs ${missing.join(', ')} (packet capture)`;
  if (process.env.CI && !/^(0|false)$/i.test(process.env.CI))
    throw new Error(`${why}; in CI this is a failure, not a skip`);
  t.skip(`${why}; skipped outside CI`);
  return false;
}

export interface Capture {
  /** Stops tcpdump once the file has stopped growing; returns the pcap bytes. */
  stop(): Promise<Buffer>;
}

/** tcpdump -i lo with a BPF filter (e.g. "tcp port 8388"), in `netns` when given. */
export async function startCapture(t: TestContext, o: { filter?: string; netns?: string }): Promise<Capture> {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-capture-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'capture.pcap');
  // --immediate-mode: packets reach tcpdump at once, not in TPACKET_V3 blocks that a stop discards.
  const args = [
    '-i',
    'lo',
    '-n',
    '-s',
    '0',
    '-B',
    '32768',
    '--immediate-mode',
    '-U',
    '-Z',
    'root',
    '-w',
    file,
    ...(o.filter ? [o.filter] : []),
  ];
  const proc = o.netns
    ? startProcess(t, 'ip', ['netns', 'exec', o.netns, 'tcpdump', ...args], { name: 'tcpdump' })
    : startProcess(t, 'tcpdump', args, { name: 'tcpdump' });
  await waitForLine(proc, /listening on lo/, 15_000);
  return {
    async stop() {
      let size = -1;
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const now = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
        if (now === size && now > 24) break;
        size = now;
      }
      proc.child.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        proc.exited,
        new Promise<null>((r) => (timer = setTimeout(() => r(null), 10_000))),
      ]);
      clearTimeout(timer);
      assert.ok(stopped, 'tcpdump did not stop within 10 s of SIGINT');
      return readFileSync(file);
    },
  };
}

export interface Packet {
  /** The whole frame, for searches of the raw bytes. */
  frame: Buffer;
  ip?: { v6: boolean; src: string; dst: string; proto: number };
  tcp?: { srcPort: number; dstPort: number; seq: number; flags: number; payload: Buffer };
  udp?: { srcPort: number; dstPort: number; payload: Buffer };
}

const ipv4 = (b: Buffer, o: number): string => [...b.subarray(o, o + 4)].join('.');
const ipv6 = (b: Buffer, o: number): string =>
  Array.from({ length: 8 }, (_, i) => b.readUInt16BE(o + i * 2).toString(16)).join(':');

/** The frames of a pcap file with Ethernet framing (tcpdump -i lo), with IP, TCP and UDP parsed. */
export function readPcap(file: Buffer): Packet[] {
  assert.ok(file.length >= 24, 'the capture file has no header');
  const magic = file.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const be = file.readUInt32BE(0) === 0xa1b2c3d4 || file.readUInt32BE(0) === 0xa1b23c4d;
  assert.ok(le || be, `not a pcap file (magic ${magic.toString(16)})`);
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  assert.equal(u32(20), 1, 'expected Ethernet link type (tcpdump -i lo)');
  const out: Packet[] = [];
  for (let o = 24; o + 16 <= file.length && out.length < 1_000_000;) {
    const len = u32(o + 8);
    const frame = file.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    const p: Packet = { frame };
    out.push(p);
    const ethertype = frame.length >= 14 ? frame.readUInt16BE(12) : 0;
    let l4 = -1;
    let end = frame.length;
    if (ethertype === 0x0800 && frame.length >= 34) {
      l4 = 14 + (frame[14]! & 0x0f) * 4;
      end = Math.min(frame.length, 14 + frame.readUInt16BE(16));
      p.ip = { v6: false, src: ipv4(frame, 26), dst: ipv4(frame, 30), proto: frame[23]! };
    } else if (ethertype === 0x86dd && frame.length >= 54) {
      l4 = 54;
      end = Math.min(frame.length, 54 + frame.readUInt16BE(18));
      p.ip = { v6: true, src: ipv6(frame, 22), dst: ipv6(frame, 38), proto: frame[20]! };
    }
    if (p.ip?.proto === 6 && frame.length >= l4 + 20) {
      const dataOffset = (frame[l4 + 12]! >> 4) * 4;
      p.tcp = {
        srcPort: frame.readUInt16BE(l4),
        dstPort: frame.readUInt16BE(l4 + 2),
        seq: frame.readUInt32BE(l4 + 4),
        flags: frame[l4 + 13]!,
        payload: frame.subarray(l4 + dataOffset, end),
      };
    } else if (p.ip?.proto === 17 && frame.length >= l4 + 8) {
      p.udp = {
        srcPort: frame.readUInt16BE(l4),
        dstPort: frame.readUInt16BE(l4 + 2),
        payload: frame.subarray(l4 + 8, end),
      };
    }
  }
  return out;
}

/**
 * The first data-carrying TCP segment of each connection to `serverPort`, in the order the connections
 * were opened (their SYNs); a client port used again later starts a new connection.
 */
export function firstDataSegments(
  packets: Packet[],
  serverPort: number,
): { clientPort: number; first?: Buffer }[] {
  const conns: { clientPort: number; first?: Buffer }[] = [];
  const open = new Map<number, { clientPort: number; first?: Buffer }>();
  const SYN = 0x02;
  const ACK = 0x10;
  for (const p of packets) {
    if (!p.tcp || p.tcp.dstPort !== serverPort) continue;
    if (p.tcp.flags & SYN && !(p.tcp.flags & ACK)) {
      const c = { clientPort: p.tcp.srcPort };
      conns.push(c);
      open.set(p.tcp.srcPort, c);
      continue;
    }
    const c = open.get(p.tcp.srcPort);
    if (c && !c.first && p.tcp.payload.length > 0) c.first = Buffer.from(p.tcp.payload);
  }
  return conns;
}
