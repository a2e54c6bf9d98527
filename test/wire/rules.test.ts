import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, parseRule, parseRuleList, parseTarget } from '../../src/wire/rules.js';
import { wireCode } from '../helpers/wire-error.js';

describe('rule lines (Clash form)', () => {
  const ok: [string, unknown, unknown][] = [
    [
      'DOMAIN,Web.Telegram.org.,proxy',
      { type: 'domain', value: 'web.telegram.org' },
      { kind: 'group', name: 'proxy' },
    ],
    [
      'domain-suffix,.telegram.org,DIRECT',
      { type: 'domain-suffix', value: 'telegram.org' },
      { kind: 'direct' },
    ],
    ['DOMAIN-KEYWORD,WhatsApp,reject', { type: 'domain-keyword', value: 'whatsapp' }, { kind: 'reject' }],
    [
      'DST-PORT,443/8000-9000,proxy',
      {
        type: 'dst-port',
        value: [
          { from: 443, to: 443 },
          { from: 8000, to: 9000 },
        ],
      },
      { kind: 'group', name: 'proxy' },
    ],
    ['NETWORK,UDP,proxy', { type: 'network', value: 'udp' }, { kind: 'group', name: 'proxy' }],
    ['INBOUND,mixed,DIRECT', { type: 'inbound', value: 'mixed' }, { kind: 'direct' }],
    ['GEOIP,cn,DIRECT', { type: 'geoip', value: 'cn' }, { kind: 'direct' }],
    ['RULE-SET,telegram,proxy', { type: 'rule-set', value: 'telegram' }, { kind: 'group', name: 'proxy' }],
    ['MATCH,proxy', { type: 'match' }, { kind: 'group', name: 'proxy' }],
    [' IP-CIDR , 91.108.4.0/22 , proxy , no-resolve ', { type: 'ip-cidr' }, { kind: 'group', name: 'proxy' }],
  ];
  for (const [line, matcher, target] of ok) {
    test(`parses ${line.trim()}`, () => {
      const r = parseRule(line);
      assert.deepEqual(r.target, target);
      assert.equal(r.text, line.trim());
      for (const [k, v] of Object.entries(matcher as object)) assert.deepEqual((r.matcher as never)[k], v);
    });
  }

  test('a regular expression may contain commas', () => {
    const r = parseRule('DOMAIN-REGEX,^a{1,3}\\.example\\.com$,proxy');
    assert.equal(r.matcher.type, 'domain-regex');
    assert.ok(r.matcher.type === 'domain-regex' && r.matcher.value.test('aa.example.com'));
  });

  const bad: [string, string, RegExp][] = [
    ['HOST,example.com,proxy', 'bad-rule', /unknown rule type "HOST"/],
    ['DOMAIN,example.com', 'bad-rule', /DOMAIN,VALUE,TARGET/],
    ['DOMAIN,exa mple.com,proxy', 'bad-domain', /not a domain name/],
    ['IP-CIDR,91.108.4.1/22,proxy', 'bad-cidr', /bits set after the \/22/],
    ['IP-CIDR,91.108.4.0/33,proxy', 'bad-cidr', /prefix length must be 0..32/],
    ['IP-CIDR,telegram.org,proxy', 'bad-cidr', /not an IP range/],
    ['DST-PORT,0,proxy', 'bad-port', /not a port/],
    ['DST-PORT,9000-8000,proxy', 'bad-port', /not a port/],
    ['NETWORK,sctp,proxy', 'bad-rule', /tcp or udp/],
    ['GEOIP,CHN,DIRECT', 'bad-rule', /two-letter country code/],
    ['DOMAIN-REGEX,(unclosed,proxy', 'bad-regex', /not a valid regular expression/],
    ['DOMAIN,example.com,my proxy', 'bad-target', /DIRECT, REJECT or a group name/],
    ['MATCH', 'bad-rule', /MATCH takes one target/],
  ];
  for (const [line, code, message] of bad) {
    test(`refuses ${line}`, () => {
      assert.equal(
        wireCode(() => parseRule(line)),
        code,
      );
      assert.throws(() => parseRule(line), message);
    });
  }

  test('targets: DIRECT and REJECT in any case, anything else a group name', () => {
    assert.deepEqual(parseTarget('direct'), { kind: 'direct' });
    assert.deepEqual(parseTarget('Reject'), { kind: 'reject' });
    assert.deepEqual(parseTarget('hk-servers'), { kind: 'group', name: 'hk-servers' });
  });
});

describe('CIDRs', () => {
  const cases: [string, boolean, bigint, bigint][] = [
    ['91.108.4.0/22', false, 0x5b6c0400n, 0x5b6c07ffn],
    ['0.0.0.0/0', false, 0n, 0xffffffffn],
    ['10.1.2.3', false, 0x0a010203n, 0x0a010203n],
    ['2001:b28:f23d::/48', true, 0x20010b28f23d00000000000000000000n, 0x20010b28f23dffffffffffffffffffffn],
    ['::/0', true, 0n, (1n << 128n) - 1n],
  ];
  for (const [text, v6, first, last] of cases) {
    test(text, () => assert.deepEqual(parseCidr(text), { v6, first, last, text }));
  }
});

describe('rule lists (v2fly form plus CIDRs)', () => {
  test('every entry kind, comments, attributes and blank lines', () => {
    const { entries, errors } = parseRuleList(
      [
        '# Telegram',
        'telegram.org',
        'domain:T.me @ads',
        'full:web.telegram.org',
        'keyword:telegram',
        'regexp:^tg\\d+\\.example$',
        'cidr:91.108.4.0/22',
        '2001:67c:4e8::/48 # inline comment',
        '',
        '149.154.167.51',
      ].join('\r\n'),
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(
      entries.map((e) => [e.type, e.type === 'cidr' ? e.value.text : String(e.value)]),
      [
        ['domain', 'telegram.org'],
        ['domain', 't.me'],
        ['full', 'web.telegram.org'],
        ['keyword', 'telegram'],
        ['regexp', '/^tg\\d+\\.example$/i'],
        ['cidr', '91.108.4.0/22'],
        ['cidr', '2001:67c:4e8::/48'],
        ['cidr', '149.154.167.51'],
      ],
    );
  });

  test('bad lines are reported with their line numbers, good ones kept', () => {
    const { entries, errors } = parseRuleList('ok.example\nsuffix:x.example\n\n91.108.4.0/33\nbad name\n');
    assert.equal(entries.length, 2); // "bad name" reads as the entry "bad" with a trailing tag
    assert.deepEqual(
      errors.map((e) => e.line),
      [2, 4],
    );
    assert.match(errors[0]!.message, /unknown entry type "suffix:"/);
  });
});
