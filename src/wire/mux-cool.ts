// v2ray's Mux.Cool framing (v2ray-core common/mux/frame.go), which shadowsocks' v2ray-plugin puts inside
// its WebSocket by default (`mux=1`): many streams ("sessions") on one carrier. Every frame is
//   u16 BE metadata length (≤ 512) | metadata | [u16 BE data length | data]   (data iff option & 0x01)
// metadata = u16 session id | status (1 new, 2 keep, 3 end, 4 keep-alive) | option (0x01 data, 0x02 error)
//            and, for `new` only: network (1 TCP, 2 UDP) | u16 port | type (1 IPv4, 2 domain, 3 IPv6) | address
// Pure codec: bytes in, frames out.
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import { ByteQueue } from './byte-queue.js';
import { bytesToIpv6, ipv6ToBytes, type Address } from './socks-address.js';

export type MuxStatus = 'new' | 'keep' | 'end' | 'keep-alive';

export interface MuxTarget {
  network: 'tcp' | 'udp';
  address: Address;
}

export interface MuxFrame {
  session: number;
  status: MuxStatus;
  /** Option 0x02: the session ended because of an error. */
  error?: boolean;
  /** `new` frames only. */
  target?: MuxTarget;
  /** Option 0x01: the frame carries data (possibly empty). */
  data?: Buffer;
}

const STATUS_CODE: Record<MuxStatus, number> = { new: 1, keep: 2, end: 3, 'keep-alive': 4 };
const STATUS_NAME: readonly (MuxStatus | undefined)[] = [undefined, 'new', 'keep', 'end', 'keep-alive'];
const OPTION_DATA = 0x01;
const OPTION_ERROR = 0x02;
/** v2ray refuses longer metadata. */
export const MAX_MUX_METADATA = 512;
/** The data length field is 16 bits. */
export const MAX_MUX_DATA = 0xffff;

function bad(what: string): never {
  throw new WireError('bad-mux', `invalid mux.cool frame: ${what}`);
}

function encodeTarget(t: MuxTarget): Buffer {
  const a = t.address;
  let addr: Buffer;
  if (a.kind === 'ipv4' && isIPv4(a.host)) addr = Buffer.from([1, ...a.host.split('.').map(Number)]);
  else if (a.kind === 'ipv6' && isIPv6(a.host)) addr = Buffer.concat([Buffer.from([3]), ipv6ToBytes(a.host)]);
  else {
    const name = Buffer.from(a.host, 'utf8');
    if (name.length === 0 || name.length > 255) bad('domain name must be 1..255 bytes');
    addr = Buffer.concat([Buffer.from([2, name.length]), name]);
  }
  const head = Buffer.alloc(3);
  head[0] = t.network === 'tcp' ? 1 : 2;
  head.writeUInt16BE(a.port, 1);
  return Buffer.concat([head, addr]);
}

/** Encodes one frame. Data longer than MAX_MUX_DATA must be split by the caller. */
export function encodeMuxFrame(f: MuxFrame): Buffer {
  const target = f.status === 'new' ? encodeTarget(f.target ?? bad('a new frame needs a target')) : undefined;
  const metaLen = 4 + (target?.length ?? 0);
  const dataLen = f.data?.length ?? 0;
  if (dataLen > MAX_MUX_DATA) bad(`data of ${dataLen} bytes does not fit one frame`);
  const head = Buffer.allocUnsafe(2 + metaLen + (f.data ? 2 : 0));
  head.writeUInt16BE(metaLen, 0);
  head.writeUInt16BE(f.session, 2);
  head[4] = STATUS_CODE[f.status];
  head[5] = (f.data ? OPTION_DATA : 0) | (f.error ? OPTION_ERROR : 0);
  if (target) target.copy(head, 6);
  if (f.data) head.writeUInt16BE(dataLen, 2 + metaLen);
  return f.data && dataLen ? Buffer.concat([head, f.data]) : head;
}

