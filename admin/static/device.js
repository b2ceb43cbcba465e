// device.js drives the /device page: this browser tab is a device of the
// signed-in user (docs/PROTOCOL.md §2), through presence.js. It shows the
// user's grants as switches (visibility), turns input and page visibility
// into online / away / offline with the user's thresholds, and shows live
// notifications as pop-ups (and system notifications when allowed).
// Settings live in localStorage, shared by the browser's tabs; the device
// id lives in sessionStorage, so a reload is the same device (apps see no
// flap) while two tabs are two devices (they would replace each other
// otherwise). Text from the server is only ever set with textContent.
import { PresenceClient } from './presence.js';

const root = document.getElementById('device');
const $ = (id) => document.getElementById(id);
const SETTINGS = 'presence.device.settings';
const DEVICE_ID = 'presence.device.id';

const settings = Object.assign(
  { message: '', awayMessage: '', awayAfter: 300, offlineAfter: 1800, off: [] },
  readJSON(localStorage.getItem(SETTINGS)),
);

function readJSON(s) {
  try { const v = JSON.parse(s); return v && typeof v === 'object' ? v : {}; } catch (e) { return {}; }
}
function save() { localStorage.setItem(SETTINGS, JSON.stringify(settings)); }

function deviceId() {
  let id = sessionStorage.getItem(DEVICE_ID);
  if (!id || !/^[A-Za-z0-9._-]{1,64}$/.test(id)) {
    const b = new Uint8Array(6);
    crypto.getRandomValues(b);
    id = 'web-' + Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem(DEVICE_ID, id);
  }
  return id;
}

// --- visibility switches ---

const switches = Array.from(document.querySelectorAll('input[data-app-id]'));
const appNames = new Map();
for (const sw of switches) {
  const id = Number(sw.dataset.appId);
  sw.checked = !settings.off.includes(id);
  appNames.set(id, sw.closest('label').querySelector('strong').textContent);
}
const visibleIds = () => switches.filter((s) => s.checked).map((s) => Number(s.dataset.appId));

// --- the client ---

async function getAssertion() {
  const body = new URLSearchParams({ csrf_token: root.dataset.csrf });
  const r = await fetch(root.dataset.assertionUrl, { method: 'POST', body, credentials: 'same-origin' });
  if (!r.ok) throw new Error(r.status === 403 ? 'your sign-in has ended: reload the page and sign in' : 'no assertion (HTTP ' + r.status + ')');
  return (await r.json()).assertion;
}

const client = new PresenceClient({ getAssertion, applicationIds: visibleIds(), deviceId: deviceId() });

client.on('state', (s) => {
  root.dataset.conn = s;
  $('conn-state').textContent = s;
  if (s === 'connected') $('conn-detail').textContent = '';
});
client.on('disconnected', (d) => {
  $('conn-detail').textContent = 'retrying in ' + (d.delay / 1000).toFixed(1) + ' s';
});
client.on('connected', (c) => {
  for (const sw of switches) {
    const ignored = c.ignored.includes(Number(sw.dataset.appId));
    sw.closest('li').classList.toggle('ignored', ignored);
  }
});
client.on('error', (e) => {
  $('conn-detail').textContent = (e.errno ? 'errno ' + e.errno + ': ' : '') + (e.reason || '');
});
client.on('notification', (n) => (n.missed ? showMissed(n) : showToast(n)));

for (const sw of switches) {
  sw.addEventListener('change', () => {
    settings.off = switches.filter((s) => !s.checked).map((s) => Number(s.dataset.appId));
    save();
    client.setVisibility(visibleIds());
  });
}

// --- idle detection ---

let lastActive = Date.now();
let shown = { status: null, message: null };

function activity() {
  lastActive = Date.now();
  if (shown.status !== 'online') evaluate();
}
for (const ev of ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'scroll', 'focus']) {
  window.addEventListener(ev, activity, { passive: true, capture: true });
}
document.addEventListener('visibilitychange', () => {
  // Showing the page is activity; hiding it starts the idle clock.
  if (document.visibilityState === 'visible') activity();
  else { lastActive = Math.min(lastActive, Date.now()); evaluate(); }
});

function evaluate() {
  const idle = Date.now() - lastActive;
  let status = 'online';
  if (idle >= settings.offlineAfter * 1000) status = 'offline';
  else if (idle >= settings.awayAfter * 1000) status = 'unavailable';
  const message = status === 'online' ? settings.message
    : status === 'unavailable' ? (settings.awayMessage || settings.message) : '';
  if (status === shown.status && message === shown.message) return;
  shown = { status, message };
  client.setStatus(status, message || undefined);
  const pill = $('presence-state');
  pill.dataset.state = status;
  pill.textContent = status === 'unavailable' ? 'away' : status;
  pill.title = message;
}
setInterval(evaluate, 1000);

