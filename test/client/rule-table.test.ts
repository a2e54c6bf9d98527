// Rule matching, table-driven: every matcher kind, first-match order, and the shipped presets on
// real-world names and addresses. Decisions only: nothing here dials anything.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRule, parseRuleList } from '../../src/wire/rules.js';
import { DomainSet, IpRangeSet, RuleList, RuleTable, type RouteQuery } from '../../src/client/rule-table.js';
import {
  builtinList,
  countryRanges,
  MESSAGING_APPS,
  presetRules,
  type Preset,
} from '../../src/client/presets.js';
import { makeAddress } from '../../src/wire/socks-address.js';

function query(dest: string, extra: Partial<RouteQuery> = {}): RouteQuery {
  const i = dest.lastIndexOf(':');
  const hasPort =
    i > 0 && /^\d+$/.test(dest.slice(i + 1)) && (dest.startsWith('[') || dest.indexOf(':') === i);
  const a = makeAddress(hasPort ? dest.slice(0, i) : dest, hasPort ? Number(dest.slice(i + 1)) : 443);
  return { host: a.host, kind: a.kind, port: a.port, network: 'tcp', inbound: 'mixed', ...extra };
}

function table(lines: string[], lists: Record<string, string> = {}): RuleTable {
  return new RuleTable(
    lines.map((l) => parseRule(l)),
    {
      list: (n) => (n in lists ? new RuleList(parseRuleList(lists[n]!).entries) : builtinList(n)),
      country: (cc) => countryRanges(cc),
    },
  );
}

const target = (t: RuleTable, q: RouteQuery): string => {
  const d = t.decide(q).target;
  return d.kind === 'group' ? d.name : d.kind.toUpperCase();
};

describe('each matcher', () => {
  const t = table(
    [
      'DOMAIN,exact.example,a',
      'DOMAIN-SUFFIX,suffix.example,b',
      'DOMAIN-KEYWORD,kword,c',
      'DOMAIN-REGEX,^re\\d+\\.example$,d',
      'IP-CIDR,91.108.4.0/22,e',
      'IP-CIDR6,2001:67c:4e8::/48,f',
      'DST-PORT,5222/3478-3481,g',
      'NETWORK,udp,h',
      'INBOUND,forward,i',
      'RULE-SET,mine,j',
      'MATCH,DIRECT',
    ],
    { mine: 'listed.example\nfull:only.example\n203.0.113.0/24\n' },
  );
  const cases: [string, RouteQuery, string][] = [
    ['exact name', query('exact.example'), 'a'],
    ['exact name, upper case and trailing dot', query('EXACT.example.'), 'a'],
    ['subdomain of an exact name does not match DOMAIN', query('x.exact.example'), 'DIRECT'],
    ['suffix itself', query('suffix.example'), 'b'],
    ['subdomain of a suffix', query('a.b.suffix.example'), 'b'],
    ['a name that only ends with the same letters', query('notsuffix.example'), 'DIRECT'],
    ['keyword anywhere', query('mykwordsite.test'), 'c'],
    ['regex', query('re42.example'), 'd'],
    ['regex is anchored as written', query('xre42.example'), 'DIRECT'],
    ['IPv4 inside the range', query('91.108.7.255'), 'e'],
    ['IPv4 just outside', query('91.108.8.0'), 'DIRECT'],
    ['IPv4-mapped IPv6 matches the IPv4 range', query('[::ffff:91.108.4.1]:443'), 'e'],
    ['IPv6 inside the range', query('[2001:67c:4e8:1::5]:443'), 'f'],
    ['IP rules do not match names', query('91.108.4.1.example'), 'DIRECT'],
    ['port in a list', query('198.51.100.1:5222'), 'g'],
    ['port in a range', query('198.51.100.1:3480'), 'g'],
    ['network', query('198.51.100.1:53', { network: 'udp' }), 'h'],
    ['inbound', query('198.51.100.1:80', { inbound: 'forward' }), 'i'],
    ['rule-set suffix entry', query('a.listed.example'), 'j'],
    ['rule-set full entry', query('only.example'), 'j'],
    ['rule-set full entry, subdomain', query('x.only.example'), 'DIRECT'],
    ['rule-set CIDR entry', query('203.0.113.9'), 'j'],
    [
      'an IP the local DNS answered for a name matches name rules',
      query('198.51.100.7', { domain: 'exact.example' }),
      'a',
    ],
    ['nothing matched: MATCH', query('other.example'), 'DIRECT'],
  ];
  for (const [what, q, want] of cases) test(what, () => assert.equal(target(t, q), want));

  test('first match wins, and the rule is reported as written', () => {
    const t2 = table(['DOMAIN-SUFFIX,example,a', 'DOMAIN,x.example,b', 'MATCH,REJECT']);
    assert.deepEqual(t2.decide(query('x.example')), {
      target: { kind: 'group', name: 'a' },
      rule: 'DOMAIN-SUFFIX,example,a',
    });
    assert.deepEqual(t2.decide(query('y.test')).target, { kind: 'reject' });
  });

  test('a missing list or country names the rule', () => {
    assert.throws(() => table(['RULE-SET,nope,proxy']), /RULE-SET,nope,proxy: no rule list named "nope"/);
    assert.throws(() => table(['GEOIP,DE,DIRECT']), /no address ranges for country "DE"/);
  });
});

