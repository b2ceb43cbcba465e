// presence.js: a device of the Presence service (docs/PROTOCOL.md §2), as a
// dependency-free ES module. It keeps one WebSocket to GET /presence and
// survives everything a browser meets: network loss, a server restart
// (errno -4, close 1001), a replaced session, an expired assertion.
//
//   import { PresenceClient } from '/static/presence.js';
//   const c = new PresenceClient({ url, getAssertion, applicationIds: [421], deviceId: 'laptop' });
//   c.on('notification', n => { show(n); c.ack(n.id); });
//   c.start(); c.setStatus('online', 'At my desk');
//
// States (c.state): idle → connecting → connected; on any loss,
// disconnected (a reconnect is scheduled) → connecting …; closed is final
// (close() was called, or the server refused the assertion or the
// connect's fields: errno 34, or 3 on connect).
// Events: 'state' (every change), 'connecting', 'connected' ({sessionId,
// ignored}), 'disconnected' ({code, errno, delay}), 'error' ({errno,
// reason, request}), 'notification' (the pushed object plus `missed`).
//
// Contracts this module keeps:
//   - Reconnect delays use exponential backoff with full jitter between
//     minDelay and maxDelay; a successful connect resets the attempt count.
//   - A reconnect sends connect with the same device_id and the current
//     application_ids (the last visibility), then the last status: inside
//     the server's disconnect grace the apps see no flap.
//   - errno 34 (and errno 3 on connect: a field the server rejects) stops
//     for good; errno 35 asks getAssertion() for a fresh one and
//     reconnects; negative errnos and closes reconnect.
//   - Notifications are handed out once per id; ack() batches ids into
//     frames of at most 100 (the contract's limit per ack frame).
//   - A socket that does not reach `connected` within connectTimeout, or
//     a server silent for pingAfter that then ignores a ping for
//     pingTimeout, counts as lost.
//   - errno 29 holds status and visibility for retry_after seconds; the
//     newest values are sent when it ends (presence is state).
//   - Everything that depends on the world (WebSocket, timers, random,
//     clock, the window's online event) is injectable, for tests.

export const MAX_ACK_IDS = 100;

const DEFAULTS = {
  minDelay: 500, // ms, first reconnect delay bound
  maxDelay: 20000, // ms, cap of the backoff
  pingAfter: 25000, // ms of server silence before an app-level ping
  pingTimeout: 10000, // ms to wait for any frame after that ping
  connectTimeout: 15000, // ms from opening a socket to the connect answer
  ackDelay: 50, // ms during which acks are gathered into one frame
  seenLimit: 2000, // notification ids remembered for de-duplication
};

// backoffDelay is the delay before reconnect attempt n (0-based): a random
// value between minDelay and min(maxDelay, minDelay·2^n) ("full jitter",
// floored at minDelay so that a flapping server is never hammered).
export function backoffDelay(attempt, minDelay = DEFAULTS.minDelay, maxDelay = DEFAULTS.maxDelay, random = Math.random) {
  const ceil = Math.min(maxDelay, minDelay * Math.pow(2, Math.min(attempt, 30)));
  return Math.round(minDelay + random() * (ceil - minDelay));
}