// --- settings form ---

const fields = {
  message: $('message'), awayMessage: $('away-message'),
  awayAfter: $('away-after'), offlineAfter: $('offline-after'),
};
fields.message.value = settings.message;
fields.awayMessage.value = settings.awayMessage;
fields.awayAfter.value = settings.awayAfter;
fields.offlineAfter.value = settings.offlineAfter;

let typing = null;
function readSettings() {
  settings.message = fields.message.value.slice(0, 140);
  settings.awayMessage = fields.awayMessage.value.slice(0, 140);
  const away = Number(fields.awayAfter.value);
  const off = Number(fields.offlineAfter.value);
  if (away >= 1) settings.awayAfter = away;
  if (off >= 1) settings.offlineAfter = off;
  save();
  evaluate();
}
$('settings').addEventListener('submit', (e) => { e.preventDefault(); readSettings(); });
for (const f of Object.values(fields)) {
  // A status is sent once typing pauses, not at every key (the server
  // allows limits.status_per_minute).
  f.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(readSettings, 400); });
  f.addEventListener('change', () => { clearTimeout(typing); readSettings(); });
}

// Another tab of this browser changed the settings: they are this
// browser's, so this tab follows (visibility, thresholds, messages).
window.addEventListener('storage', (e) => {
  if (e.key !== SETTINGS) return;
  Object.assign(settings, readJSON(e.newValue));
  for (const [k, f] of Object.entries(fields)) {
    if (document.activeElement !== f) f.value = settings[k];
  }
  const before = visibleIds().join();
  for (const sw of switches) sw.checked = !settings.off.includes(Number(sw.dataset.appId));
  if (visibleIds().join() !== before) client.setVisibility(visibleIds());
  evaluate();
});

const perm = $('notify-permission');
function showPermission() {
  const p = 'Notification' in window ? Notification.permission : 'unsupported';
  perm.hidden = p !== 'default';
}
perm.addEventListener('click', async () => {
  if ('Notification' in window) await Notification.requestPermission();
  showPermission();
});
showPermission();

// --- notifications ---

function safeAction(action) {
  try {
    const u = new URL(action);
    return ['javascript:', 'data:', 'vbscript:', 'file:', 'blob:'].includes(u.protocol) ? null : u.href;
  } catch (e) { return null; }
}

function item(n, cls) {
  const li = document.createElement('li');
  li.className = cls;
  li.dataset.id = n.id;
  const head = document.createElement('div');
  head.className = 'toast-head';
  const app = document.createElement('strong');
  app.textContent = appNames.get(n.app_id) || 'App ' + n.app_id;
  const when = document.createElement('time');
  when.dateTime = n.created_at || '';
  when.textContent = n.created_at ? new Date(n.created_at).toLocaleTimeString() : '';
  head.append(app, ' ', when);
  const msg = document.createElement('p');
  msg.textContent = n.message;
  li.append(head, msg);
  return li;
}

function updateEmpty() {
  $('no-toasts').hidden = $('toasts').children.length > 0;
  $('no-missed').hidden = $('missed').children.length > 0;
}

function showToast(n) {
  const li = item(n, 'toast');
  const actions = document.createElement('div');
  actions.className = 'actions';
  const accept = document.createElement('button');
  accept.className = 'primary';
  accept.textContent = 'Accept';
  const dismiss = document.createElement('button');
  dismiss.textContent = 'Dismiss';
  actions.append(accept, dismiss);
  li.append(actions);
  let sys = null;
  let expiry = null;
  const done = () => {
    clearTimeout(expiry);
    if (sys) sys.close();
    li.remove();
    client.ack(n.id);
    updateEmpty();
  };
  accept.addEventListener('click', () => {
    const url = safeAction(n.action);
    if (url) window.open(url, '_blank', 'noopener');
    done();
  });
  dismiss.addEventListener('click', done);
  $('toasts').prepend(li);
  updateEmpty();
  const left = Date.parse(n.expires_at) - Date.now();
  if (left > 0) expiry = setTimeout(() => { li.remove(); showMissed(n); }, left);
  if ('Notification' in window && Notification.permission === 'granted') {
    sys = new Notification(appNames.get(n.app_id) || 'Presence', { body: n.message, tag: n.id });
    sys.onclick = () => { window.focus(); accept.click(); };
  }
}

// showMissed lists an expired notification apart and acks it: it has
// been shown, and nothing can be accepted any more.
function showMissed(n) {
  const li = item(n, 'missed-item');
  $('missed').prepend(li);
  client.ack(n.id);
  updateEmpty();
}

updateEmpty();
evaluate();
if (root.dataset.canMint === 'true') client.start();
else root.dataset.conn = $('conn-state').textContent = 'not available';
