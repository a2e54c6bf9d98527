// The censor lab end to end (root: network namespaces and tcpdump; in CI a missing privilege or tool is
// a failure, elsewhere a skip). One lab run over every configuration, then its verdicts:
//   - plain AEAD is flagged by the fully-encrypted rule (the sanity check that capture and judge work);
//   - the disguised configurations and Trojan are never flagged (Trojan's first segment is a ClientHello);
//   - no plaintext DNS query for the blocked name leaves the client host, while the direct name's does
//     (the control: the censor sees plaintext DNS);
//   - no blocklisted SNI on any tunnel connection, while the direct request's is seen (the control);
//   - the server is indistinguishable under the published probes, and no replay reaches the destination:
//     a Shadowsocks server by one reaction to every probe, Trojan (TLS and a cover site) by meeting,
//     probe by probe, the reaction class of an ordinary HTTPS server given the same probes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { requireCapture } from '../helpers/capture.js';
import { BLOCKED_NAME, HOME_NAME, LAB_CONFIGS, formatLabReport, runLab } from '../../src/lab/run.js';
import { LAB_ADDRESSES, NS_PREFIX } from '../../src/lab/topology.js';

const CONNECTIONS = 10;
const ROOT = join(import.meta.dirname, '../..');

test('pigeon lab without root: one line and exit code 2', (t) => {
  const asRoot = process.getuid?.() === 0;
  const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
  if (asRoot && nobody.status !== 0) return t.skip('no "nobody" user to drop root to');
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'lab'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
    ...(asRoot ? { uid: Number(nobody.stdout.trim()), gid: Number(nobody.stdout.trim()) } : {}),
  });
  // Dropped to "nobody", node may not be able to read the tree at all (a clone under /root).
  if (asRoot && r.status !== 2 && /EACCES|permission denied|ERR_MODULE_NOT_FOUND|Cannot find/i.test(r.stderr))
    return t.skip(`the tree is not readable by "nobody": ${r.stderr.split('\n')[0]}`);
  assert.equal(r.status, 2, r.stderr);
  assert.equal(
    r.stderr.trim(),
    'pigeon: the lab needs root (it creates network namespaces and captures packets); run it with sudo',
  );
});

test('the censor lab: verdicts per configuration and rule', { timeout: 240_000 }, async (t) => {
  if (!requireCapture(t, 'the censor lab', ['tcpdump', 'ip'])) return;
  const report = await runLab({ configs: ['all'], connections: CONNECTIONS, probeWaitMs: 2000 });
  for (const line of formatLabReport(report).trimEnd().split('\n')) t.diagnostic(line);
  assert.deepEqual(
    report.configs.map((c) => c.config),
    LAB_CONFIGS.map((c) => c.name),
  );
  for (const c of report.configs) {
    const where = `${c.config}:`;
    // The traffic went through: every request answered, DNS answered by the right resolver.
    assert.deepEqual(c.traffic.errors, [], `${where} traffic errors`);
    assert.equal(c.traffic.http.ok, CONNECTIONS, `${where} HTTP through the tunnel`);
    assert.equal(c.traffic.https.ok, report.httpsConnections, `${where} HTTPS through the tunnel`);
    assert.deepEqual(c.traffic.dns.blocked, [LAB_ADDRESSES.destAbroad], `${where} ${BLOCKED_NAME} by DoH`);
    assert.deepEqual(
      c.traffic.dns.home,
      [LAB_ADDRESSES.destHome],
      `${where} ${HOME_NAME} by the home resolver`,
    );
    const trojan = c.carrier === 'trojan';
    assert.equal(c.disguise, !trojan && c.config !== 'plain-aead');
    assert.equal(!!c.prefix, c.disguise, `${where} the key's prefix`);

    // Fully encrypted traffic: every tunnel connection judged.
    const fe = c.censor.fullyEncrypted;
    const expected = CONNECTIONS + report.httpsConnections + 1; // + the DoH connection
    assert.ok(fe.judged >= expected, `${where} ${fe.judged} first segments judged, expected ${expected}`);
    if (c.disguise || trojan) {
      assert.equal(fe.flagged, 0, `${where} first segments flagged`);
      assert.equal(fe.verdict, 'PASS');
      assert.equal(fe.probeTriggers, 0, `${where} no first segment draws probes`);
      // Trojan: every first segment is the outer ClientHello, exempt by Ex5.
      if (trojan) assert.equal(fe.exemptions.ex5, fe.judged, `${where} first segments that are not TLS`);
    } else {
      assert.ok(fe.flagged >= 0.8 * fe.judged, `${where} plain AEAD flagged ${fe.flagged}/${fe.judged}`);
      assert.equal(fe.verdict, 'DETECTED');
    }

    // DNS: no plaintext query for the blocked name; the control query for the home name is seen.
    assert.deepEqual(c.censor.dns.blocked, [], `${where} plaintext DNS for a blocked name`);
    assert.ok(c.censor.dns.names.includes(HOME_NAME), `${where} control: the home name's query not seen`);

    // SNI: none on the tunnel; the control's is seen. Trojan: every tunnel connection is an outer TLS
    // connection, whose ClientHello the censor reads (an IP in the URI: no SNI at all).
    assert.deepEqual(c.censor.sni.tunnelBlocked, [], `${where} blocklisted SNI on the tunnel`);
    if (trojan) {
      assert.equal(c.censor.sni.tunnelHellos, c.censor.tunnelConnections, `${where} outer ClientHellos`);
      assert.deepEqual(c.censor.sni.tunnelNames, ['(none)'], `${where} SNI of the outer ClientHello`);
    } else assert.equal(c.censor.sni.tunnelHellos, 0, `${where} a ClientHello to a Shadowsocks server`);
    assert.equal(c.censor.sni.verdict, 'PASS');
    assert.deepEqual(
      c.censor.sni.otherBlocked,
      [BLOCKED_NAME],
      `${where} control: the direct hello not seen`,
    );

    // Active probing.
    const p = c.prober;
    assert.ok(p.indistinguishable, `${where} distinguishable: ${p.reasons.join('; ')}`);
    assert.ok(p.probes.filter((x) => x.kind === 'replay').length >= 1, `${where} no replay was sent`);
    if (trojan) {
      // Not "no data back": the baseline HTTPS server's reaction to each probe, class by class.
      assert.equal(p.method, 'baseline');
      assert.equal(p.baseline?.matched, p.probes.length, `${where} probes unlike the baseline's`);
      assert.equal(p.probes.filter((x) => x.kind === 'tls').length, 3, `${where} TLS probes`);
      assert.ok(
        p.probes.some((x) => x.back === 'over TLS, HTTP 200'),
        `${where} no cover page`,
      );
      // Replays: the ClientHello alone, and with the Finished and the encrypted Trojan header.
      assert.ok(p.probes.filter((x) => x.kind === 'replay').length >= 2, `${where} replays`);
    } else assert.equal(p.method, 'uniform');
    assert.equal(p.replaysReachingDestination, 0, `${where} a replay reached the destination`);
    assert.equal(c.rules.find((r) => r.rule === 'active-probing')?.verdict, 'PASS');
  }
  // Nothing left behind.
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(left, new RegExp(`^${NS_PREFIX}${process.pid}-`, 'm'), 'a lab namespace was left');
});
