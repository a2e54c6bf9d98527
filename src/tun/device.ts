// A Linux TUN device, opened without compiling anything: /dev/net/tun, ioctl(TUNSETIFF) with
// IFF_TUN | IFF_NO_PI through koffi (a C FFI with prebuilt binaries), so each read is one IP packet.
//
// Reading: a worker thread polls the (non-blocking) descriptor and reads every packet that is ready,
// up to a batch, into one buffer that it hands over to the main thread (transferred, not copied). The
// event loop never blocks, the libuv thread pool is not held by a pending read, and a busy device
// costs one message per batch rather than per packet. The worker wakes at least every 200 ms to see
// whether it should stop, so close() takes at most that long.
// Writing: write(2) on the main thread; a TUN write hands the packet to the kernel's receive path and
// does not block.
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import koffi from 'koffi';

const TUNSETIFF = 0x400454ca; // _IOW('T', 202, int)
const IFF_TUN = 0x0001;
const IFF_NO_PI = 0x1000;
const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
/** Bytes the worker reads into before handing a batch over; at least one packet of the largest MTU. */
const BATCH_BYTES = 1024 * 1024;
const BATCH_PACKETS = 256;
const POLL_MS = 200;

export class TunError extends Error {
  override name = 'TunError';
  constructor(
    message: string,
    readonly errno?: number,
  ) {
    super(message);
  }
}

export interface TunDevice {
  readonly name: string;
  /** Hands one IP packet to the kernel as if it had arrived on the device. Drops it when the device is gone. */
  write(packet: Uint8Array): void;
  /** Stops reading and closes the descriptor; the kernel then deletes the (non-persistent) device. */
  close(): Promise<void>;
}

export interface TunDeviceOptions {
  name: string;
  /** Largest packet the device carries (its MTU). */
  mtu: number;
  /** Each packet read from the device. The buffer stays valid (it is not reused). */
  onPacket(packet: Buffer): void;
  /** Reading failed for good (the device was deleted under us, …). */
  onError(e: Error): void;
}

type Ioctl = (fd: number, request: number, argType: string, arg: Buffer) => number;

interface LibC {
  ioctl: Ioctl;
}

let libc: LibC | undefined;

function loadLibc(): LibC {
  if (!libc) {
    const lib = koffi.load('libc.so.6');
    libc = { ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)') as Ioctl };
  }
  return libc;
}

const ERRNO_TEXT: Record<number, string> = {
  1: 'EPERM (operation not permitted: creating a TUN device needs root or CAP_NET_ADMIN)',
  13: 'EACCES (permission denied: creating a TUN device needs root or CAP_NET_ADMIN)',
  16: 'EBUSY (a device of that name is in use)',
  22: 'EINVAL',
};

