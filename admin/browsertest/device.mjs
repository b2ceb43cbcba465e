// device.mjs drives Debian's chromium through /device and the sample app
// (examples/sampleapp), the way people use them: Ann shares her presence
// with the app through the grant flow, opens /device in two tabs (two
// devices), and the app's own page must show what she does: switching the
// app off and on, going idle (away, then offline) and coming back, typing
// a status. The server restarts: both tabs come back by themselves and the
// app never shows her offline. The app sends a notification; Accept opens
// its action, which the app hears of. One that expired while no tab was
// open is listed as missed, and the accepted one does not come back.
//
// It talks to examples/sampleapp/browser_test.go on stdout (one JSON
// object a line) and stdin: {"step":"restart"} asks for a server restart,
// answered by a line "restarted"; {"step":"back"} says both tabs are back;
// {"step":"expire"} asks for a notification with a 5 s ttl, answered by
// "posted"; the last line is {"ok":true,…}.
//
// Environment: BASE_URL (Presence), APP_URL (the sample app), OUT_DIR,
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const base = must('BASE_URL');
const appURL = must('APP_URL');
const out = process.env.OUT_DIR || 'out';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(out, { recursive: true });

function must(name) {
  const v = process.env[name];
  if (!v) { console.error(`device.mjs: ${name} is required`); process.exit(2); }
  return v;
}
function check(cond, msg) { if (!cond) throw new Error('check failed: ' + msg); }
const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const log = (...a) => console.error(new Date().toISOString(), ...a);

