// The cover website that every TLS connection which is not valid Trojan is handed to, so that the
// server looks like an ordinary HTTPS site to probes and browsers alike. Either a built-in static site
// (a few plausible pages with nginx-like headers and error pages) or a reverse proxy to a configured
// http(s):// URL. HTTP/1.1 and, when the client negotiated it by ALPN, HTTP/2 (docs/tls-fingerprint.md).
// The handed-over socket arrives with the bytes already read from it, which are replayed to the parser.
import { createHash } from 'node:crypto';
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  createServer as createHttp2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export type CoverOptions =
  | {
      kind: 'static';
      /** The site's name in titles and headings. */
      siteName?: string;
    }
  | {
      kind: 'proxy';
      /** Upstream base URL: requests for /a/b go to URL + a/b. */
      url: string;
      /** Upstream connect + response-head timeout; a 502/504 page after it. */
      timeoutMs?: number;
      /** Verify the upstream's certificate (default true). */
      verifyUpstream?: boolean;
    };

export interface CoverSite {
  /** Serves `socket` (TLS already established); `head` is what was already read from it. */
  handle(socket: TLSSocket, head: Buffer): void;
  /** Cover connections open now. */
  connections(): number;
  close(): void;
}

export const COVER_DEFAULTS = {
  /** Idle connections are closed after this long (nginx keeps 75 s; shorter frees descriptors). */
  idleTimeoutMs: 60_000,
  proxyTimeoutMs: 10_000,
} as const;

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

// ---------------------------------------------------------------------------------------------------
// nginx-like framing

/** nginx's built-in error page (CRLF line ends, as nginx sends them). */
export function nginxErrorPage(status: number, reason: string): string {
  const title = `${status} ${reason}`;
  return (
    `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n` +
    `<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`
  );
}

