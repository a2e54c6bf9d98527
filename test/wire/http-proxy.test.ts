import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CONNECT_ESTABLISHED,
  buildForwardHead,
  encodeSimpleResponse,
  parseProxyRequestHead,
  type HttpProxyRequest,
} from '../../src/wire/http-proxy.js';
import { wireCode } from '../helpers/wire-error.js';

const code = wireCode;
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const parse = (s: string, max?: number): HttpProxyRequest => {
  const r = parseProxyRequestHead(b(s), max);
  assert.ok(r, 'expected a complete head');
  return r.value;
};
const parseCode = (s: string, max?: number): string => code(() => parseProxyRequestHead(b(s), max));

describe('CONNECT', () => {
  const curl =
    'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\n' +
    'Proxy-Connection: Keep-Alive\r\n\r\n';

  test("curl's CONNECT request", () => {
    assert.deepEqual(parseProxyRequestHead(b(curl + '\x16\x03\x01')), {
      value: {
        method: 'CONNECT',
        version: '1.1',
        isConnect: true,
        target: { kind: 'domain', host: 'example.com', port: 443 },
        path: '',
        headers: [
          ['Host', 'example.com:443'],
          ['User-Agent', 'curl/8.5.0'],
          ['Proxy-Connection', 'Keep-Alive'],
        ],
      },
      length: curl.length,
    });
  });

  test('every prefix of a head returns null', () => {
    for (let n = 0; n < curl.length; n++)
      assert.equal(parseProxyRequestHead(b(curl.slice(0, n))), null, `${n}`);
  });

  test('IPv4 and bracketed IPv6 targets, HTTP/1.0, bare LF line ends', () => {
    assert.deepEqual(parse('CONNECT 1.2.3.4:8080 HTTP/1.0\n\n').target, {
      kind: 'ipv4',
      host: '1.2.3.4',
      port: 8080,
    });
    assert.equal(parse('CONNECT 1.2.3.4:8080 HTTP/1.0\n\n').version, '1.0');
    assert.deepEqual(parse('CONNECT [2001:db8::1]:443 HTTP/1.1\r\n\r\n').target, {
      kind: 'ipv6',
      host: '2001:db8::1',
      port: 443,
    });
    assert.equal(parseProxyRequestHead(b('CONNECT a:1 HTTP/1.1\nX: y\n\nrest'))?.length, 27);
  });

  test('bad targets', () => {
    assert.equal(parseCode('CONNECT example.com HTTP/1.1\r\n\r\n'), 'bad-target');
    assert.equal(parseCode('CONNECT 2001:db8::1:443 HTTP/1.1\r\n\r\n'), 'bad-target');
    assert.equal(parseCode('CONNECT [example.com]:443 HTTP/1.1\r\n\r\n'), 'bad-host');
    assert.equal(parseCode('CONNECT exa$mple.com:443 HTTP/1.1\r\n\r\n'), 'bad-host');
    assert.equal(parseCode('CONNECT :443 HTTP/1.1\r\n\r\n'), 'bad-host');
    assert.equal(parseCode('CONNECT a:0 HTTP/1.1\r\n\r\n'), 'bad-port');
    assert.equal(parseCode('CONNECT a:65536 HTTP/1.1\r\n\r\n'), 'bad-port');
    assert.equal(parseCode('CONNECT a:000443 HTTP/1.1\r\n\r\n'), 'bad-port');
    assert.equal(parseCode('CONNECT a:\x01 HTTP/1.1\r\n\r\n'), 'bad-target');
  });
});

describe('absolute-URI requests', () => {
  test('GET with path, query and a default port', () => {
    const head = 'GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n';
    assert.deepEqual(parseProxyRequestHead(b(head)), {
      value: {
        method: 'GET',
        version: '1.1',
        isConnect: false,
        target: { kind: 'domain', host: 'example.com', port: 80 },
        path: '/a/b?c=d',
        headers: [
          ['Host', 'example.com'],
          ['Accept', '*/*'],
        ],
      },
      length: head.length,
    });
  });

  test('path forms: empty, query only, fragment removed; scheme case-insensitive', () => {
    assert.equal(parse('GET http://a.io HTTP/1.1\r\n\r\n').path, '/');
    assert.equal(parse('GET http://a.io?x=1 HTTP/1.1\r\n\r\n').path, '/?x=1');
    assert.equal(parse('GET http://a.io/p#frag HTTP/1.1\r\n\r\n').path, '/p');
    assert.deepEqual(parse('POST HTTP://A.io:8080/ HTTP/1.0\r\n\r\n').target, {
      kind: 'domain',
      host: 'A.io',
      port: 8080,
    });
    assert.deepEqual(parse('GET http://[::1]:81/ HTTP/1.1\r\n\r\n').target, {
      kind: 'ipv6',
      host: '::1',
      port: 81,
    });
    assert.deepEqual(parse('GET http://[::1]/ HTTP/1.1\r\n\r\n').target.port, 80);
    assert.deepEqual(parse('GET http://a.io:/ HTTP/1.1\r\n\r\n').target.port, 80);
  });

  test('https://, other schemes, relative paths and userinfo are refused', () => {
    assert.equal(parseCode('GET https://example.com/ HTTP/1.1\r\n\r\n'), 'https-not-supported');
    assert.equal(parseCode('GET ftp://example.com/ HTTP/1.1\r\n\r\n'), 'bad-scheme');
    assert.equal(parseCode('GET / HTTP/1.1\r\nHost: example.com\r\n\r\n'), 'not-proxy-request');
    assert.equal(parseCode('OPTIONS * HTTP/1.1\r\n\r\n'), 'not-proxy-request');
    assert.equal(parseCode('GET example.com:80 HTTP/1.1\r\n\r\n'), 'bad-target');
    assert.equal(parseCode('GET http://u:p@example.com/ HTTP/1.1\r\n\r\n'), 'bad-target');
    assert.equal(parseCode('GET http:///x HTTP/1.1\r\n\r\n'), 'bad-host');
    assert.equal(parseCode('GET http://a.io/\xff HTTP/1.1\r\n\r\n'), 'bad-target');
  });

  test('the https error says to use CONNECT', () => {
    assert.throws(() => parseProxyRequestHead(b('GET https://a.io/ HTTP/1.1\r\n\r\n')), /CONNECT/);
  });
});