const dir = mkdtempSync(join(tmpdir(), 'presence-chromium-'));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath, headless: true, viewport: { width: 1000, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
ctx.setDefaultTimeout(20000);
const problems = [];
function watch(page, name) {
  page.on('pageerror', (e) => problems.push(`${name}: ${e}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/ERR_CONNECTION_REFUSED|WebSocket connection to/.test(m.text())) problems.push(`${name}: ${m.text()}`);
  });
  return page;
}

// The app's actions are https (PROTOCOL §4); production puts TLS in
// front of the app. Here the browser's https requests to the app's host
// are answered by the app over plain http, as that TLS proxy would.
const appHost = new URL(appURL).host;
await ctx.route(`https://${appHost}/**`, async (route) => {
  const u = new URL(route.request().url());
  const r = await fetch(`http://${appHost}${u.pathname}${u.search}`);
  await route.fulfill({ status: r.status, headers: { 'content-type': r.headers.get('content-type') || 'text/html' }, body: await r.text() });
});

try {
  // --- the app, and the grant flow ---
  const app = watch(ctx.pages()[0] || await ctx.newPage(), 'app');
  await app.goto(appURL);
  await app.waitForFunction(() => document.getElementById('channel').textContent.startsWith('connected'));
  await app.fill('input[name=name]', 'ann');
  await app.click('#connect');
  await app.waitForURL((u) => u.href.startsWith(base + '/login'));
  await app.fill('input[name=email]', 'ann@example.com');
  await app.click('button[type=submit]');
  await app.waitForSelector('button[value=allow]');
  await app.click('button[value=allow]');
  await app.waitForURL((u) => u.href.startsWith(appURL));
  const row = app.locator('#users tr', { hasText: 'ann' });
  await row.waitFor();
  const appShows = async (status, message) => {
    const want = status === 'unavailable' ? 'away' : status;
    try {
      await app.waitForFunction(([want, message]) => {
        const tr = [...document.querySelectorAll('#users tr')].find((r) => r.querySelector('.name') && r.querySelector('.name').textContent === 'ann');
        return tr && tr.querySelector('.status').textContent === want && tr.querySelector('.message').textContent === message;
      }, [want, message], { timeout: 20000 });
    } catch (e) {
      throw new Error(`the app never showed ann ${want} "${message}"; it shows: ${await row.innerText()}`);
    }
    log('app shows ann', want, JSON.stringify(message));
  };
  await appShows('offline', '');

  // --- two tabs of /device ---
  const dev1 = watch(await ctx.newPage(), 'dev1');
  const connected = (p) => p.waitForFunction(() => document.getElementById('device').dataset.conn === 'connected');
  await dev1.goto(base + '/device');
  await connected(dev1);
  await appShows('online', '');
  const dev2 = watch(await ctx.newPage(), 'dev2');
  await dev2.goto(base + '/device');
  await connected(dev2);
  check(await dev1.evaluate(() => sessionStorage.getItem('presence.device.id')) !== await dev2.evaluate(() => sessionStorage.getItem('presence.device.id')),
    'two tabs are two devices');

  // Typing a status.
  await dev1.bringToFront();
  await dev1.fill('#message', 'Deep in code');
  await appShows('online', 'Deep in code');
  await dev1.screenshot({ path: join(out, '01-device-online.png'), fullPage: true });

  // Visibility: the app switched off (both tabs follow the setting).
  await dev1.click('label.switch');
  await appShows('offline', '');
  check(!(await dev2.locator('input[data-app-id]').isChecked()), 'the other tab follows the switch');
  await dev1.click('label.switch');
  await appShows('online', 'Deep in code');

  // Idle: away after 2 s, offline after 4 s, back on a mouse move.
  await dev1.fill('#away-message', 'Back soon');
  await dev1.fill('#away-after', '2');
  await dev1.fill('#offline-after', '4');
  await dev1.locator('#offline-after').blur();
  await appShows('unavailable', 'Back soon');
  await dev1.screenshot({ path: join(out, '02-device-away.png'), fullPage: true });
  await appShows('offline', '');
  await dev1.mouse.move(200, 200);
  await dev1.mouse.move(300, 250);
  await appShows('online', 'Deep in code');
  await dev1.fill('#away-after', '300');
  await dev1.fill('#offline-after', '1800');
  await dev1.locator('#offline-after').blur();
  await dev1.mouse.move(100, 100);
  await appShows('online', 'Deep in code');

  // --- the server restarts ---
  for (const p of [dev1, dev2]) {
    await p.evaluate(() => {
      window.connStates = [];
      new MutationObserver(() => window.connStates.push(document.getElementById('device').dataset.conn))
        .observe(document.getElementById('device'), { attributes: true, attributeFilter: ['data-conn'] });
    });
  }
  say({ step: 'restart' });
  const answer = await lines.next();
  check(!answer.done && answer.value.trim() === 'restarted', 'the test restarted the server');
  for (const p of [dev1, dev2]) {
    await p.waitForFunction(() => window.connStates.includes('disconnected') && document.getElementById('device').dataset.conn === 'connected');
  }
  await app.waitForFunction(() => document.getElementById('channel').textContent.startsWith('connected'));
  await appShows('online', 'Deep in code');
  log('both tabs are back:', await dev1.evaluate(() => window.connStates.join(' ')), '|', await dev2.evaluate(() => window.connStates.join(' ')));
  say({ step: 'back' });

  // --- a live notification, accepted ---
  await app.bringToFront();
  await app.fill('#message', 'Fred mentioned you in #beer');
  await app.click('#send');
  for (const p of [dev1, dev2]) await p.locator('#toasts li', { hasText: 'Fred mentioned you in #beer' }).waitFor();
  await dev1.bringToFront();
  await dev1.screenshot({ path: join(out, '03-device-notification.png'), fullPage: true });
  const opened = ctx.waitForEvent('page');
  await dev1.click('#toasts li button.primary');
  const action = await opened;
  await action.waitForLoadState();
  check(action.url().startsWith(`https://${appHost}/opened?`), 'Accept opened the action: ' + action.url());
  check(await dev1.locator('#toasts li').count() === 0, 'the accepted pop-up is gone');
  await app.bringToFront();
  await app.locator('#events li', { hasText: 'ann accepted notification' }).waitFor();
  await app.screenshot({ path: join(out, '04-sample-app.png'), fullPage: true });
  await action.close();

  // --- missed: a notification that expired while no device was there ---
  await dev1.close();
  await dev2.close();
  say({ step: 'expire' }); // the test sends one with a 5 s ttl
  const posted = await lines.next();
  check(!posted.done && posted.value.trim() === 'posted', 'the test sent the notification');
  await app.waitForTimeout(5500); // its ttl, so that it arrives expired
  const dev3 = watch(await ctx.newPage(), 'dev3');
  await dev3.goto(base + '/device');
  if (dev3.url().startsWith(base + '/login')) {
    // The sign-in did not outlive the server restart: sign in again.
    await dev3.fill('input[name=email]', 'ann@example.com');
    await dev3.click('button[type=submit]');
    await dev3.waitForURL(base + '/device');
  }
  await dev3.locator('#missed li', { hasText: 'Lunch at noon?' }).waitFor();
  check(await dev3.locator('#toasts li').count() === 0, 'the accepted notification is not pushed again, the expired one is not a pop-up');
  await dev3.screenshot({ path: join(out, '05-device-missed.png'), fullPage: true });

  check(problems.length === 0, 'page errors: ' + problems.join('; '));
  say({ ok: true, screenshots: 5 });
} catch (e) {
  for (const [i, p] of ctx.pages().entries()) {
    try { await p.screenshot({ path: join(out, `failed-${i}.png`), fullPage: true }); } catch (_) { /* closed */ }
  }
  console.error(e && e.stack || e);
  if (problems.length) console.error('page errors:', problems.join('\n'));
  say({ ok: false, error: String(e && e.message || e) });
  process.exitCode = 1;
} finally {
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
  process.stdin.destroy();
}
