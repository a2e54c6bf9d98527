// Shadowsocks UDP packets: SIP004 (salt ‖ AEAD(address ‖ payload)) and SIP022 sessions (AES separate
// header + per-session AEAD, or XChaCha20-Poly1305 with the PSK for the chacha method).
import { randomInt } from 'node:crypto';
import { randomSalt } from './random.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { WireError } from '../wire/errors.js';
import {
  encodedAddressLength,
  readAddressComplete,
  writeAddress,
  type Address,
} from '../wire/socks-address.js';
import {
  TYPE_CLIENT,
  TYPE_SERVER,
  checkTimestamp,
  readUdpMessage,
  udpMessageLength,
  writeUdpMessage,
  type UdpMessage,
} from '../wire/shadowsocks-2022.js';
import { AuthError, TAG_SIZE, open, sealInto } from './aead.js';
import { aesBlock, pskHash, sessionSubkey } from './kdf.js';
import { SlidingWindow } from './replay.js';
import { systemClock, type Clock, type StreamKey } from './ss-stream.js';

export interface Datagram {
  address: Address;
  payload: Buffer;
}

const ZERO_NONCE = Buffer.alloc(12);
const XNONCE_SIZE = 24;

function authOpen(fn: () => Buffer | Uint8Array): Buffer {
  try {
    const r = fn();
    return Buffer.isBuffer(r) ? r : Buffer.from(r.buffer, r.byteOffset, r.byteLength);
  } catch (e) {
    if (e instanceof AuthError || (e instanceof Error && /invalid tag|auth/i.test(e.message))) {
      throw new WireError('auth', 'packet failed authentication');
    }
    throw e;
  }
}

// ---- SIP004 ----

export function sealAeadPacket(k: StreamKey, d: Datagram): Buffer {
  const salt = randomSalt(k.spec.saltSize);
  const plain = Buffer.allocUnsafe(encodedAddressLength(d.address) + d.payload.length);
  const o = writeAddress(d.address, plain, 0);
  d.payload.copy(plain, o);
  const out = Buffer.allocUnsafe(salt.length + plain.length + TAG_SIZE);
  salt.copy(out, 0);
  sealInto(k.spec.cipher, sessionSubkey(k.spec, k.key, salt), ZERO_NONCE, plain, out, salt.length);
  return out;
}

export function openAeadPacket(k: StreamKey, packet: Buffer): Datagram {
  const s = k.spec.saltSize;
  if (packet.length < s + TAG_SIZE + 1) throw new WireError('truncated', 'packet too short');
  const salt = packet.subarray(0, s);
  const plain = authOpen(() =>
    open(k.spec.cipher, sessionSubkey(k.spec, k.key, salt), ZERO_NONCE, packet.subarray(s)),
  );
  const { value: address, length } = readAddressComplete(plain, 0);
  return { address, payload: plain.subarray(length) };
}

// ---- SIP022 ----

/** One side's view of a 2022 UDP session: its own session ID and packet counter. */
class OutgoingSession {
  readonly id = randomSalt(8);
  private packetId = 0n;
  private subkey: Buffer | undefined;

  constructor(private readonly k: StreamKey) {}

  /** Builds a packet carrying `m` under this session. */
  seal(m: UdpMessage, paddingLength: number): Buffer {
    const pid = this.packetId++;
    const bodyLen = udpMessageLength(m, paddingLength);
    if (this.k.spec.cipher === 'chacha20-poly1305') {
      const plain = Buffer.allocUnsafe(16 + bodyLen);
      this.id.copy(plain, 0);
      plain.writeBigUInt64BE(pid, 8);
      writeUdpMessage(m, paddingLength, plain, 16);
      const nonce = randomSalt(XNONCE_SIZE);
      const sealed = xchacha20poly1305(this.k.key, nonce).encrypt(plain);
      return Buffer.concat([nonce, sealed]);
    }
    const header = Buffer.allocUnsafe(16);
    this.id.copy(header, 0);
    header.writeBigUInt64BE(pid, 8);
    const body = Buffer.allocUnsafe(bodyLen);
    writeUdpMessage(m, paddingLength, body, 0);
    this.subkey ??= sessionSubkey(this.k.spec, this.k.key, this.id);
    const ids = this.k.identity ?? [];
    const out = Buffer.allocUnsafe(16 + 16 * ids.length + bodyLen + TAG_SIZE);
    aesBlock(ids[0] ?? this.k.key, true, header).copy(out, 0);
    // SIP023: one identity header per iPSK: AES(iPSKn, hash(next PSK) XOR sessionID‖packetID).
    ids.forEach((ipsk, i) => {
      const plain = pskHash(ids[i + 1] ?? this.k.key);
      for (let b = 0; b < 16; b++) plain[b]! ^= header[b]!;
      aesBlock(ipsk, true, plain).copy(out, 16 + 16 * i);
    });
    sealInto(this.k.spec.cipher, this.subkey, header.subarray(4, 16), body, out, 16 + 16 * ids.length);
    return out;
  }
}

/** An opened 2022 packet, before the replay window has been consulted. */
export interface Opened2022 {
  sessionId: Buffer;
  packetId: bigint;
  message: UdpMessage;
}

const subkeyCache = new WeakMap<Buffer, Map<string, Buffer>>();

function cachedSubkey(k: StreamKey, sessionId: Buffer): Buffer {
  let m = subkeyCache.get(k.key);
  if (!m) subkeyCache.set(k.key, (m = new Map()));
  const id = sessionId.toString('latin1');
  let sk = m.get(id);
  if (!sk) {
    if (m.size > 4096) m.clear(); // bounded: a cache, not state
    sk = sessionSubkey(k.spec, k.key, sessionId);
    m.set(id, sk);
  }
  return sk;
}