describe('sets', () => {
  test('DomainSet walks every parent of a name', () => {
    const s = new DomainSet();
    s.addSuffix('org');
    assert.ok(s.has('a.b.c.org'));
    assert.ok(s.has('org'));
    assert.ok(!s.has('org.example'));
  });

  test('IpRangeSet merges overlapping and touching ranges and searches both families', () => {
    const s = new IpRangeSet();
    const list = parseRuleList('10.0.0.0/9\n10.128.0.0/9\n10.64.0.0/10\n::/1\n').entries;
    for (const e of list) if (e.type === 'cidr') s.add(e.value);
    assert.ok(s.has('10.0.0.0') && s.has('10.255.255.255') && !s.has('11.0.0.0') && !s.has('9.255.255.255'));
    assert.ok(s.has('2001:db8::1') && !s.has('8000::1'));
    assert.ok(!s.has('not-an-ip'));
  });
});

describe('presets on real-world names and addresses (decisions only)', () => {
  const decide = (preset: Preset, dest: string, network: 'tcp' | 'udp' = 'tcp'): string =>
    target(table(presetRules(preset, 'proxy')), query(dest, { network }));

  const messaging: [string, string][] = [
    ['web.telegram.org', 'proxy'],
    ['t.me', 'proxy'],
    ['91.108.56.130', 'proxy'], // Telegram DC, dialled by address
    ['149.154.167.51', 'proxy'],
    ['[2001:67c:4e8:f004::a]:443', 'proxy'],
    ['g.whatsapp.net', 'proxy'],
    ['157.240.1.53', 'proxy'], // Meta (AS32934): WhatsApp, Instagram, Messenger
    ['chat.signal.org', 'proxy'],
    ['www.instagram.com', 'proxy'],
    ['edge-chat.messenger.com', 'proxy'],
    ['www.facebook.com', 'proxy'],
    ['gateway.discord.gg', 'proxy'],
    ['talk.kakao.com', 'proxy'],
    ['obs.line-scdn.net', 'proxy'],
    ['www.viber.com', 'proxy'],
    ['www.skype.com', 'proxy'],
    ['www.baidu.com', 'DIRECT'],
    ['weixin.qq.com', 'DIRECT'],
    ['example.com', 'DIRECT'],
    ['192.168.1.1', 'DIRECT'],
    ['printer.local', 'DIRECT'],
  ];
  for (const [dest, want] of messaging)
    test(`messaging: ${dest} → ${want}`, () => assert.equal(decide('messaging', dest), want));

  test('messaging: UDP to Telegram and WhatsApp is tunnelled too (calls)', () => {
    assert.equal(decide('messaging', '91.108.8.1:599', 'udp'), 'proxy');
    assert.equal(decide('messaging', '157.240.1.53:3478', 'udp'), 'proxy');
  });

  const bypass: [string, string][] = [
    ['www.baidu.com', 'DIRECT'],
    ['www.qq.com', 'DIRECT'],
    ['gov.cn', 'DIRECT'],
    ['1.0.1.1', 'DIRECT'], // a Chinese address (1.0.1.0/24, CN)
    ['web.telegram.org', 'proxy'],
    ['www.google.com', 'proxy'],
    ['8.8.8.8', 'proxy'],
    ['10.0.0.2', 'DIRECT'],
  ];
  for (const [dest, want] of bypass)
    test(`bypass-china: ${dest} → ${want}`, () => assert.equal(decide('bypass-china', dest), want));

  const global: [string, string][] = [
    ['www.baidu.com', 'proxy'],
    ['example.com', 'proxy'],
    ['8.8.8.8', 'proxy'],
    ['127.0.0.1', 'DIRECT'],
    ['[fe80::1]:443', 'DIRECT'],
  ];
  for (const [dest, want] of global)
    test(`global: ${dest} → ${want}`, () => assert.equal(decide('global', dest), want));

  test('every app of the messaging preset has a list with its source noted', () => {
    for (const app of MESSAGING_APPS) {
      const l = builtinList(app);
      assert.ok(l && l.size > 0, `${app} has entries`);
    }
    assert.ok(builtinList('messaging')!.size > 500);
    assert.ok(countryRanges('cn')!.size > 1000);
  });
});
