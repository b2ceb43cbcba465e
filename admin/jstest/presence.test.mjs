// Unit tests of admin/static/presence.js, run by Node's test runner
// (`node --test admin/jstest/`, a step of scripts/test.sh). The WebSocket,
// the timers, the clock and random are fakes: nothing here waits for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresenceClient, backoffDelay, MAX_ACK_IDS } from '../static/presence.js';

// clock is a fake setTimeout/clearTimeout/now: time moves only by advance().
function clock() {
  let now = 1_000_000;
  let seq = 0;
  const timers = new Map();
  return {
    now: () => now,
    setTimeout: (fn, ms) => { const id = ++seq; timers.set(id, { fn, at: now + ms }); return id; },
    clearTimeout: (id) => { timers.delete(id); },
    pending: () => [...timers.values()].map(t => t.at - now).sort((a, b) => a - b),
    // advance runs every timer due within ms, in order of due time.
    async advance(ms) {
      const end = now + ms;
      for (;;) {
        let next = null;
        for (const [id, t] of timers) if (t.at <= end && (!next || t.at < next[1].at)) next = [id, t];
        if (!next) break;
        timers.delete(next[0]);
        now = next[1].at;
        next[1].fn();
        await flush();
      }
      now = end;
      await flush();
    },
  };
}

// flush lets awaited promises (getAssertion) settle.
async function flush() { for (let i = 0; i < 5; i++) await Promise.resolve(); }

// fakeSockets returns a WebSocket constructor whose instances the test
// drives as the server would.
function fakeSockets() {
  const all = [];
  class FakeWS {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; this.closedWith = null; all.push(this); }
    send(s) { if (this.readyState !== 1) throw new Error('send on a socket not open'); this.sent.push(JSON.parse(s)); }
    close(code) { this.closedWith = code; this.readyState = 3; }
    // The server side:
    accept() { this.readyState = 1; this.onopen && this.onopen(); }
    push(obj) { this.onmessage && this.onmessage({ data: JSON.stringify(obj) }); }
    drop(code) { this.readyState = 3; this.onclose && this.onclose({ code }); }
    take() { const s = this.sent; this.sent = []; return s; }
  }
  return { FakeWS, all, last: () => all[all.length - 1] };
}

// setup builds a client on fakes; random is 0.5 unless given.
function setup(extra = {}) {
  const c = clock();
  const socks = fakeSockets();
  const assertions = [];
  let n = 0;
  const client = new PresenceClient({
    url: 'ws://presence.test/presence',
    deviceId: 'laptop',
    applicationIds: [421, 492],
    getAssertion: async () => { const a = 'assertion-' + (++n); assertions.push(a); return a; },
    WebSocket: socks.FakeWS,
    setTimeout: c.setTimeout,
    clearTimeout: c.clearTimeout,
    now: c.now,
    random: () => 0.5,
    window: null,
    ...extra,
  });
  const events = [];
  for (const e of ['connecting', 'connected', 'disconnected', 'error', 'notification']) {
    client.on(e, d => events.push([e, d]));
  }
  return { c, socks, client, events, assertions };
}

// connect starts the client and answers its connect.
async function connect(t, sessionId = 'sess-1') {
  if (t.client.state === 'idle') t.client.start();
  await flush();
  const ws = t.socks.last();
  ws.accept();
  const [frame] = ws.take();
  assert.equal(frame.type, 'connect');
  ws.push({ result: true, session_id: sessionId });
  assert.equal(t.client.state, 'connected');
  return { ws, frame };
}

test('backoff stays within 0.5 s and 20 s and grows with the attempt', () => {
  for (let attempt = 0; attempt < 40; attempt++) {
    for (const r of [0, 0.25, 0.999999]) {
      const d = backoffDelay(attempt, 500, 20000, () => r);
      assert.ok(d >= 500 && d <= 20000, `attempt ${attempt} random ${r}: ${d}`);
    }
  }
  assert.equal(backoffDelay(0, 500, 20000, () => 1), 500);
  assert.equal(backoffDelay(1, 500, 20000, () => 1), 1000);
  assert.equal(backoffDelay(3, 500, 20000, () => 1), 4000);
  assert.equal(backoffDelay(10, 500, 20000, () => 1), 20000);
  assert.equal(backoffDelay(10, 500, 20000, () => 0), 500); // full jitter reaches the floor
});

