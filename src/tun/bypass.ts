// Pigeon's own traffic must not be captured by the routes that send everything into the TUN: its
// connections to the server, its direct connections and its plain DNS for direct names would loop
// back into it. sing-box and Clash mark their sockets (SO_MARK) or bind them to an interface; here
// every socket the Pigeon process opens is created by the main thread (libuv), so the main thread
// takes a filesystem UID of its own (setfsuid) — the kernel stamps that UID on each new socket — and
// one policy rule (`ip rule … uidrange UID-UID lookup main`) lets those sockets use the normal routes.
// SECBIT_NO_SETUID_FIXUP keeps every capability through the switch, so the process still reads root's
// files and configures the network. Only the calling thread changes; execve() resets it in children.
import koffi from 'koffi';

/** The UID stamped on Pigeon's own sockets in TUN mode ("pig" in ASCII); no account should use it. */
export const BYPASS_UID = 0x706967;

const PR_GET_SECUREBITS = 27;
const PR_SET_SECUREBITS = 28;
const SECBIT_NO_SETUID_FIXUP = 1 << 2;

type Prctl = (option: number, ...args: (string | number)[]) => number;
type SetFsUid = (uid: number) => number;

let fns: { prctl: Prctl; setfsuid: SetFsUid } | undefined;

function libc(): { prctl: Prctl; setfsuid: SetFsUid } {
  if (!fns) {
    const lib = koffi.load('libc.so.6');
    fns = {
      prctl: lib.func('int prctl(int option, ...)') as Prctl,
      setfsuid: lib.func('int setfsuid(uint32_t fsuid)') as SetFsUid,
    };
  }
  return fns;
}

export interface SocketStamp {
  /** False when capabilities could not be kept (the process then reads files as `uid`). */
  keptCapabilities: boolean;
  /** Puts the thread's previous filesystem UID back. */
  restore(): void;
}

/**
 * From now on, sockets created by this (the main) thread belong to `uid`. Throws when the kernel
 * refuses the UID (not root, or a user namespace that does not map it).
 */
export function stampOwnSockets(uid = BYPASS_UID): SocketStamp {
  const { prctl, setfsuid } = libc();
  const bits = prctl(
    PR_GET_SECUREBITS,
    'unsigned long',
    0,
    'unsigned long',
    0,
    'unsigned long',
    0,
    'unsigned long',
    0,
  );
  let keptCapabilities = bits >= 0 && (bits & SECBIT_NO_SETUID_FIXUP) !== 0;
  if (!keptCapabilities && bits >= 0) {
    keptCapabilities =
      prctl(
        PR_SET_SECUREBITS,
        'unsigned long',
        bits | SECBIT_NO_SETUID_FIXUP,
        'unsigned long',
        0,
        'unsigned long',
        0,
        'unsigned long',
        0,
      ) === 0;
  }
  const previous = setfsuid(uid);
  // setfsuid returns the previous value whether or not it changed anything: ask again to know.
  const now = setfsuid(uid);
  if (now !== uid) {
    setfsuid(previous);
    throw new Error(`cannot take filesystem UID ${uid} for Pigeon's own sockets (is this root?)`);
  }
  return {
    keptCapabilities,
    restore: () => void setfsuid(previous),
  };
}