describe('Proxy-Authorization', () => {
  const withAuth = (v: string): string => `GET http://a.io/ HTTP/1.1\r\nProxy-Authorization: ${v}\r\n\r\n`;

  test('Basic credentials are decoded; the password may contain ":"', () => {
    const cred = Buffer.from('alice:pa:ss wörd').toString('base64');
    const r = parse(withAuth(`Basic ${cred}`));
    assert.deepEqual(r.proxyAuthorization, { username: 'alice', password: 'pa:ss wörd' });
    assert.deepEqual(parse(withAuth(`basic   ${Buffer.from('u:').toString('base64')}`)).proxyAuthorization, {
      username: 'u',
      password: '',
    });
  });

  test('other schemes are left out; malformed Basic is a WireError', () => {
    assert.equal(parse(withAuth('Digest username="a"')).proxyAuthorization, undefined);
    assert.equal(parse('GET http://a.io/ HTTP/1.1\r\n\r\n').proxyAuthorization, undefined);
    assert.equal(parseCode(withAuth('Basic')), 'bad-proxy-auth');
    assert.equal(parseCode(withAuth('Basic !!!')), 'bad-proxy-auth');
    assert.equal(parseCode(withAuth(`Basic ${Buffer.from('nocolon').toString('base64')}`)), 'bad-proxy-auth');
  });
});

describe('malformed heads', () => {
  test('head-too-large: without an end, and with an end past the limit', () => {
    assert.equal(parseCode('GET http://a.io/ HTTP/1.1\r\nX: ' + 'a'.repeat(100), 64), 'head-too-large');
    assert.equal(
      parseCode('GET http://a.io/ HTTP/1.1\r\nX: ' + 'a'.repeat(40) + '\r\n\r\n', 64),
      'head-too-large',
    );
    assert.equal(parseCode('GET http://a.io/ HTTP/1.1\r\nX: ' + 'a'.repeat(20) + '\r\n\r\n', 64), 'no error');
    assert.equal(parseProxyRequestHead(b('GET http://a.io/ HTTP/1.1\r\nX: aa'), 64), null);
    assert.equal(parseCode('GET http://a.io/ ' + 'a'.repeat(20000)), 'head-too-large');
  });

  test('a head that is exactly maxHeadBytes long is accepted', () => {
    const head = 'GET http://a.io/ HTTP/1.1\r\n\r\n';
    assert.equal(parseProxyRequestHead(b(head), head.length)?.length, head.length);
    assert.equal(parseCode(head, head.length - 1), 'head-too-large');
  });

  test('request line errors', () => {
    assert.equal(parseCode('GET http://a.io/ HTTP/2.0\r\n\r\n'), 'bad-version');
    assert.equal(parseCode('GET http://a.io/ HTTP/1.2\r\n\r\n'), 'bad-version');
    assert.equal(parseCode('GET http://a.io/ http/1.1\r\n\r\n'), 'bad-version');
    assert.equal(parseCode('GET http://a.io/\r\n\r\n'), 'bad-request-line');
    assert.equal(parseCode('GET  http://a.io/ HTTP/1.1\r\n\r\n'), 'bad-request-line');
    assert.equal(parseCode('GET http://a.io/ HTTP/1.1 x\r\n\r\n'), 'bad-request-line');
    assert.equal(parseCode('\r\n\r\n'), 'bad-request-line');
    assert.equal(parseCode('G(T http://a.io/ HTTP/1.1\r\n\r\n'), 'bad-method');
  });

  test('a head that cannot be HTTP is refused before its end arrives', () => {
    assert.equal(parseCode('\x16\x03\x01\x02\x00'), 'bad-method'); // a TLS ClientHello
    assert.equal(parseCode(' GET'), 'bad-method');
    assert.equal(parseCode('GE\x00'), 'bad-method');
    assert.equal(parseProxyRequestHead(b('GET')), null);
    assert.equal(parseProxyRequestHead(b('GET \x00')), null); // judged once the head is complete
  });

  test('header line errors', () => {
    const withHeader = (h: string): string => `GET http://a.io/ HTTP/1.1\r\n${h}\r\n\r\n`;
    assert.equal(parseCode(withHeader('NoColon')), 'bad-header');
    assert.equal(parseCode(withHeader('X: a\r\n continued')), 'bad-header');
    assert.equal(parseCode(withHeader('Bad Name: x')), 'bad-header');
    assert.equal(parseCode(withHeader(': x')), 'bad-header');
    assert.equal(parseCode(withHeader('X: a\x00b')), 'bad-header');
    assert.equal(parseCode(withHeader('X: a\rb')), 'bad-header');
    assert.deepEqual(parse(withHeader('X:\t v \t')).headers, [['X', 'v']]);
    assert.deepEqual(parse(withHeader('X:')).headers, [['X', '']]);
  });
});

