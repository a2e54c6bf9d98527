// The admin page in a real browser: Debian's Chromium driven by playwright-core, against a real
// `pigeon server --data DIR` (HTTPS, self-signed certificate) on loopback, with a real ss-local
// (shadowsocks-libev) client using the key the page shows. A host logs in, creates a key from the
// keyboard, sees its QR code, pauses it and watches ss-local stop, resumes it, deletes it; a wrong
// secret is refused; every form control has a label; the layout fits a 375 px phone screen.
// Screenshots go to a temporary folder and to test-artifacts/admin/ (git-ignored).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { parseSsUri } from '../../src/wire/sip002.js';
import { ensureBuilt } from '../helpers/pigeon.js';
import { startProcess, waitForLine, waitForTcpPort, type Proc } from '../helpers/processes.js';
import { freePort } from '../helpers/ports.js';
import { libevLocal, type Sip004Method } from '../helpers/peers.js';
import { httpTarget, type HttpTarget } from '../helpers/targets.js';
import { curl } from '../helpers/curl.js';

const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/pigeon.js');
const CHROMIUM = process.env.PIGEON_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(ROOT, 'test-artifacts/admin');
const STEP_MS = 15_000;

/** Chromium, or a skip outside CI (in CI a missing browser is a failure). */
function chromiumPath(t: TestContext): string | undefined {
  if (existsSync(CHROMIUM)) return CHROMIUM;
  const msg = `${CHROMIUM} is missing: install the Debian package chromium (or set PIGEON_CHROMIUM)`;
  if (process.env.CI) throw new Error(msg);
  t.skip(msg);
  return undefined;
}

async function startServer(
  t: TestContext,
  dir: string,
): Promise<{ proc: Proc; base: string; secret: string }> {
  ensureBuilt();
  const apiPort = await freePort('tcp');
  const proc = startProcess(
    t,
    process.execPath,
    [BIN, 'server', '--data', dir, '--listen', '127.0.0.1:0', '--public-host', '127.0.0.1'].concat([
      '--allow-private',
      '--no-qr',
      '--api-port',
      String(apiPort),
    ]),
    { name: 'pigeon server --data' },
  );
  const api = (await waitForLine(proc, /^Management API: /, 30_000)).replace('Management API: ', '').trim();
  const m = /^(https:\/\/127\.0\.0\.1:\d+)\/([^/]+)$/.exec(api);
  assert.ok(m, `unexpected API address ${api}`);
  await waitForTcpPort(apiPort, 10_000, proc);
  return { proc, base: m[1]!, secret: m[2]! };
}

/** GET /hello through ss-local's SOCKS port; true when the target's body came back. */
async function works(socksPort: number, target: HttpTarget): Promise<boolean> {
  try {
    const r = await curl(
      ['--socks5', `127.0.0.1:${socksPort}`, '--max-time', '3'],
      `http://127.0.0.1:${target.port}/hello`,
    );
    return r.status === 200 && r.body.toString() === target.helloBody;
  } catch {
    return false;
  }
}

/** Polls `works` until it answers `want`, for at most `ms`; returns the time it took. */
async function until(
  want: boolean,
  ms: number,
  probe: () => Promise<boolean>,
  what: string,
): Promise<number> {
  const start = Date.now();
  for (let i = 0; i < 100 && Date.now() - start < ms; i++) {
    if ((await probe()) === want) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`${what}: still ${want ? 'not working' : 'working'} after ${Date.now() - start} ms`);
}

/** Every visible form control and whether it has a label (a <label>, aria-label or aria-labelledby). */
async function unlabelled(page: Page): Promise<string[]> {
  const result = await page.evaluate(`(() => {
    const out = [];
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden') continue;
      const named = (el.labels && el.labels.length > 0 && [...el.labels].some((l) => l.textContent.trim() !== '')) ||
        (el.getAttribute('aria-label') || '').trim() !== '' ||
        (el.getAttribute('aria-labelledby') || '').split(/\\s+/).some((id) => {
          const e = id && document.getElementById(id);
          return e && e.textContent.trim() !== '';
        });
      if (!named) out.push(el.outerHTML.slice(0, 120));
    }
    for (const b of document.querySelectorAll('button')) {
      if (!b.hidden && b.textContent.trim() === '' && !(b.getAttribute('aria-label') || '').trim())
        out.push(b.outerHTML.slice(0, 120));
    }
    return out;
  })()`);
  return result as string[];
}

async function checkLabels(page: Page): Promise<void> {
  assert.deepEqual(await unlabelled(page), [], `unlabelled controls on ${page.url()}`);
}

/** Whether the page is wider than the viewport (a phone would scroll sideways). */
async function overflowsX(page: Page): Promise<number> {
  return (await page.evaluate(
    'document.documentElement.scrollWidth - document.documentElement.clientWidth',
  )) as number;
}