// The reader, as a CommonJS script: it runs the same under tsx and from dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const koffi = require(workerData.koffi);
const lib = koffi.load('libc.so.6');
const poll = lib.func('int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)');
const read = lib.func('long read(int fd, uint8_t *buf, size_t count)');
const { fd, mtu, batchBytes, batchPackets, pollMs } = workerData;
const stop = new Int32Array(workerData.stop);
const EAGAIN = 11, EINTR = 4;
const pfd = Buffer.alloc(8);
pfd.writeInt32LE(fd, 0);
pfd.writeInt16LE(1, 4); // POLLIN
const buf = Buffer.alloc(batchBytes);
const room = mtu + 64;
for (;;) {
  if (Atomics.load(stop, 0)) break;
  pfd.writeInt16LE(0, 6);
  const ready = poll(pfd, 1, pollMs);
  if (Atomics.load(stop, 0)) break;
  if (ready < 0) {
    const e = koffi.errno();
    if (e === EINTR) continue;
    parentPort.postMessage({ error: 'poll failed', errno: e });
    break;
  }
  if (ready === 0) continue;
  const revents = pfd.readInt16LE(6);
  if (revents & (0x08 | 0x10 | 0x20)) { // POLLERR | POLLHUP | POLLNVAL
    parentPort.postMessage({ error: 'the device was closed', errno: 0 });
    break;
  }
  let off = 0, count = 0, failed = 0;
  while (count < batchPackets && off + 2 + room <= buf.length) {
    const n = Number(read(fd, buf.subarray(off + 2, off + 2 + room), room));
    if (n <= 0) {
      if (n < 0) { const e = koffi.errno(); if (e !== EAGAIN && e !== EINTR) failed = e; }
      break;
    }
    buf.writeUInt16LE(n, off);
    off += 2 + n;
    count++;
  }
  if (off > 0) {
    const out = buf.buffer.slice(buf.byteOffset, buf.byteOffset + off);
    parentPort.postMessage({ batch: out }, [out]);
  }
  if (failed) {
    parentPort.postMessage({ error: 'read failed', errno: failed });
    break;
  }
}
`;

interface WorkerMessage {
  batch?: ArrayBuffer;
  error?: string;
  errno?: number;
}

/** Creates (or attaches to) the TUN device `name` and starts reading it. */
export function openTun(opts: TunDeviceOptions): TunDevice {
  if (Buffer.byteLength(opts.name) >= IFNAMSIZ || !/^[A-Za-z0-9_.-]+$/.test(opts.name)) {
    throw new TunError(`"${opts.name}" is not a valid interface name (at most 15 letters, digits, _ . -)`);
  }
  let fd: number;
  try {
    fd = openSync('/dev/net/tun', constants.O_RDWR | constants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new TunError(
      err.code === 'ENOENT'
        ? '/dev/net/tun does not exist (load the tun module: modprobe tun)'
        : `cannot open /dev/net/tun: ${err.code ?? err.message}${err.code === 'EACCES' || err.code === 'EPERM' ? ' (run as root)' : ''}`,
    );
  }
  const ifr = Buffer.alloc(IFREQ_SIZE);
  ifr.write(opts.name, 0, 'latin1');
  ifr.writeUInt16LE(IFF_TUN | IFF_NO_PI, IFNAMSIZ);
  const r = loadLibc().ioctl(fd, TUNSETIFF, 'void *', ifr);
  if (r < 0) {
    const errno = koffi.errno();
    closeSync(fd);
    throw new TunError(
      `cannot create TUN device ${opts.name}: ${ERRNO_TEXT[errno] ?? `errno ${errno}`}`,
      errno,
    );
  }
  const name = ifr.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');

  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      koffi: createRequire(import.meta.url).resolve('koffi'),
      fd,
      mtu: opts.mtu,
      batchBytes: Math.max(BATCH_BYTES, 2 * (opts.mtu + 66)),
      batchPackets: BATCH_PACKETS,
      pollMs: POLL_MS,
      stop: stop.buffer,
    },
  });
  let closed = false;
  let fdOpen = true;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (m: WorkerMessage) => {
    if (closed) return;
    if (m.batch) {
      const all = Buffer.from(m.batch);
      for (let o = 0; o + 2 <= all.length;) {
        const n = all.readUInt16LE(o);
        opts.onPacket(all.subarray(o + 2, o + 2 + n));
        o += 2 + n;
      }
    } else if (m.error) {
      opts.onError(new TunError(`${name}: ${m.error}${m.errno ? ` (errno ${m.errno})` : ''}`, m.errno));
    }
  });
  worker.on('error', (e) => {
    if (!closed) opts.onError(new TunError(`${name}: reader thread failed: ${e.message}`));
  });
  worker.unref();

  return {
    name,
    write(packet) {
      if (closed || !fdOpen) return;
      try {
        writeSync(fd, packet);
      } catch {
        // EAGAIN (the kernel's backlog is full), EIO (device down), EINVAL (bad packet): dropped,
        // as a full queue on a real link would drop it.
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      Atomics.store(stop, 0, 1);
      const timer = setTimeout(() => void worker.terminate(), POLL_MS * 5);
      await exited;
      clearTimeout(timer);
      fdOpen = false;
      closeSync(fd);
    },
  };
}