/** The raw 400 response nginx sends to a request it cannot parse, then closes. */
function rawBadRequest(): string {
  const body = nginxErrorPage(400, 'Bad Request');
  return (
    `HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

const isH2 = (req: Req): req is Http2ServerRequest => req.httpVersionMajor === 2;

/** nginx's reason phrases where they differ from Node's. */
const REASONS: Record<number, string> = { 405: 'Not Allowed', 504: 'Gateway Time-out' };

/** Writes the head in nginx's header order; HTTP/2 gets the same fields without Connection. */
function writeHead(req: Req, res: Res, status: number, fields: Array<[string, string | number]>): void {
  const headers: OutgoingHttpHeaders = {};
  const h2 = isH2(req);
  const all: Array<[string, string | number]> = [
    ['Server', 'nginx'],
    ['Date', new Date().toUTCString()],
    ...fields,
  ];
  if (!h2) {
    const close = (req.headers.connection ?? '').toLowerCase() === 'close' || req.httpVersion === '1.0';
    // nginx puts Connection after Content-Length and Last-Modified, before ETag.
    const at = all.findIndex(([k]) => k === 'ETag' || k === 'Location');
    all.splice(at < 0 ? all.length : at, 0, ['Connection', close ? 'close' : 'keep-alive']);
  }
  for (const [k, v] of all) headers[h2 ? k.toLowerCase() : k] = v;
  if (h2) (res as Http2ServerResponse).writeHead(status, headers);
  else (res as ServerResponse).writeHead(status, REASONS[status], headers);
}

/** Ends the response with `body`, or without one for HEAD. */
function finish(req: Req, res: Res, body: string | Buffer): void {
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

function sendError(req: Req, res: Res, status: number, reason: string): void {
  const body = nginxErrorPage(status, reason);
  writeHead(req, res, status, [
    ['Content-Type', 'text/html'],
    ['Content-Length', Buffer.byteLength(body)],
  ]);
  finish(req, res, body);
}

// ---------------------------------------------------------------------------------------------------
// The built-in static site

interface Page {
  type: string;
  body: Buffer;
  etag: string;
}

/** A 16×16 32-bit ICO: a filled olive circle on transparent, made here so the module stays text. */
function favicon(): Buffer {
  const w = 16;
  const px = Buffer.alloc(w * w * 4);
  for (let y = 0; y < w; y++)
    for (let x = 0; x < w; x++) {
      const dx = x - 7.5;
      const dy = y - 7.5;
      if (dx * dx + dy * dy >= 49) continue;
      const i = ((w - 1 - y) * w + x) * 4;
      px.set([0x2f, 0x6b, 0x5a, 0xff], i);
    }
  const mask = Buffer.alloc(w * 4);
  const bih = Buffer.alloc(40);
  bih.writeUInt32LE(40, 0);
  bih.writeInt32LE(w, 4);
  bih.writeInt32LE(w * 2, 8);
  bih.writeUInt16LE(1, 12);
  bih.writeUInt16LE(32, 14);
  bih.writeUInt32LE(px.length + mask.length, 20);
  const img = Buffer.concat([bih, px, mask]);
  const dir = Buffer.alloc(22);
  dir.writeUInt16LE(1, 2);
  dir.writeUInt16LE(1, 4);
  dir[6] = w;
  dir[7] = w;
  dir.writeUInt16LE(1, 10);
  dir.writeUInt16LE(32, 12);
  dir.writeUInt32LE(img.length, 14);
  dir.writeUInt32LE(22, 18);
  return Buffer.concat([dir, img]);
}

const CSS = `body{margin:0;font:17px/1.6 Georgia,'Times New Roman',serif;color:#222;background:#fbfaf7}
header,main,footer{max-width:42rem;margin:0 auto;padding:1rem 1.25rem}
header{border-bottom:1px solid #e4e0d8}header a{color:#2f5a4b;text-decoration:none;font-weight:bold}
nav a{margin-left:1rem;color:#555;font-size:.9rem}h1,h2{font-weight:normal;color:#2f5a4b}
article{margin:2rem 0}article time{color:#888;font-size:.85rem}footer{color:#888;font-size:.8rem}
`;

function layout(site: string, title: string, content: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="stylesheet" href="/style.css">
<link rel="icon" href="/favicon.ico">
</head>
<body>
<header><a href="/">${site}</a><nav><a href="/">Notes</a><a href="/about.html">About</a></nav></header>
<main>
${content}
</main>
<footer>&copy; ${site}. Plain HTML, no cookies, no trackers.</footer>
</body>
</html>
`;
}

function staticPages(site: string): { pages: Map<string, Page>; notFound: Buffer } {
  const index = layout(
    site,
    site,
    `<h1>Field notes</h1>
<article><h2>Sourdough at altitude</h2><time datetime="2024-03-02">2 March 2024</time>
<p>Water boils at 93&nbsp;&deg;C up here, and the starter knows it. Less yeast, a cooler proof and a
longer bake: the notes below are what finally worked after a winter of flat loaves.</p></article>
<article><h2>Fixing a 1970s tape deck</h2><time datetime="2023-11-19">19 November 2023</time>
<p>Two belts, one pinch roller and a very patient evening. The capstan motor was fine after all; the
speed drift came from a dried-out trimmer pot.</p></article>
<article><h2>Notes on a slow garden</h2><time datetime="2023-08-07">7 August 2023</time>
<p>Three summers of letting the meadow corner do what it wants: fewer mowings, more bees, and a
surprising number of orchids.</p></article>`,
  );
  const about = layout(
    site,
    `About - ${site}`,
    `<h1>About</h1>
<p>A small notebook kept by one person: baking, repairs, gardening and the occasional walk. Nothing here is
for sale. Posts appear when there is something worth writing down, which is not often.</p>
<p>Corrections are welcome by post; the address is in the imprint of the printed edition.</p>`,
  );
  const notFound = Buffer.from(
    layout(
      site,
      `Page not found - ${site}`,
      `<h1>Page not found</h1>\n<p>Try the <a href="/">front page</a>.</p>`,
    ),
  );
  const entries: Array<[string[], string, Buffer]> = [
    [['/', '/index.html'], 'text/html', Buffer.from(index)],
    [['/about.html', '/about'], 'text/html', Buffer.from(about)],
    [['/style.css'], 'text/css', Buffer.from(CSS)],
    [['/favicon.ico'], 'image/x-icon', favicon()],
    [['/robots.txt'], 'text/plain', Buffer.from('User-agent: *\nDisallow:\n')],
  ];
  const pages = new Map<string, Page>();
  for (const [paths, type, body] of entries) {
    // nginx's ETag is "mtime-length" in hex; the mtime here is fixed, the length is real.
    const etag = `"${MTIME_S.toString(16)}-${body.length.toString(16)}"`;
    for (const p of paths) pages.set(p, { type, body, etag });
  }
  return { pages, notFound };
}

/** The files' modification time: fixed, so ETags and Last-Modified stay the same across restarts. */
const MTIME_S =
  1_709_400_000 + (parseInt(createHash('sha256').update('pigeon').digest('hex').slice(0, 4), 16) % 86_400);
const LAST_MODIFIED = new Date(MTIME_S * 1000).toUTCString();

function staticHandler(site: string): (req: Req, res: Res) => void {
  const { pages, notFound } = staticPages(site);
  return (req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const page = pages.get(path);
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      if (page) return sendError(req, res, 405, 'Not Allowed');
      return sendError(req, res, 404, 'Not Found');
    }
    if (!page) {
      writeHead(req, res, 404, [
        ['Content-Type', 'text/html'],
        ['Content-Length', notFound.length],
      ]);
      finish(req, res, notFound);
      return;
    }
    const inm = req.headers['if-none-match'];
    const ims = req.headers['if-modified-since'];
    if ((inm && inm === page.etag) || (!inm && ims && Date.parse(ims) >= MTIME_S * 1000)) {
      writeHead(req, res, 304, [
        ['Last-Modified', LAST_MODIFIED],
        ['ETag', page.etag],
      ]);
      res.end();
      return;
    }
    writeHead(req, res, 200, [
      ['Content-Type', page.type],
      ['Content-Length', page.body.length],
      ['Last-Modified', LAST_MODIFIED],
      ['ETag', page.etag],
      ['Accept-Ranges', 'bytes'],
    ]);
    finish(req, res, page.body);
  };
}

// ---------------------------------------------------------------------------------------------------
// Reverse proxy

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authorization',
  'proxy-authenticate',
  'http2-settings',
  'host',
]);

function forwardable(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || HOP_BY_HOP.has(k)) continue;
    out[k] = v;
  }
  return out;
}

