// The client's YAML config and flags: a valid file becomes the expected plan; every mistake is reported
// as FILE:LINE with what is wrong, all at once; the command exits 2 with those lines and no stack trace.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ConfigError, loadClientPlan, parseDuration } from '../../src/cli/client-config.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { ensureBuilt } from '../helpers/pigeon.js';

const URI_A = 'ss://YWVzLTI1Ni1nY206cGFzcw@127.0.0.1:8388#A';
const URI_B = 'ss://YWVzLTI1Ni1nY206cGFzcw@127.0.0.1:8389#B';

function files(t: TestContext, content: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(content)) writeFileSync(join(dir, name), text);
  return dir;
}

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('client config', () => {
  test('a full config becomes the plan: groups, subscriptions, rules before the preset, DNS, control', (t) => {
    const dir = files(t, {
      'client.yaml': `# Pigeon client
listen: 127.0.0.1:1090
preset: bypass-china
groups:
  - name: proxy
    type: url-test
    servers: ["${URI_A}", "${URI_B}"]
    subscriptions:
      - https://sub.example/sip008.json
      - { url: "ssconf://sub.example/key", interval: 10m }
    check: { url: "http://127.0.0.1:9/generate_204", interval: 5s, timeout: 2s }
rules:
  - DOMAIN-SUFFIX,corp.example,DIRECT
  - RULE-SET,mylist,proxy
rule-sets:
  mylist: lists/mine.txt
dns:
  listen: 127.0.0.1:5353
  doh: https://dns.example/dns-query
  direct: ["192.0.2.53:53"]
control: { listen: "127.0.0.1:9090", token: "0123456789abcdef0123" }
`,
    });
    const plan = loadClientPlan({ config: join(dir, 'client.yaml') });
    assert.equal(plan.listen.port, 1090);
    assert.equal(plan.preset, 'bypass-china');
    assert.equal(plan.groups.length, 1);
    const g = plan.groups[0]!;
    assert.equal(g.kind, 'url-test');
    assert.deepEqual(
      g.servers.map((s) => s.name),
      ['A', 'B'],
    );
    assert.deepEqual(g.subscriptions, [
      { url: 'https://sub.example/sip008.json', intervalMs: 3_600_000 },
      { url: 'ssconf://sub.example/key', intervalMs: 600_000 },
    ]);
    assert.deepEqual(g.check, { url: 'http://127.0.0.1:9/generate_204', intervalMs: 5000, timeoutMs: 2000 });
    assert.deepEqual(
      plan.rules.slice(0, 2).map((r) => r.text),
      ['DOMAIN-SUFFIX,corp.example,DIRECT', 'RULE-SET,mylist,proxy'],
    );
    assert.equal(plan.rules.at(-1)!.text, 'MATCH,proxy'); // bypass-china ends by tunnelling the rest
    assert.equal(plan.ruleSets.mylist, join(dir, 'lists/mine.txt'));
    assert.equal(plan.dns.listen?.port, 5353);
    assert.equal(plan.dns.doh, 'https://dns.example/dns-query');
    assert.equal(plan.dns.direct?.[0]?.host, '192.0.2.53');
    assert.equal(plan.control.token, '0123456789abcdef0123');
  });

  test('flags alone: --server makes a fallback group "proxy" with the messaging preset', () => {
    const plan = loadClientPlan({ server: [parseSsUri(URI_A), parseSsUri(URI_A)] });
    assert.equal(plan.preset, 'messaging');
    assert.deepEqual(
      plan.groups.map((g) => [g.name, g.kind, g.servers.map((s) => s.name)]),
      [['proxy', 'fallback', ['A', 'A (2)']]],
    );
    assert.equal(plan.rules.at(-1)!.text, 'MATCH,DIRECT');
    assert.ok(plan.rules.some((r) => r.text === 'RULE-SET,messaging,proxy'));
  });

  test('flags override the file: --server replaces the servers of "proxy", --preset and --dns win', (t) => {
    const dir = files(t, {
      'c.yaml': `preset: global\ngroups:\n  - name: proxy\n    servers: ["${URI_A}"]\ndns: { listen: "127.0.0.1:53" }\n`,
    });
    const plan = loadClientPlan({
      config: join(dir, 'c.yaml'),
      server: [parseSsUri(URI_B)],
      preset: 'messaging',
      dns: { kind: 'ipv4', host: '127.0.0.1', port: 1053 },
    });
    assert.deepEqual(
      plan.groups[0]!.servers.map((s) => s.name),
      ['B'],
    );
    assert.equal(plan.preset, 'messaging');
    assert.equal(plan.dns.listen?.port, 1053);
  });

  test('--rules reads a plain rules file, before the preset', (t) => {
    const dir = files(t, {
      'rules.txt': '# mine\nDOMAIN,a.example,proxy\n\nIP-CIDR,198.51.100.0/24,REJECT  # lab\n',
    });
    const plan = loadClientPlan({ server: [parseSsUri(URI_A)], rules: join(dir, 'rules.txt') });
    assert.deepEqual(
      plan.rules.slice(0, 2).map((r) => r.text),
      ['DOMAIN,a.example,proxy', 'IP-CIDR,198.51.100.0/24,REJECT'],
    );
  });

  test('every mistake in a file is reported with its line', (t) => {
    const dir = files(t, {
      'bad.yaml': `listen: 127.0.0.1:99999
preset: everything
groups:
  - name: proxy
    type: round-robin
    servers:
      - "ss://bm90LWEta2V5@127.0.0.1:1"
    check: { interval: soon }
  - name: direct
    servers: ["${URI_A}"]
rules:
  - DOMAIN-SUFFIX,ok.example,proxy
  - HOST,example.com,proxy
  - DOMAIN,x.example,nowhere
dns:
  doh: http://plain.example/dns-query
  colour: blue
`,
      'rules.txt': 'DOMAIN,fine.example,proxy\nIP-CIDR,10.0.0.1/8,proxy\n',
    });
    const file = join(dir, 'bad.yaml');
    const got = problems(() => loadClientPlan({ config: file, rules: join(dir, 'rules.txt') }));
    const expect: [number | string, RegExp][] = [
      [1, /listen: port out of range/],
      [2, /preset: "everything" is not one of messaging, global, bypass-china, none/],
      [5, /groups\.0\.type: "round-robin" is not a group type/],
      [7, /groups\.0\.servers\.0: invalid ss:\/\/ URI/],
      [8, /groups\.0\.check\.interval: "soon" is not a duration/],
      [9, /groups\.1\.name: "direct" is reserved/],
      [13, /unknown rule type "HOST"/],
      [16, /dns\.doh: "http:\/\/plain\.example\/dns-query" is not a https URL/],
      [17, /dns\.colour: unknown setting/],
      ['rules.txt:2', /bits set after the \/8 prefix/],
    ];
    for (const [where, re] of expect) {
      const prefix = typeof where === 'number' ? `${file}:${where}: ` : join(dir, where);
      assert.ok(
        got.some((p) => p.startsWith(prefix) && re.test(p)),
        `expected "${prefix}… ${re}" among:\n${got.join('\n')}`,
      );
    }
    assert.ok(
      got.some((p) => /no server group named "nowhere"/.test(p)),
      got.join('\n'),
    );
  });

  test('YAML syntax errors and unreadable files are reported, not thrown', (t) => {
    const dir = files(t, { 'broken.yaml': 'groups:\n  - name: proxy\n   servers: [\n' });
    const got = problems(() => loadClientPlan({ config: join(dir, 'broken.yaml') }));
    assert.match(got[0]!, new RegExp(`^${join(dir, 'broken.yaml')}:\\d+: `));
    assert.match(
      problems(() => loadClientPlan({ config: join(dir, 'missing.yaml') }))[0]!,
      /cannot read the config \(ENOENT\)/,
    );
    assert.match(problems(() => loadClientPlan({}))[0]!, /no server: give --server/);
  });

  test('durations', () => {
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration(2), 2000);
    assert.equal(parseDuration('0s'), undefined);
    assert.equal(parseDuration('soon'), undefined);
  });

  test('the command exits 2 with every problem on its own line and no stack trace', (t) => {
    ensureBuilt();
    const dir = files(t, {
      'c.yaml': `groups:\n  - name: proxy\n    servers: ["${URI_A}"]\nrules:\n  - DOMAIN,,proxy\npreset: x\n`,
    });
    const r = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '../../bin/pigeon.js'), 'client', '--config', join(dir, 'c.yaml')],
      {
        encoding: 'utf8',
        timeout: 20_000,
      },
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /invalid client configuration:/);
    assert.match(r.stderr, /c\.yaml:5: DOMAIN needs a value/);
    assert.match(r.stderr, /c\.yaml:6: preset: "x" is not one of/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});