/** Opens the AEAD body of a 2022 AES packet whose separate header has already been decrypted. */
export function open2022AesBody(
  k: StreamKey,
  header: Buffer,
  sealed: Buffer,
  expectType: 0 | 1,
  nowS: number,
): Opened2022 {
  const sessionId = Buffer.from(header.subarray(0, 8));
  const sk = cachedSubkey(k, sessionId);
  const body = authOpen(() => open(k.spec.cipher, sk, header.subarray(4, 16), sealed));
  const message = readUdpMessage(body, expectType);
  checkTimestamp(message.timestamp, nowS);
  return { sessionId, packetId: header.readBigUInt64BE(8), message };
}

/** Decrypts and parses a 2022 packet; checks type and timestamp (not the replay window). */
export function open2022Packet(k: StreamKey, packet: Buffer, expectType: 0 | 1, nowS: number): Opened2022 {
  if (k.spec.cipher !== 'chacha20-poly1305') {
    if (packet.length < 16 + TAG_SIZE + 11) throw new WireError('truncated', 'packet too short');
    return open2022AesBody(
      k,
      aesBlock(k.key, false, packet.subarray(0, 16)),
      packet.subarray(16),
      expectType,
      nowS,
    );
  }
  if (packet.length < XNONCE_SIZE + 16 + TAG_SIZE) throw new WireError('truncated', 'packet too short');
  const plain = authOpen(() =>
    xchacha20poly1305(k.key, packet.subarray(0, XNONCE_SIZE)).decrypt(packet.subarray(XNONCE_SIZE)),
  );
  const message = readUdpMessage(plain.subarray(16), expectType);
  checkTimestamp(message.timestamp, nowS);
  return { sessionId: Buffer.from(plain.subarray(0, 8)), packetId: plain.readBigUInt64BE(8), message };
}

function udpPadding(): number {
  // Small random padding hides exact payload sizes without risking the path MTU.
  return randomInt(0, 33);
}

// ---- Sessions used by the client and server relays ----

/**
 * The client side of one UDP association through a Shadowsocks server. For SIP004 each packet stands
 * alone; for SIP022 it is a session with a packet counter, and replies are checked against a sliding
 * window per server session (at most two server sessions are tracked, as the spec allows).
 */
export class UdpClientSession {
  private readonly out: OutgoingSession | undefined;
  private readonly windows = new Map<string, { window: SlidingWindow; lastSeen: number }>();

  constructor(
    private readonly k: StreamKey,
    private readonly clock: Clock = systemClock,
  ) {
    if (k.spec.edition === '2022') this.out = new OutgoingSession(k);
  }

  seal(d: Datagram): Buffer {
    if (!this.out) return sealAeadPacket(this.k, d);
    return this.out.seal({ type: TYPE_CLIENT, timestamp: this.clock(), ...d }, udpPadding());
  }

  open(packet: Buffer): Datagram {
    if (!this.out) return openAeadPacket(this.k, packet);
    const now = this.clock();
    const o = open2022Packet(this.k, packet, TYPE_SERVER, now);
    if (!o.message.clientSessionId!.equals(this.out.id)) {
      throw new WireError('bad-session', 'reply for another client session');
    }
    const sid = o.sessionId.toString('latin1');
    let w = this.windows.get(sid);
    if (!w) {
      if (this.windows.size >= 2) {
        // Keep the newest; drop the one not heard from for the longest time.
        const oldest = [...this.windows.entries()].sort((a, b) => a[1].lastSeen - b[1].lastSeen)[0]!;
        this.windows.delete(oldest[0]);
      }
      w = { window: new SlidingWindow(), lastSeen: now };
      this.windows.set(sid, w);
    }
    if (!w.window.check(o.packetId)) throw new WireError('replay', 'duplicate or old packet ID');
    w.window.accept(o.packetId);
    w.lastSeen = now;
    return { address: o.message.address, payload: o.message.payload };
  }
}

/** The server side of one 2022 client session: replay window and the server's own session. */
export class UdpServerSession {
  private readonly out: OutgoingSession;
  private readonly window = new SlidingWindow();

  constructor(
    k: StreamKey,
    readonly clientSessionId: Buffer,
    private readonly clock: Clock = systemClock,
  ) {
    this.out = new OutgoingSession(k);
  }

  /** Checks and records a packet ID; false for a replay. */
  accept(packetId: bigint): boolean {
    if (!this.window.check(packetId)) return false;
    this.window.accept(packetId);
    return true;
  }

  seal(d: Datagram): Buffer {
    return this.out.seal(
      { type: TYPE_SERVER, timestamp: this.clock(), clientSessionId: this.clientSessionId, ...d },
      udpPadding(),
    );
  }
}

/** Server-side: what an incoming client packet says, and which session (2022) it belongs to. */
export interface IncomingPacket extends Datagram {
  /** 2022: the client session ID (latin1), the key for the relay's session table. */
  sessionKey?: string;
  sessionId?: Buffer;
  packetId?: bigint;
}

export function openClientPacket(k: StreamKey, packet: Buffer, clock: Clock = systemClock): IncomingPacket {
  if (k.spec.edition === 'aead') return openAeadPacket(k, packet);
  const o = open2022Packet(k, packet, TYPE_CLIENT, clock());
  return {
    address: o.message.address,
    payload: o.message.payload,
    sessionKey: o.sessionId.toString('latin1'),
    sessionId: o.sessionId,
    packetId: o.packetId,
  };
}
