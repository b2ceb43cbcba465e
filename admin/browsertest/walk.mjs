// walk.mjs drives Debian's chromium through the Presence admin pages, the
// way people use them:
//   a developer signs in, registers an app, verifies its domain and
//   activates it (copying the key with the copy button);
//   a user is sent to the grant page, signs in, allows, lands back on the
//   app's site with presence_uid, sees the grant on /me and revokes it;
//   an admin looks at /admin.
// Screenshots of every step go to OUT_DIR. It prints one JSON line with
// what it saw, for the Go test (admin/browser_test.go) to check.
//
// Environment: BASE_URL (the admin server), PROOF_HOST (host:port of the
// developer's site, which serves /__presence and /back), OUT_DIR,
// CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = must('BASE_URL');
const proofHost = must('PROOF_HOST');
const out = process.env.OUT_DIR || 'out';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(out, { recursive: true });

function must(name) {
  const v = process.env[name];
  if (!v) { console.error(`walk.mjs: ${name} is required`); process.exit(2); }
  return v;
}

function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

const dirs = [];
const contexts = [];
// Each persona gets its own browser with a fresh profile.
async function browser(viewport) {
  const dir = mkdtempSync(join(tmpdir(), 'presence-chromium-'));
  dirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    viewport,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  contexts.push(ctx);
  ctx.setDefaultTimeout(15000);
  const page = ctx.pages()[0] || await ctx.newPage();
  const problems = [];
  // A CSP violation or a script error is a failure, not noise.
  // Only our pages count: the app's own site (where the grant returns)
  // is not under test.
  page.on('console', m => {
    const where = (m.location() && m.location().url) || page.url();
    if (m.type() === 'error' && where.startsWith(base)) problems.push(`${m.text()} (${where})`);
  });
  page.on('pageerror', e => problems.push(String(e)));
  return { ctx, page, problems };
}

let n = 0;
async function shot(page, name) {
  n++;
  const file = join(out, `${String(n).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function signIn(page, email) {
  await page.fill('#email', email);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit].primary')]);
}

const result = {};
try {
  // The developer, on a laptop-sized window.
  const dev = await browser({ width: 1100, height: 900 });
  let p = dev.page;
  await dev.ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await p.goto(base + '/myapps');
  check(p.url().startsWith(base + '/login'), 'myapps sends a stranger to sign in, got ' + p.url());
  await shot(p, 'login');
  await signIn(p, 'dev@example.org');
  check(new URL(p.url()).pathname === '/myapps', 'back on /myapps after sign-in, got ' + p.url());
  await shot(p, 'myapps-empty');
  await p.fill('#domain', proofHost);
  await p.fill('#name', 'Beer chat');
  await p.fill('#description', 'Chat about beer with your friends.\nSee who is around for a pint.');
  await Promise.all([p.waitForNavigation(), p.click('form[action="/myapps"] button[type=submit]')]);
  const appPath = new URL(p.url()).pathname;
  check(/^\/myapps\/\d+$/.test(appPath), 'on the app page, got ' + p.url());
  result.appId = Number(appPath.split('/')[2]);
  check((await p.inputValue('#verification-key')).length === 1024, 'a 1024-character verification key');
  await shot(p, 'app-unverified');
  await Promise.all([p.waitForNavigation(), p.click('form[action$="/verify"] button')]);
  check((await p.textContent('.flash')).includes('Verified'), 'verified: ' + await p.textContent('.flash'));
  await shot(p, 'app-verified');
  await Promise.all([p.waitForNavigation(), p.click('form[action$="/activate"] button')]);
  const key = await p.inputValue('#api-key');
  check(key.length === 1024, 'a 1024-character API key');
  await p.click('button[data-copy="api-key"]');
  await p.waitForFunction(() => document.querySelector('button[data-copy="api-key"]').textContent === 'Copied');
  const copied = await p.evaluate(() => navigator.clipboard.readText());
  check(copied === key, 'the copy button copies the key');
  result.apiKey = key;
  await shot(p, 'app-activated');
  await p.goto(base + appPath);
  check(!(await p.content()).includes(key), 'the key is not shown again');
  await p.goto(base + '/myapps');
  await shot(p, 'myapps-list');
  check(dev.problems.length === 0, 'no console errors for the developer: ' + dev.problems.join('; '));
  await dev.ctx.close();

  // The user, on a phone-sized window.
  const user = await browser({ width: 390, height: 844 });
  p = user.page;
  const back = `http://${proofHost}/back?room=beer`;
  const grant = `${base}/${result.appId}/grant?redirect=${encodeURIComponent(back)}&id=${encodeURIComponent('Alice Smith')}`;
  await p.goto(grant);
  check(p.url().startsWith(base + '/login'), 'grant sends a stranger to sign in');
  await signIn(p, 'alice@example.org');
  check(p.url() === grant, 'back on the grant page after sign-in, got ' + p.url());
  check((await p.textContent('main')).includes('appear online as Alice Smith'), 'the grant page names the userstring');
  await shot(p, 'grant');
  await Promise.all([p.waitForURL(u => u.host === proofHost), p.click('button[value=allow]')]);
  const landed = new URL(p.url());
  check(landed.pathname === '/back' && landed.searchParams.get('room') === 'beer', 'back on the app with its own query: ' + p.url());
  result.puid = landed.searchParams.get('presence_uid');
  check(result.puid && result.puid.length === 32, 'presence_uid on the return: ' + p.url());
  await p.goto(base + '/me');
  check((await p.textContent('main')).includes('Beer chat'), '/me lists the grant');
  await shot(p, 'me');
  await Promise.all([p.waitForNavigation(), p.click(`form[action="/me/grants/${result.puid}/revoke"] button`)]);
  check((await p.textContent('.flash')).includes('Revoked'), 'revoked: ' + await p.textContent('.flash'));
  check(!(await p.content()).includes(result.puid), 'the grant is gone from /me');
  await shot(p, 'me-revoked');
  check(user.problems.length === 0, 'no console errors for the user: ' + user.problems.join('; '));
  await user.ctx.close();

  // The operator (admin.emails lists root@example.org in the Go test).
  const root = await browser({ width: 1100, height: 800 });
  p = root.page;
  await p.goto(base + '/admin');
  await signIn(p, 'root@example.org');
  check(new URL(p.url()).pathname === '/admin', 'on /admin, got ' + p.url());
  check((await p.textContent('main')).includes('Beer chat'), '/admin lists the app');
  await shot(p, 'admin');
  check(root.problems.length === 0, 'no console errors for the admin: ' + root.problems.join('; '));
  await root.ctx.close();

  result.ok = true;
  result.screenshots = n;
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(e);
  process.exitCode = 1;
} finally {
  for (const c of contexts) await c.close().catch(() => {});
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}