function decodeMetadata(m: Buffer): MuxFrame {
  if (m.length < 4) bad(`metadata of ${m.length} bytes`);
  const status = STATUS_NAME[m[2]!];
  if (!status) bad(`unknown status ${m[2]}`);
  const option = m[3]!;
  const f: MuxFrame = { session: m.readUInt16BE(0), status };
  if (option & OPTION_ERROR) f.error = true;
  if (status !== 'new') return f;
  if (m.length < 8) bad('new frame without a target');
  const network = m[4] === 1 ? 'tcp' : m[4] === 2 ? 'udp' : bad(`unknown network ${m[4]}`);
  const port = m.readUInt16BE(5);
  const type = m[7];
  let address: Address;
  if (type === 1 && m.length >= 12) address = { kind: 'ipv4', host: [...m.subarray(8, 12)].join('.'), port };
  else if (type === 3 && m.length >= 24)
    address = { kind: 'ipv6', host: bytesToIpv6(m.subarray(8, 24)), port };
  else if (type === 2 && m.length >= 9 && m[8]! > 0 && m.length >= 9 + m[8]!)
    address = { kind: 'domain', host: m.subarray(9, 9 + m[8]!).toString('utf8'), port };
  else bad(`bad target address (type ${type})`);
  f.target = { network, address };
  return f;
}

/**
 * Whether a carrier that starts with `b` speaks mux.cool (a `new` frame) rather than carrying a stream
 * directly. A random Shadowsocks salt passes these checks with a probability of about 2^-37.
 */
export function sniffMuxCool(b: Buffer): 'mux' | 'plain' | 'need-more' {
  if (b.length < 10) return 'need-more';
  const metaLen = b.readUInt16BE(0);
  const ok =
    metaLen >= 8 &&
    metaLen <= MAX_MUX_METADATA &&
    b[4] === 1 && // new
    (b[5]! & ~(OPTION_DATA | OPTION_ERROR)) === 0 &&
    (b[6] === 1 || b[6] === 2) &&
    b[9]! >= 1 &&
    b[9]! <= 3;
  return ok ? 'mux' : 'plain';
}

/** Incremental parser: push carrier bytes, get whole frames (data as subarrays, zero-copy when possible). */
export class MuxFrameParser {
  private readonly queue = new ByteQueue();
  private frame: MuxFrame | undefined;
  private need = 2;
  private state: 'meta-len' | 'meta' | 'data-len' | 'data' = 'meta-len';

  /** Throws WireError on malformed input; the carrier must then be closed. */
  push(chunk: Buffer): MuxFrame[] {
    this.queue.push(chunk);
    const out: MuxFrame[] = [];
    // Each pass consumes `need` ≥ 1 bytes, so this ends after at most queue.length passes.
    while (this.queue.length >= this.need) {
      const b = this.queue.read(this.need);
      switch (this.state) {
        case 'meta-len': {
          const n = b.readUInt16BE(0);
          if (n > MAX_MUX_METADATA) bad(`metadata length ${n}`);
          if (n < 4) bad(`metadata length ${n}`);
          this.state = 'meta';
          this.need = n;
          break;
        }
        case 'meta': {
          const f = decodeMetadata(b);
          if (b[3]! & OPTION_DATA) {
            this.frame = f;
            this.state = 'data-len';
            this.need = 2;
          } else {
            out.push(f);
            this.state = 'meta-len';
            this.need = 2;
          }
          break;
        }
        case 'data-len': {
          const n = b.readUInt16BE(0);
          if (n === 0) {
            out.push({ ...this.frame!, data: Buffer.alloc(0) });
            this.state = 'meta-len';
            this.need = 2;
          } else {
            this.state = 'data';
            this.need = n;
          }
          break;
        }
        case 'data':
          out.push({ ...this.frame!, data: b });
          this.frame = undefined;
          this.state = 'meta-len';
          this.need = 2;
          break;
      }
    }
    return out;
  }

  /** True between frames (an end of the carrier here is clean). */
  get atBoundary(): boolean {
    return this.state === 'meta-len' && this.queue.length === 0;
  }
}