test('connect carries the assertion, the app ids and the device id; state is readable', async () => {
  const t = setup();
  assert.equal(t.client.state, 'idle');
  t.client.start();
  assert.equal(t.client.state, 'connecting');
  await flush();
  const ws = t.socks.last();
  ws.accept();
  assert.deepEqual(ws.take(), [{ type: 'connect', assertion: 'assertion-1', application_ids: [421, 492], device_id: 'laptop' }]);
  ws.push({ result: true, session_id: 's1', ignored_application_ids: [492] });
  assert.equal(t.client.state, 'connected');
  assert.deepEqual(t.events.find(e => e[0] === 'connected')[1], { sessionId: 's1', ignored: [492] });
});

for (const [what, lose] of [
  ['close 1001 (server going away)', ws => ws.drop(1001)],
  ['network loss (close 1006)', ws => ws.drop(1006)],
  ['errno -4 (server shutting down)', ws => ws.push({ result: false, errno: -4, reason: 'server shutting down' })],
  ['errno -2 (replaced)', ws => ws.push({ result: false, errno: -2, reason: 'replaced' })],
]) {
  test(`${what} reconnects with the same device id, then resends status`, async () => {
    const t = setup();
    const { ws } = await connect(t);
    t.client.setStatus('unavailable', 'Away');
    assert.deepEqual(ws.take(), [{ type: 'status', session_id: 'sess-1', status: 'unavailable', message: 'Away' }]);
    ws.push({ result: true });
    if (what.startsWith('errno')) t.client.setStatus('unavailable', 'Away'); // pending when the error comes
    lose(ws);
    assert.equal(t.client.state, 'disconnected');
    const d = t.events.find(e => e[0] === 'disconnected')[1];
    assert.equal(d.delay, 500); // attempt 0: the floor
    assert.equal(t.socks.all.length, 1, 'no reconnect before the delay');
    await t.c.advance(499);
    assert.equal(t.socks.all.length, 1, 'no reconnect before the delay');
    await t.c.advance(1);
    assert.equal(t.socks.all.length, 2);
    const ws2 = t.socks.last();
    ws2.accept();
    const [conn] = ws2.take();
    assert.equal(conn.device_id, 'laptop');
    assert.equal(conn.assertion, 'assertion-1', 'the assertion is reused');
    ws2.push({ result: true, session_id: 'sess-2' });
    assert.deepEqual(ws2.take(), [{ type: 'status', session_id: 'sess-2', status: 'unavailable', message: 'Away' }]);
  });
}

test('delays grow while the server stays away, and reset after a connect', async () => {
  const t = setup({ random: () => 1 });
  await connect(t);
  const delays = [];
  for (let i = 0; i < 8; i++) {
    t.socks.last().drop(1006);
    const d = t.events.filter(e => e[0] === 'disconnected').at(-1)[1].delay;
    delays.push(d);
    await t.c.advance(d);
    await flush();
    assert.equal(t.client.state, 'connecting');
  }
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000]);
  const ws = t.socks.last();
  ws.accept();
  ws.take();
  ws.push({ result: true, session_id: 'back' });
  ws.drop(1001);
  assert.equal(t.events.filter(e => e[0] === 'disconnected').at(-1)[1].delay, 500);
});

test('errno 34 stops for good', async () => {
  const t = setup();
  t.client.start();
  await flush();
  const ws = t.socks.last();
  ws.accept();
  ws.push({ result: false, errno: 34, reason: 'invalid assertion: bad signature' });
  assert.equal(t.client.state, 'closed');
  assert.deepEqual(t.events.find(e => e[0] === 'error')[1], { errno: 34, reason: 'invalid assertion: bad signature', request: 'connect' });
  await t.c.advance(60000);
  assert.equal(t.socks.all.length, 1, 'no reconnect after errno 34');
  assert.deepEqual(t.c.pending(), [], 'no timer left');
});

test('errno 35 asks getAssertion for a fresh one and reconnects', async () => {
  const t = setup();
  t.client.start();
  await flush();
  let ws = t.socks.last();
  ws.accept();
  assert.equal(ws.take()[0].assertion, 'assertion-1');
  ws.push({ result: false, errno: 35, reason: 'assertion expired at …' });
  assert.equal(t.client.state, 'disconnected');
  await t.c.advance(0);
  ws = t.socks.last();
  assert.equal(t.socks.all.length, 2);
  ws.accept();
  assert.equal(ws.take()[0].assertion, 'assertion-2');
  ws.push({ result: true, session_id: 's' });
  assert.equal(t.client.state, 'connected');
  assert.deepEqual(t.assertions, ['assertion-1', 'assertion-2']);
});