function proxyHandler(base: URL, timeoutMs: number, verify: boolean): (req: Req, res: Res) => void {
  const basePath = base.pathname.endsWith('/') ? base.pathname.slice(0, -1) : base.pathname;
  const send = base.protocol === 'https:' ? httpsRequest : httpRequest;
  return (req, res) => {
    const headers = forwardable(req.headers);
    headers.host = base.host;
    let answered = false;
    const fail = (status: number, reason: string): void => {
      if (answered || res.headersSent) {
        res.destroy();
        return;
      }
      answered = true;
      sendError(req, res, status, reason);
    };
    const up = send(
      {
        protocol: base.protocol,
        hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: base.port || undefined,
        method: req.method,
        path: basePath + (req.url ?? '/'),
        headers,
        rejectUnauthorized: verify,
        servername: base.hostname,
        timeout: timeoutMs,
      },
      (upRes) => {
        answered = true;
        const out = forwardable(upRes.headers);
        if (isH2(req)) {
          const lower: OutgoingHttpHeaders = {};
          for (const [k, v] of Object.entries(out)) lower[k.toLowerCase()] = v;
          (res as Http2ServerResponse).writeHead(upRes.statusCode ?? 502, lower);
        } else {
          (res as ServerResponse).writeHead(upRes.statusCode ?? 502, out);
        }
        upRes.pipe(res as ServerResponse);
        upRes.on('error', () => res.destroy());
      },
    );
    up.on('timeout', () => {
      up.destroy();
      fail(504, 'Gateway Time-out');
    });
    up.on('error', () => fail(502, 'Bad Gateway'));
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    (req as IncomingMessage).pipe(up);
  };
}

// ---------------------------------------------------------------------------------------------------

export function createCoverSite(opts: CoverOptions = { kind: 'static' }): CoverSite {
  let handler: (req: Req, res: Res) => void;
  if (opts.kind === 'proxy') {
    let base: URL;
    try {
      base = new URL(opts.url);
    } catch {
      throw new Error(`cover URL "${opts.url}" is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new Error(`cover URL "${opts.url}" must be http:// or https://`);
    handler = proxyHandler(
      base,
      opts.timeoutMs ?? COVER_DEFAULTS.proxyTimeoutMs,
      opts.verifyUpstream ?? true,
    );
  } else {
    handler = staticHandler(opts.siteName ?? 'Meadowbrook Notes');
  }
  const safe = (req: Req, res: Res): void => {
    try {
      handler(req, res);
    } catch {
      res.destroy();
    }
  };

  const h1 = createHttpServer({ keepAliveTimeout: 0 }, safe);
  // No "Keep-Alive: timeout=" header (nginx sends none); idle sockets are closed by our own timer.
  h1.keepAliveTimeout = 0;
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // nginx answers what it cannot parse with its 400 page; a timeout it closes without a word.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(rawBadRequest());
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  const h2 = createHttp2Server({}, safe);
  h2.on('sessionError', () => undefined);
  h2.on('error', () => undefined);

  const open = new Set<TLSSocket>();
  return {
    handle(socket, head) {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.setTimeout(COVER_DEFAULTS.idleTimeoutMs, () => socket.destroy());
      if (socket.alpnProtocol === 'h2') {
        socket.pause();
        if (head.length) socket.unshift(head);
        h2.emit('connection', socket);
      } else {
        h1.emit('connection', socket);
        if (head.length) socket.emit('data', head);
        socket.resume();
      }
    },
    connections: () => open.size,
    close() {
      for (const s of open) s.destroy();
      open.clear();
      h1.close();
      h2.close();
    },
  };
}