describe('buildForwardHead', () => {
  test('origin form, Host from the target, hop-by-hop headers dropped, Connection: close', () => {
    const req = parse(
      'GET http://example.com:8080/x?y HTTP/1.1\r\nHost: evil.example\r\nProxy-Connection: keep-alive\r\n' +
        'Proxy-Authorization: Basic dTpw\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: 300\r\nTE: trailers\r\n' +
        'Trailer: X\r\nUpgrade: h2c\r\nX-Hop: 1\r\nAccept: */*\r\nContent-Length: 3\r\n\r\n',
    );
    assert.equal(
      buildForwardHead(req).toString('latin1'),
      'GET /x?y HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nContent-Length: 3\r\nConnection: close\r\n\r\n',
    );
  });

  test('Host is added when missing, port 80 left out, IPv6 bracketed', () => {
    assert.equal(
      buildForwardHead(parse('HEAD http://a.io/ HTTP/1.0\r\n\r\n')).toString(),
      'HEAD / HTTP/1.0\r\nHost: a.io\r\nConnection: close\r\n\r\n',
    );
    assert.equal(
      buildForwardHead(parse('GET http://[2001:db8::1]:81/ HTTP/1.1\r\n\r\n')).toString(),
      'GET / HTTP/1.1\r\nHost: [2001:db8::1]:81\r\nConnection: close\r\n\r\n',
    );
  });

  test('message framing survives a Connection header that names it', () => {
    const req = parse(
      'POST http://a.io/ HTTP/1.1\r\nConnection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    assert.match(buildForwardHead(req).toString(), /\r\nTransfer-Encoding: chunked\r\n/);
  });

  test('latin1 header bytes pass through unchanged', () => {
    const req = parse('GET http://a.io/ HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n');
    assert.ok(buildForwardHead(req).includes(Buffer.from([0x63, 0x61, 0x66, 0xe9])));
  });

  test('a CONNECT request has nothing to forward', () => {
    assert.equal(
      code(() => buildForwardHead(parse('CONNECT a:1 HTTP/1.1\r\n\r\n'))),
      'bad-request',
    );
  });
});

describe('responses', () => {
  test('CONNECT_ESTABLISHED', () => {
    assert.equal(CONNECT_ESTABLISHED.toString('latin1'), 'HTTP/1.1 200 Connection Established\r\n\r\n');
  });

  test('407 with a challenge', () => {
    assert.equal(
      encodeSimpleResponse(407, 'Proxy Authentication Required', [
        ['Proxy-Authenticate', 'Basic realm="pigeon"'],
      ]).toString(),
      'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="pigeon"\r\n' +
        'Content-Length: 0\r\nConnection: close\r\n\r\n',
    );
    assert.equal(
      encodeSimpleResponse(502, 'Bad Gateway').toString(),
      'HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n',
    );
  });

  test('given Content-Length / Connection are not duplicated', () => {
    assert.equal(
      encodeSimpleResponse(400, 'Bad Request', [['content-length', '5']]).toString(),
      'HTTP/1.1 400 Bad Request\r\ncontent-length: 5\r\nConnection: close\r\n\r\n',
    );
  });

  test('header injection and bad status codes are refused', () => {
    assert.equal(
      code(() => encodeSimpleResponse(99, 'x')),
      'bad-status',
    );
    assert.equal(
      code(() => encodeSimpleResponse(600, 'x')),
      'bad-status',
    );
    assert.equal(
      code(() => encodeSimpleResponse(200, 'OK\r\nSet-Cookie: a')),
      'bad-reason',
    );
    assert.equal(
      code(() => encodeSimpleResponse(200, 'OK', [['X', 'a\r\nY: b']])),
      'bad-header',
    );
    assert.equal(
      code(() => encodeSimpleResponse(200, 'OK', [['X Y', 'a']])),
      'bad-header',
    );
  });
});