test(
  'admin page in Chromium: login, keys, QR, pause/resume with ss-local, delete, labels, phone',
  { timeout: 240_000 },
  async (t) => {
    const exe = chromiumPath(t);
    if (!exe) return;
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-admin-'));
    const shots = join(dir, 'screenshots');
    mkdirSync(shots, { recursive: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    let passed = false;
    t.after(() => {
      // The data always goes; the temporary screenshots stay when the test failed.
      rmSync(join(dir, 'data'), { recursive: true, force: true });
      if (passed) rmSync(dir, { recursive: true, force: true });
      else t.diagnostic(`screenshots: ${shots} and ${ARTIFACTS}`);
    });
    const shot = async (page: Page, name: string) => {
      const file = join(shots, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      copyFileSync(file, join(ARTIFACTS, `${name}.png`));
    };

    const target = await httpTarget(t);
    const server = await startServer(t, join(dir, 'data'));
    const base = server.base;

    const browser: Browser = await chromium.launch({
      executablePath: exe,
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
      timeout: 60_000,
    });
    t.after(() => browser.close());
    const problems: string[] = [];
    const newPage = async (ctx: BrowserContext): Promise<Page> => {
      const page = await ctx.newPage();
      page.setDefaultTimeout(STEP_MS);
      page.setDefaultNavigationTimeout(STEP_MS);
      // No script may run from a key's name, and the CSP must block nothing the page itself uses.
      page.on('dialog', (d) => {
        problems.push(`dialog: ${d.message()}`);
        void d.dismiss();
      });
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      return page;
    };
    const desktop = await browser.newContext({
      ignoreHTTPSErrors: true, // the API's certificate is self-signed (pinned by fingerprint elsewhere)
      viewport: { width: 1280, height: 900 },
    });
    const page = await newPage(desktop);

    // ---- a wrong secret is refused
    await page.goto(`${base}/admin`);
    assert.equal(new URL(page.url()).pathname, '/admin/login');
    await checkLabels(page);
    await shot(page, 'desktop-login');
    await page.fill('#secret', `${server.secret}x`);
    await page.click('button[type=submit]');
    await page.waitForLoadState();
    assert.equal(new URL(page.url()).pathname, '/admin/login');
    assert.match((await page.textContent('[role=alert]')) ?? '', /not the secret/);
    assert.equal((await desktop.cookies()).length, 0, 'no session cookie for a wrong secret');
    await shot(page, 'desktop-login-refused');
    // The refusal is a 401 page, which Chromium reports on the console; nothing else may have been.
    assert.deepEqual(
      problems.filter((p) => !/status of 401/.test(p)),
      [],
    );
    problems.length = 0;

    // ---- the right one: logged in, with the cookie's flags
    await page.fill('#secret', server.secret);
    await Promise.all([page.waitForURL(`${base}/admin`), page.press('#secret', 'Enter')]);
    const [cookie] = await desktop.cookies();
    assert.equal(cookie?.name, 'pigeon_session');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.secure, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.equal(cookie?.path, '/admin');
    assert.match((await page.textContent('main')) ?? '', /Active connections/);
    await checkLabels(page);
    await shot(page, 'desktop-overview');

    // ---- create a key from the keyboard only: Tab to the name field, type, Enter
    await page.click('nav >> text=Keys');
    await page.waitForURL(`${base}/admin/keys`);
    await checkLabels(page);
    await page.evaluate('document.activeElement && document.activeElement.blur()');
    let tabs = 0;
    for (; tabs < 40; tabs++) {
      if ((await page.evaluate('document.activeElement && document.activeElement.id')) === 'new-name') break;
      await page.keyboard.press('Tab');
    }
    assert.ok(tabs < 40, 'Tab never reached the name field');
    const name = `<script>alert("owned")</script> Mum's phone`;
    await page.keyboard.type(name);
    // Tab on through every other field of the form: each is reachable.
    // (A date field takes one Tab per part: only changes of the focused element count.)
    const order: string[] = [];
    for (let i = 0; i < 15 && order[order.length - 1] !== 'BUTTON'; i++) {
      await page.keyboard.press('Tab');
      const at = String(
        await page.evaluate(
          'document.activeElement && (document.activeElement.id || document.activeElement.tagName)',
        ),
      );
      if (order[order.length - 1] !== at) order.push(at);
    }
    assert.deepEqual(
      order,
      ['new-limit', 'new-window', 'new-expires', 'new-method', 'new-disguise', 'BUTTON'],
      order.join(),
    );
    await page.focus('#new-name');
    await Promise.all([page.waitForURL(/\/admin\/keys\/\d+$/), page.keyboard.press('Enter')]);
    const keyUrl = page.url();

    // ---- its page: the name as text, the QR code, the URI, subscription links
    assert.equal((await page.textContent('h1'))?.includes(name), true, 'the name shows as text');
    assert.match((await page.textContent('[role=status]')) ?? '', /Created/);
    const qr = page.locator('#qr svg');
    assert.ok(await qr.isVisible(), 'the QR code is visible');
    const box = await qr.boundingBox();
    assert.ok(box && box.width >= 150 && box.height >= 150, `QR code too small: ${JSON.stringify(box)}`);
    const uri = await page.inputValue('#access-uri');
    const key = parseSsUri(uri);
    assert.equal(key.host, '127.0.0.1');
    assert.equal(key.method, 'chacha20-ietf-poly1305');
    for (const id of ['ssconf', 'sip008', 'clash', 'singbox'])
      assert.match(await page.inputValue(`#sub-${id}`), /^(https|ssconf):\/\/127\.0\.0\.1:\d+\/sub\//, id);
    assert.ok(
      await page.locator('button[data-copy="access-uri"]').isVisible(),
      'the script shows copy buttons',
    );
    assert.ok(await page.locator('figure.chart svg').isVisible(), 'the usage chart is drawn');
    await checkLabels(page);
    await shot(page, 'desktop-key');

    // ---- a real ss-local with that key works
    await waitForTcpPort(key.port, 10_000, server.proc);
    const local = await libevLocal(t, {
      method: key.method as Sip004Method,
      password: key.password,
      serverPort: key.port,
    });
    const probe = () => works(local.port, target);
    await until(true, 10_000, probe, 'the new key through ss-local');

    // ---- pause it on the page: ss-local stops within 10 s
    await Promise.all([page.waitForURL(keyUrl), page.click('section >> button[aria-label^="Pause"]')]);
    assert.match((await page.textContent('h1')) ?? '', /paused/);
    const stopped = await until(false, 10_000, probe, 'the paused key');
    t.diagnostic(`ss-local stopped working ${stopped} ms after the pause`);
    await shot(page, 'desktop-key-paused');

    // ---- resume: it works again
    await Promise.all([page.waitForURL(keyUrl), page.click('section >> button[aria-label^="Resume"]')]);
    assert.match((await page.textContent('h1')) ?? '', /active/);
    await until(true, 10_000, probe, 'the resumed key');

    // ---- delete, with confirmation
    await page.click('a:has-text("Delete…")');
    await page.waitForURL(`${keyUrl}/delete`);
    assert.match((await page.textContent('h1')) ?? '', /Delete “.*”\?/);
    await shot(page, 'desktop-delete-confirm');
    await Promise.all([page.waitForURL(`${base}/admin/keys`), page.click('button:has-text("Delete key")')]);
    assert.match((await page.textContent('[role=status]')) ?? '', /Deleted/);
    assert.equal(await page.locator(`a[href="${new URL(keyUrl).pathname}"]`).count(), 0);
    await until(false, 10_000, probe, 'the deleted key');

    // ---- settings: labelled, and saving works
    await page.click('nav >> text=Settings');
    await page.waitForURL(`${base}/admin/settings`);
    await checkLabels(page);
    await page.fill('#set-limit', '50GB');
    await Promise.all([
      page.waitForURL(`${base}/admin/settings`),
      page.click('button:has-text("Save settings")'),
    ]);
    assert.match((await page.textContent('[role=status]')) ?? '', /Saved/);
    assert.equal(await page.inputValue('#set-limit'), '50GB');
    await shot(page, 'desktop-settings');

    // ---- a phone: the same pages at 375 px, nothing wider than the screen
    const phone = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 375, height: 740 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const mobile = await newPage(phone);
    await mobile.goto(`${base}/admin/login`);
    await shot(mobile, 'phone-login');
    await mobile.fill('#secret', server.secret);
    await Promise.all([mobile.waitForURL(`${base}/admin`), mobile.click('button[type=submit]')]);
    assert.ok((await overflowsX(mobile)) <= 0, 'the overview is wider than the phone');
    await shot(mobile, 'phone-overview');
    await mobile.goto(`${base}/admin/keys`);
    await mobile.fill('#new-name', 'Phone-made key');
    await Promise.all([
      mobile.waitForURL(/\/admin\/keys\/\d+$/),
      mobile.click('button:has-text("Create key")'),
    ]);
    assert.ok(await mobile.locator('#qr svg').isVisible());
    assert.ok((await overflowsX(mobile)) <= 0, 'the key page is wider than the phone');
    await shot(mobile, 'phone-key');
    await mobile.goto(`${base}/admin/keys`);
    assert.ok((await overflowsX(mobile)) <= 0, 'the key list is wider than the phone');
    await shot(mobile, 'phone-keys');
    await mobile.goto(`${base}/admin/settings`);
    assert.ok((await overflowsX(mobile)) <= 0, 'the settings are wider than the phone');
    await shot(mobile, 'phone-settings');

    // ---- logging out ends the session
    await Promise.all([mobile.waitForURL(`${base}/admin/login`), mobile.click('button:has-text("Log out")')]);
    await mobile.goto(`${base}/admin/keys`);
    assert.equal(new URL(mobile.url()).pathname, '/admin/login');

    assert.deepEqual(problems, [], 'no dialogs, console errors or CSP violations');
    await browser.close(); // before the server stops, so that no connection of the browser holds it up
    passed = true;
  },
);
