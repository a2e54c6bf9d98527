// What `pigeon server` and `pigeon key show` print for a person: the URI on a line of its own, a QR
// code, and what to do next.
import QRCode from 'qrcode';

export interface ShareInfo {
  qr: boolean;
  hostGuessed?: boolean;
  allowPrivate?: boolean;
}

export async function printShareable(uri: string, info: ShareInfo): Promise<void> {
  const out = process.stdout;
  out.write(
    'Access key (paste into Outline, Shadowrocket, v2rayNG, Clash, sing-box or `pigeon client --server`):\n',
  );
  out.write(`${uri}\n`);
  if (info.qr) {
    const qr = await QRCode.toString(uri, { type: 'terminal', small: true, errorCorrectionLevel: 'L' });
    out.write(`\nOr scan this with the phone app:\n${qr}\n`);
  }
  if (info.hostGuessed) {
    out.write(
      'Note: the host in the key is a guess; if clients reach this machine by another address, restart with --public-host.\n',
    );
  }
  if (info.allowPrivate)
    out.write("Warning: --allow-private lets clients reach this machine's own network.\n");
}
