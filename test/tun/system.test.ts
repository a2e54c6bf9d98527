// What TUN mode would install, as text (no root): the policy rules, the routes, the kill switch, and
// which ranges "--tun-routes preset" routes for a rule list.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRIORITIES, TABLE_ALL, TABLE_RANGES, killSwitchRuleset, routeBatch } from '../../src/tun/system.js';
import { tunnelledRanges } from '../../src/client/tun-inbound.js';
import { presetRules } from '../../src/client/presets.js';
import { parseRule } from '../../src/wire/rules.js';

describe('routeBatch', () => {
  test('"all": the bypass, DNS, LAN-stays-direct and catch-all rules, in that order', () => {
    const text = routeBatch(
      { device: 'pigeon0', mode: 'all', ranges: { v4: [], v6: [] }, bypassUid: 7367015, v6: true },
      '-4',
    );
    assert.equal(
      text,
      [
        `route replace 0.0.0.0/0 dev pigeon0 table ${TABLE_ALL}`,
        `route replace unreachable 0.0.0.0/0 table ${TABLE_ALL} metric 4000000000`,
        `rule add priority ${PRIORITIES.bypass} uidrange 7367015-7367015 lookup main`,
        `rule add priority ${PRIORITIES.dns} ipproto udp dport 53 lookup ${TABLE_ALL}`,
        `rule add priority ${PRIORITIES.dns} ipproto tcp dport 53 lookup ${TABLE_ALL}`,
        `rule add priority ${PRIORITIES.lan} lookup main suppress_prefixlength 0`,
        `rule add priority ${PRIORITIES.tun} lookup ${TABLE_ALL}`,
        '',
      ].join('\n'),
    );
    assert.match(
      routeBatch(
        { device: 'pigeon0', mode: 'all', ranges: { v4: [], v6: [] }, bypassUid: 1, v6: true },
        '-6',
      ),
      /route replace ::\/0 dev pigeon0/,
    );
  });

  test('"ranges": the ranges in their own table, no LAN rule; DNS still to the TUN', () => {
    const text = routeBatch(
      {
        device: 'pigeon0',
        mode: 'ranges',
        ranges: { v4: ['91.108.4.0/22', '149.154.160.0/20'], v6: ['2001:b28:f23d::/48'] },
        bypassUid: 5,
        v6: false,
      },
      '-4',
    );
    assert.match(text, new RegExp(`route replace 91\\.108\\.4\\.0/22 dev pigeon0 table ${TABLE_RANGES}`));
    assert.match(text, new RegExp(`route replace 149\\.154\\.160\\.0/20 dev pigeon0 table ${TABLE_RANGES}`));
    assert.doesNotMatch(text, /2001:b28/);
    assert.doesNotMatch(text, /suppress_prefixlength/);
    assert.match(text, new RegExp(`rule add priority ${PRIORITIES.tun} lookup ${TABLE_RANGES}\n`));
    assert.match(text, new RegExp(`ipproto udp dport 53 lookup ${TABLE_ALL}`));
  });
});

describe('killSwitchRuleset', () => {
  test('"all": loopback, the TUN, Pigeon\'s own sockets and the LAN pass; the rest is dropped', () => {
    const text = killSwitchRuleset({
      device: 'pigeon0',
      mode: 'all',
      bypassUid: 7367015,
      lan: { v4: ['192.168.1.0/24', '169.254.0.0/16'], v6: [] },
      ranges: { v4: [], v6: [] },
    });
    assert.match(text, /^table inet pigeon \{/);
    assert.match(
      text,
      /set lan4 \{\n\s+type ipv4_addr\n\s+flags interval\n\s+auto-merge\n\s+elements = \{ 192\.168\.1\.0\/24, 169\.254\.0\.0\/16 \}/,
    );
    assert.match(
      text,
      /set lan6 \{\n\s+type ipv6_addr\n\s+flags interval\n\s+auto-merge\n\s+\}/,
      'an empty set has no elements line',
    );
    const output = /chain output \{([^}]*)\}/.exec(text)![1]!;
    assert.deepEqual(
      output
        .trim()
        .split('\n')
        .map((l) => l.trim()),
      [
        'type filter hook output priority filter; policy accept;',
        'oifname "lo" accept',
        'oifname "pigeon0" accept',
        'meta skuid 7367015 accept',
        'ip daddr @lan4 accept',
        'ip6 daddr @lan6 accept',
        'counter drop',
      ],
    );
    const forward = /chain forward \{([^}]*)\}/.exec(text)![1]!;
    assert.doesNotMatch(forward, /skuid/, 'forwarded packets have no local owner');
    assert.match(forward, /counter drop/);
  });

  test('"ranges": only the tunnelled ranges and plain DNS are held back', () => {
    const text = killSwitchRuleset({
      device: 'tun9',
      mode: 'ranges',
      bypassUid: 1,
      lan: { v4: [], v6: [] },
      ranges: { v4: ['91.108.4.0/22'], v6: ['2001:b28:f23d::/48'] },
    });
    const output = /chain output \{([^}]*)\}/.exec(text)![1]!;
    assert.match(output, /oifname "tun9" accept/);
    assert.match(
      output,
      /ip daddr @tunnelled4 counter drop\n\s+ip6 daddr @tunnelled6 counter drop\n\s+udp dport 53 counter drop\n\s+tcp dport 53 counter drop/,
    );
    assert.doesNotMatch(output, /^\s+counter drop$/m, 'no catch-all drop');
    assert.match(text, /elements = \{ 2001:b28:f23d::\/48 \}/);
  });
});

describe('tunnelledRanges', () => {
  test("the messaging preset: the shipped ranges of the apps (Telegram's among them), not all", () => {
    const r = tunnelledRanges(presetRules('messaging', 'proxy').map((l) => parseRule(l)));
    assert.equal(r.all, false);
    assert.ok(r.v4.includes('91.108.4.0/22'), 'Telegram range missing');
    assert.ok(r.v4.length > 50 && r.v6.length > 5, `${r.v4.length} IPv4 and ${r.v6.length} IPv6 ranges`);
    assert.ok(!r.v4.includes('192.168.0.0/16'), 'the private ranges go direct');
  });

  test('global: everything; user IP-CIDR rules and rule sets to a group count, DIRECT ones do not', () => {
    assert.equal(tunnelledRanges(presetRules('global', 'proxy').map((l) => parseRule(l))).all, true);
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-ranges-'));
    try {
      const list = join(dir, 'mine.txt');
      writeFileSync(list, 'example.org\ncidr:198.51.100.0/24\n2001:db8:7::/48\n');
      const rules = [
        'IP-CIDR,10.77.2.0/24,proxy',
        'IP-CIDR,10.1.0.0/16,DIRECT',
        'RULE-SET,mine,proxy',
        'DOMAIN-SUFFIX,example.com,proxy',
        'MATCH,DIRECT',
      ].map((l) => parseRule(l));
      const r = tunnelledRanges(rules, { mine: list });
      assert.deepEqual(r, { all: false, v4: ['10.77.2.0/24', '198.51.100.0/24'], v6: ['2001:db8:7::/48'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