test('a server that keeps saying 35 is not hammered', async () => {
  const t = setup();
  t.client.start();
  await flush();
  for (let i = 0; i < 3; i++) {
    const ws = t.socks.last();
    ws.accept();
    ws.take();
    ws.push({ result: false, errno: 35, reason: 'expired' });
    const d = t.events.filter(e => e[0] === 'disconnected').at(-1)[1].delay;
    if (i > 0) assert.ok(d >= 500, `retry ${i} waited ${d} ms`);
    await t.c.advance(d);
  }
});

test('the server silent: an app-level ping, then a reconnect when it stays silent', async () => {
  const t = setup();
  const { ws } = await connect(t);
  await t.c.advance(24999);
  assert.deepEqual(ws.take(), []);
  await t.c.advance(1);
  assert.deepEqual(ws.take(), [{ type: 'ping' }]);
  ws.push({ result: true }); // answered: the connection is alive
  await t.c.advance(24999);
  assert.equal(t.client.state, 'connected');
  await t.c.advance(1);
  assert.deepEqual(ws.take(), [{ type: 'ping' }]);
  await t.c.advance(10000); // no answer
  assert.equal(t.client.state, 'disconnected');
  assert.equal(ws.closedWith, 1000);
});

test("the browser's online event reconnects at once", async () => {
  const listeners = {};
  const win = { addEventListener: (n, f) => { listeners[n] = f; }, removeEventListener: (n) => { delete listeners[n]; } };
  const t = setup({ window: win, random: () => 1 });
  await connect(t);
  for (let i = 0; i < 5; i++) { t.socks.last().drop(1006); await t.c.advance(t.client.state === 'disconnected' ? 100000 : 0); }
  t.socks.last().drop(1006);
  assert.equal(t.client.state, 'disconnected');
  const before = t.socks.all.length;
  listeners.online();
  await flush();
  assert.equal(t.socks.all.length, before + 1);
  assert.equal(t.client.state, 'connecting');
  t.client.close();
  assert.equal(listeners.online, undefined, 'close removes the listener');
});

test('notifications are handed out once per id, and a re-push of an acked one is acked again', async () => {
  const t = setup();
  const { ws } = await connect(t);
  const n = { type: 'notification', id: 'n1', app_id: 421, UID: 'p', message: 'hi', action: 'https://a.example/', created_at: new Date(t.c.now()).toISOString(), expires_at: new Date(t.c.now() + 60000).toISOString() };
  ws.push(n);
  ws.push(n);
  const got = t.events.filter(e => e[0] === 'notification');
  assert.equal(got.length, 1);
  assert.equal(got[0][1].missed, false);
  t.client.ack('n1');
  await t.c.advance(50);
  assert.deepEqual(ws.take(), [{ type: 'ack', session_id: 'sess-1', ids: ['n1'] }]);
  // Reconnect: the server pushes n1 again (it had not stored the ack).
  ws.drop(1006);
  await t.c.advance(500);
  const ws2 = t.socks.last();
  ws2.accept();
  ws2.take();
  ws2.push({ result: true, session_id: 'sess-2' });
  ws2.push(n);
  assert.equal(t.events.filter(e => e[0] === 'notification').length, 1, 'not shown twice');
  assert.deepEqual(ws2.take(), [{ type: 'ack', session_id: 'sess-2', ids: ['n1'] }]);
});

test('an expired notification is marked missed', async () => {
  const t = setup();
  const { ws } = await connect(t);
  ws.push({ type: 'notification', id: 'old', message: 'late', expires_at: new Date(t.c.now() - 1000).toISOString() });
  assert.equal(t.events.find(e => e[0] === 'notification')[1].missed, true);
});

test('acks are batched into frames of at most 100 ids', async () => {
  const t = setup();
  const { ws } = await connect(t);
  const ids = Array.from({ length: 250 }, (_, i) => 'n' + i);
  for (const id of ids.slice(0, 120)) t.client.ack(id);
  t.client.ack(ids.slice(120));
  assert.deepEqual(ws.take(), [], 'gathered first');
  await t.c.advance(50);
  const frames = ws.take();
  assert.deepEqual(frames.map(f => f.ids.length), [100, 100, 50]);
  assert.ok(frames.every(f => f.type === 'ack' && f.ids.length <= MAX_ACK_IDS));
  assert.deepEqual(frames.flatMap(f => f.ids), ids);
  t.client.ack('n3'); // already acked
  await t.c.advance(50);
  assert.deepEqual(ws.take(), []);
});

test('acks made while disconnected are sent after the reconnect', async () => {
  const t = setup();
  const { ws } = await connect(t);
  ws.drop(1006);
  t.client.ack('a', 'b');
  await t.c.advance(500);
  const ws2 = t.socks.last();
  ws2.accept();
  ws2.take();
  ws2.push({ result: true, session_id: 's2' });
  assert.deepEqual(ws2.take(), [{ type: 'ack', session_id: 's2', ids: ['a', 'b'] }]);
});