export class PresenceClient {
  constructor(opts) {
    if (!opts || typeof opts.getAssertion !== 'function') {
      throw new TypeError('PresenceClient: getAssertion() is required');
    }
    const g = globalThis;
    this.opts = { ...DEFAULTS, ...opts };
    this.url = opts.url || defaultURL(g.location);
    this.deviceId = opts.deviceId || 'default';
    this.applicationIds = (opts.applicationIds || []).slice();
    this.WebSocket = opts.WebSocket || g.WebSocket;
    this.setTimeout = opts.setTimeout || g.setTimeout.bind(g);
    this.clearTimeout = opts.clearTimeout || g.clearTimeout.bind(g);
    this.random = opts.random || Math.random;
    this.now = opts.now || Date.now;

    this.state = 'idle';
    this.sessionId = null;
    this.status = null; // {status, message} last asked for, resent after a reconnect
    this.listeners = new Map();
    this.ws = null;
    this.pending = []; // frames sent and not yet answered, in order (answers come in order)
    this.attempt = 0;
    this.assertion = opts.assertion || null;
    this.refreshAssertion = !this.assertion;
    this.timers = { reconnect: null, connect: null, silence: null, ack: null, hold: null };
    this.heldUntil = 0; // errno 29: no status or visibility before this (ms, this.now())
    this.dirty = { status: false, visibility: false }; // to send when the hold ends
    this.acks = []; // ids waiting to be sent
    this.seen = new Map(); // notification id → acked (bool), insertion-ordered
    this.onOnline = () => this.reconnectNow();
    this.window = 'window' in opts ? opts.window : (typeof g.addEventListener === 'function' ? g : null);
  }

  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event).delete(fn);
  }

  emit(event, data) {
    for (const fn of this.listeners.get(event) || []) {
      try { fn(data); } catch (e) { if (globalThis.console) console.error('presence.js listener:', e); }
    }
  }

  setState(s, data) {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s);
    if (s !== 'idle' && s !== 'closed') this.emit(s, data);
  }

  // start opens the channel; the client reconnects by itself until close().
  start() {
    if (this.state !== 'idle') return;
    if (this.window) this.window.addEventListener('online', this.onOnline);
    this.open();
  }

  // close ends the session for good. With offline (default), apps are told
  // offline at once instead of after the server's disconnect grace.
  close({ offline = true } = {}) {
    if (this.state === 'closed') return;
    if (offline && this.state === 'connected') {
      this.send({ type: 'status', session_id: this.sessionId, status: 'offline' });
    }
    this.stop();
  }

  stop() {
    if (this.window) this.window.removeEventListener('online', this.onOnline);
    for (const k of Object.keys(this.timers)) this.clear(k);
    this.dropSocket(1000);
    this.setState('closed');
  }

  // setStatus records what the device shows; sent now when possible, and
  // again after every reconnect.
  setStatus(status, message) {
    this.status = message ? { status, message } : { status };
    this.dirty.status = true;
    this.flushState();
  }

  // setVisibility replaces the apps that may see this device.
  setVisibility(ids) {
    this.applicationIds = ids.slice();
    this.dirty.visibility = true;
    this.flushState();
  }

  // ack says these notifications were shown; ids are gathered for ackDelay
  // and sent in frames of at most MAX_ACK_IDS.
  ack(...ids) {
    for (const id of ids.flat()) {
      if (this.seen.get(id) === true) continue;
      this.remember(id, true);
      this.acks.push(id);
    }
    if (this.acks.length && this.timers.ack === null) {
      this.timers.ack = this.setTimeout(() => { this.timers.ack = null; this.flushAcks(); }, this.opts.ackDelay);
    }
  }

  // reconnectNow skips the backoff wait (the browser says it is online).
  reconnectNow() {
    if (this.state === 'disconnected') {
      this.clear('reconnect');
      this.open();
    } else if (this.state === 'connected') {
      this.ping(); // the old socket may be dead after a network change
    }
  }

  // --- the socket ---

  async open() {
    this.setState('connecting');
    try {
      if (this.refreshAssertion || !this.assertion) {
        this.assertion = await this.opts.getAssertion();
        this.refreshAssertion = false;
      }
    } catch (e) {
      this.emit('error', { errno: 0, reason: 'getAssertion failed: ' + (e && e.message || e) });
      this.lost(0, 0);
      return;
    }
    if (this.state !== 'connecting') return; // closed meanwhile
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this.emit('error', { errno: 0, reason: 'WebSocket: ' + (e && e.message || e) });
      this.lost(0, 0);
      return;
    }
    this.ws = ws;
    this.pending = [];
    // A socket that never opens (a dead network drops SYNs for minutes)
    // or a server that never answers connect counts as lost.
    this.clear('connect');
    this.timers.connect = this.setTimeout(() => { this.timers.connect = null; this.lost(0, 0); }, this.opts.connectTimeout);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.send({ type: 'connect', assertion: this.assertion, application_ids: this.applicationIds, device_id: this.deviceId });
      this.armSilence();
    };
    ws.onmessage = (ev) => { if (this.ws === ws) this.receive(ev.data); };
    ws.onclose = (ev) => { if (this.ws === ws) this.lost(ev.code, 0); };
    ws.onerror = () => {}; // a close follows
  }

  send(frame) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.pending.push(frame);
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // dropSocket forgets the current socket; its late events are ignored.
  dropSocket(code) {
    const ws = this.ws;
    this.ws = null;
    this.sessionId = null;
    this.pending = [];
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(code); } catch (e) { /* already closed */ }
    }
  }

  // lost schedules a reconnect, unless the client is closed.
  lost(code, errno, delay) {
    this.dropSocket(1000);
    this.clear('silence');
    this.clear('connect');
    if (this.state === 'closed') return;
    if (delay === undefined) delay = backoffDelay(this.attempt, this.opts.minDelay, this.opts.maxDelay, this.random);
    this.attempt++;
    this.setState('disconnected', { code, errno, delay });
    this.clear('reconnect');
    this.timers.reconnect = this.setTimeout(() => { this.timers.reconnect = null; this.open(); }, delay);
  }

  receive(data) {
    this.armSilence();
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (!m || typeof m !== 'object') return;
    if ('result' in m) {
      this.answer(this.pending.shift(), m);
    } else if (m.type === 'notification') {
      this.notification(m);
    }
  }

  answer(req, m) {
    const type = req ? req.type : null;
    if (m.result !== false) {
      if (type === 'connect') this.connected(m);
      return;
    }
    const errno = m.errno;
    if (errno === 29) {
      this.hold(m.retry_after, req);
      return;
    }
    this.emit('error', { errno, reason: m.reason, request: type });
    if (errno === 34 || (errno === 3 && type === 'connect')) {
      // An assertion refused, or a connect with a field the server
      // rejects (device_id, application_ids): trying again cannot help.
      this.stop();
    } else if (errno === 35) {
      this.refreshAssertion = true;
      this.lost(0, 35, this.attempt === 0 ? 0 : undefined);
    } else if (errno < 0 || type === 'connect') {
      this.lost(0, errno);
    }
  }

  connected(m) {
    this.clear('connect');
    this.sessionId = m.session_id;
    this.attempt = 0;
    this.setState('connected', { sessionId: m.session_id, ignored: m.ignored_application_ids || [] });
    // The connect carried the visibility; the status follows.
    this.dirty.visibility = false;
    this.dirty.status = this.status !== null;
    this.flushState();
    this.flushAcks();
  }

  notification(n) {
    if (this.seen.has(n.id)) {
      // Pushed again (the server did not get the ack before a reconnect):
      // shown already; ack again if it was acked.
      if (this.seen.get(n.id) === true && !this.acks.includes(n.id)) {
        this.acks.push(n.id);
        this.flushAcks();
      }
      return;
    }
    this.remember(n.id, false);
    const exp = Date.parse(n.expires_at);
    this.emit('notification', { ...n, missed: !isNaN(exp) && exp <= this.now() });
  }

  // remember records a notification id as shown (false) or acked (true),
  // forgetting the oldest past seenLimit.
  remember(id, acked) {
    this.seen.delete(id); // re-insert: newest last
    this.seen.set(id, acked);
    if (this.seen.size > this.opts.seenLimit) this.seen.delete(this.seen.keys().next().value);
  }

  // --- sending state, acks and pings ---

  flushState() {
    if (this.state !== 'connected' || this.now() < this.heldUntil) return;
    if (this.dirty.visibility) {
      this.dirty.visibility = false;
      this.send({ type: 'visibility', session_id: this.sessionId, application_ids: this.applicationIds });
    }
    if (this.dirty.status && this.status) {
      this.dirty.status = false;
      this.send({ type: 'status', session_id: this.sessionId, ...this.status });
    }
  }

  // hold obeys errno 29: the refused request is sent again (as the newest
  // state) once retry_after has passed.
  hold(retryAfter, req) {
    const ms = Math.max(1, Number(retryAfter) || 1) * 1000;
    this.heldUntil = this.now() + ms;
    if (req && req.type === 'status') this.dirty.status = true;
    if (req && req.type === 'visibility') this.dirty.visibility = true;
    if (req && req.type === 'ack') { this.acks.unshift(...req.ids); }
    this.emit('error', { errno: 29, reason: 'rate limited', retryAfter: ms / 1000, request: req && req.type });
    this.clear('hold');
    this.timers.hold = this.setTimeout(() => {
      this.timers.hold = null;
      this.flushState();
      this.flushAcks();
    }, ms);
  }

  flushAcks() {
    if (this.state !== 'connected' || this.now() < this.heldUntil) return;
    while (this.acks.length) {
      const ids = this.acks.slice(0, MAX_ACK_IDS);
      if (!this.send({ type: 'ack', session_id: this.sessionId, ids })) return;
      this.acks.splice(0, ids.length);
    }
  }

  // armSilence restarts the silence timer: after pingAfter without a frame
  // the client pings; after pingTimeout more, the socket counts as dead.
  armSilence() {
    this.clear('silence');
    this.timers.silence = this.setTimeout(() => {
      this.timers.silence = null;
      this.ping();
    }, this.opts.pingAfter);
  }

  ping() {
    if (this.state !== 'connected') return;
    this.send({ type: 'ping' });
    this.clear('silence');
    this.timers.silence = this.setTimeout(() => {
      this.timers.silence = null;
      this.lost(0, 0);
    }, this.opts.pingTimeout);
  }

  clear(name) {
    if (this.timers[name] !== null) {
      this.clearTimeout(this.timers[name]);
      this.timers[name] = null;
    }
  }
}

function defaultURL(loc) {
  if (!loc) return 'ws://127.0.0.1:8080/presence';
  return (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/presence';
}