test('errno 29 waits retry_after, then sends the newest status', async () => {
  const t = setup();
  const { ws } = await connect(t);
  t.client.setStatus('online', 'one');
  ws.take();
  ws.push({ result: false, errno: 29, reason: 'slow down: rate limit hit', retry_after: 30 });
  assert.equal(t.client.state, 'connected', 'errno 29 is not a reason to reconnect');
  assert.equal(t.events.find(e => e[0] === 'error')[1].retryAfter, 30);
  t.client.setStatus('online', 'two');
  t.client.setVisibility([421]);
  await t.c.advance(29999);
  // The server said nothing for 25 s meanwhile: a ping is fine, state is not.
  assert.deepEqual(ws.take().filter(f => f.type !== 'ping'), [], 'nothing during retry_after');
  await t.c.advance(1);
  assert.deepEqual(ws.take(), [
    { type: 'visibility', session_id: 'sess-1', application_ids: [421] },
    { type: 'status', session_id: 'sess-1', status: 'online', message: 'two' },
  ]);
});

test('setVisibility sends the new set, and a reconnect carries it in connect', async () => {
  const t = setup();
  const { ws } = await connect(t);
  t.client.setVisibility([7]);
  assert.deepEqual(ws.take(), [{ type: 'visibility', session_id: 'sess-1', application_ids: [7] }]);
  ws.push({ result: true });
  ws.drop(1001);
  await t.c.advance(500);
  const ws2 = t.socks.last();
  ws2.accept();
  assert.deepEqual(ws2.take()[0].application_ids, [7]);
});

test('close tells the apps offline and stops reconnecting', async () => {
  const t = setup();
  const { ws } = await connect(t);
  t.client.close();
  assert.deepEqual(ws.take(), [{ type: 'status', session_id: 'sess-1', status: 'offline' }]);
  assert.equal(ws.closedWith, 1000);
  assert.equal(t.client.state, 'closed');
  await t.c.advance(100000);
  assert.equal(t.socks.all.length, 1);
});

test('a positive errno on a request is reported and does not reconnect', async () => {
  const t = setup();
  const { ws } = await connect(t);
  t.client.setStatus('online', 'x'.repeat(141));
  ws.push({ result: false, errno: 3, reason: 'message: 141 characters, at most 140' });
  assert.equal(t.client.state, 'connected');
  assert.deepEqual(t.events.find(e => e[0] === 'error')[1], { errno: 3, reason: 'message: 141 characters, at most 140', request: 'status' });
});

test('a socket that never opens, or a connect never answered, counts as lost', async () => {
  const t = setup();
  t.client.start();
  await flush();
  await t.c.advance(14999);
  assert.equal(t.client.state, 'connecting');
  await t.c.advance(1); // the socket never opened
  assert.equal(t.client.state, 'disconnected');
  assert.equal(t.socks.all[0].closedWith, 1000);
  await t.c.advance(500);
  const ws = t.socks.last();
  ws.accept(); // opens, sends connect, and the server says nothing
  assert.equal(ws.take()[0].type, 'connect');
  await t.c.advance(15000);
  assert.equal(t.client.state, 'disconnected');
  assert.equal(t.socks.all.length, 2);
});

test('the ids remembered for de-duplication are bounded', async () => {
  const t = setup({ seenLimit: 3 });
  const { ws } = await connect(t);
  for (const id of ['a', 'b', 'c', 'd']) ws.push({ type: 'notification', id, message: id });
  assert.equal(t.client.seen.size, 3);
  ws.push({ type: 'notification', id: 'd', message: 'd' });
  assert.equal(t.events.filter(e => e[0] === 'notification').length, 4, 'the newest are still remembered');
});

test('a connect refused for a bad field stops; a shutting-down server is retried', async () => {
  const t = setup({ deviceId: 'bad id' });
  t.client.start();
  await flush();
  let ws = t.socks.last();
  ws.accept();
  ws.push({ result: false, errno: 3, reason: 'device_id: want 1 to 64 of A-Z a-z 0-9 . _ -' });
  assert.equal(t.client.state, 'closed');
  await t.c.advance(60000);
  assert.equal(t.socks.all.length, 1);

  const u = setup();
  u.client.start();
  await flush();
  ws = u.socks.last();
  ws.accept();
  ws.push({ result: false, errno: -4, reason: 'server shutting down' });
  assert.equal(u.client.state, 'disconnected');
  await u.c.advance(500);
  assert.equal(u.socks.all.length, 2);
});
