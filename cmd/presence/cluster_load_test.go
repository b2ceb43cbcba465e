package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The load of the cluster tests that lose a node or an engine under
// traffic, one vocabulary for all of them:
//   - loadUser, a user with a grant of the test's app;
//   - loadDevice, a connected device that sets numbered statuses ("#N",
//     N growing over the device's life, across its connects) and acks
//     every notification pushed to it, and can connect again elsewhere;
//   - loadLedger (cluster_ledger_test.go), what the users were
//     promised and given: every notification answered 200, pushed to a
//     device of its user, and acked (with when), every POST refused,
//     every problem a peer saw;
//   - appLog (cluster_applog_test.go), every update an app channel saw;
//   - healthWatch, every node's /healthz.
//
// Nothing here fails the test from its own goroutine: each records what
// it saw, and the test checks it.

// loadLimits lifts the per-device and per-app rate limits, which a load
// test would otherwise hit by design.
const loadLimits = `
[limits]
status_per_minute = 1000000
notifications_per_minute = 1000000
`

// loadTimeout bounds every wait of a load peer for an answer.
const loadTimeout = 10 * time.Second

// loadUser is a user with a grant of the test's app.
type loadUser struct {
	n     int // in every message posted for the user: "u<n> …"
	email string
	puid  string
	token string // a dev assertion, minted once
}

// loadUser grants app to user<i>@example.com through the node's pages.
func (n *node) loadUser(i int, app int64) *loadUser {
	n.t.Helper()
	u := &loadUser{n: i, email: fmt.Sprintf("user%d@example.com", i)}
	_, u.puid = n.grantAs(u.email, app, fmt.Sprint("user", i))
	u.token = n.token(u.email)
	return u
}

// loadDevice is a device under load. Its requests are written without
// waiting for their answers (a node answers a device's requests in
// order); a reader goroutine per connection files each answer to its
// request, and each notification pushed into the ledger.
type loadDevice struct {
	user   *loadUser
	id     string // device_id
	app    int64
	ledger *loadLedger
	seq    atomic.Int64 // number of the last status it set ("#N"), over all its connects

	wmu sync.Mutex // guards: writes to conn (a request is queued and written as one)

	mu        sync.Mutex // guards: conn, sid, opened, asked, unacked, ended, closed, failures, ackFailed
	conn      *websocket.Conn
	sid       string
	opened    time.Time         // when its connect was sent
	asked     []*request        // requests written and not yet answered, oldest first
	unacked   map[string]string // pushed and no ack sent yet: id → message
	ended     error             // why the connection ended; nil while open
	closed    bool              // the test closed the connection
	failures  []string          // answers to statuses and pings but {"result":true}
	ackFailed []string          // answers to acks but {"result":true}
}

// request is a request written and waiting for its answer.
type request struct {
	kind     string   // "status", "ack", "ping"
	messages []string // an ack's notifications
	answered chan bool
}

// errDropped wraps a device's request on a connection that ended: the
// server is gone, or cut the connection.
var errDropped = errors.New("connection dropped")

// newDevice is u's device id, not connected yet.
func newDevice(u *loadUser, id string, app int64, l *loadLedger) *loadDevice {
	return &loadDevice{user: u, id: id, app: app, ledger: l}
}

// connect opens a session on the node at addr (host:port), reading the
// connect's answer itself, then starts the connection's reader. What
// was pushed and not acked on an earlier connection is pushed again.
func (d *loadDevice) connect(addr string) error {
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/presence", nil)
	if err != nil {
		return fmt.Errorf("%s/%s: dial %s: %w", d.user.email, d.id, addr, err)
	}
	opened := time.Now()
	frame := fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":%q}`, d.user.token, d.app, d.id)
	c.SetWriteDeadline(time.Now().Add(loadTimeout))
	c.SetReadDeadline(time.Now().Add(loadTimeout))
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.Close()
		return fmt.Errorf("%s/%s: connect on %s: %w", d.user.email, d.id, addr, err)
	}
	var answer struct {
		Result  bool    `json:"result"`
		Session string  `json:"session_id"`
		Ignored []int64 `json:"ignored_application_ids"`
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return fmt.Errorf("%s/%s: connect on %s: %w", d.user.email, d.id, addr, err)
	}
	if json.Unmarshal(data, &answer) != nil || !answer.Result || answer.Session == "" || len(answer.Ignored) != 0 {
		c.Close()
		return fmt.Errorf("%s/%s: connect on %s answered %s", d.user.email, d.id, addr, data)
	}
	c.SetReadDeadline(time.Time{})
	d.mu.Lock()
	d.conn, d.sid, d.opened = c, answer.Session, opened
	d.asked, d.unacked, d.ended, d.closed = nil, map[string]string{}, nil, false
	d.mu.Unlock()
	go d.read(c, opened)
	return nil
}

// read files what the connection c, opened at opened, receives: into
// the device while c is its connection, and each push into the ledger.
func (d *loadDevice) read(c *websocket.Conn, opened time.Time) {
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			d.mu.Lock()
			if d.conn == c {
				d.ended = err
				for _, r := range d.asked {
					close(r.answered) // unanswered: false
				}
				d.asked = nil
			}
			d.mu.Unlock()
			return
		}
		var f struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			UID     string `json:"UID"`
			Message string `json:"message"`
			Result  *bool  `json:"result"`
		}
		if json.Unmarshal(data, &f) != nil {
			f.Result = nil // files the frame as a failure
		}
		if f.Type == "notification" {
			d.ledger.push(d.user, opened, f.ID, f.UID, f.Message)
			d.mu.Lock()
			if d.conn == c {
				d.unacked[f.ID] = f.Message
			}
			d.mu.Unlock()
			continue
		}
		ok := f.Result != nil && *f.Result
		d.mu.Lock()
		if d.conn != c { // a connection the device has left: its requests are gone
			d.mu.Unlock()
			return
		}
		var r *request
		if len(d.asked) > 0 {
			r, d.asked = d.asked[0], d.asked[1:]
		}
		switch {
		case r == nil:
			d.failures = append(d.failures, "unasked: "+string(data))
		case !ok && r.kind == "ack":
			d.ackFailed = append(d.ackFailed, string(data))
		case !ok:
			d.failures = append(d.failures, r.kind+": "+string(data))
		}
		d.mu.Unlock()
		if r != nil {
			if ok && r.kind == "ack" {
				d.ledger.acked(r.messages, time.Now())
			}
			r.answered <- ok
		}
	}
}

// send writes a request and returns it, to wait for its answer or not.
func (d *loadDevice) send(kind string, frame []byte, messages []string) (*request, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	r := &request{kind: kind, messages: messages, answered: make(chan bool, 1)}
	d.mu.Lock()
	c, ended := d.conn, d.ended
	if ended == nil {
		d.asked = append(d.asked, r)
	}
	d.mu.Unlock()
	if ended != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", errDropped, d.user.email, d.id, ended)
	}
	c.SetWriteDeadline(time.Now().Add(loadTimeout))
	if err := c.WriteMessage(websocket.TextMessage, frame); err != nil {
		return nil, fmt.Errorf("%w: %s/%s: %v", errDropped, d.user.email, d.id, err)
	}
	return r, nil
}

// await waits for the answer to the request r, what.
func (d *loadDevice) await(r *request, what string) error {
	select {
	case ok, open := <-r.answered:
		switch {
		case !open:
			return fmt.Errorf("%w: %s/%s: no answer to %s", errDropped, d.user.email, d.id, what)
		case !ok:
			return fmt.Errorf("%s/%s sent %s: answered otherwise (see its failures)", d.user.email, d.id, what)
		}
		return nil
	case <-time.After(loadTimeout):
		return fmt.Errorf("%s/%s sent %s: no answer within %v", d.user.email, d.id, what, loadTimeout)
	}
}

// nextStatus sends the device's next numbered status, online or (every
// other one) unavailable, without waiting for its answer.
func (d *loadDevice) nextStatus() (*request, error) {
	seq := d.seq.Load() + 1
	status := "online"
	if seq%2 == 0 {
		status = "unavailable"
	}
	d.mu.Lock()
	sid := d.sid
	d.mu.Unlock()
	frame := fmt.Sprintf(`{"type":"status","session_id":%q,"status":%q,"message":"#%d"}`, sid, status, seq)
	r, err := d.send("status", []byte(frame), nil)
	if err == nil {
		d.seq.Store(seq)
	}
	return r, err
}

// status sets the device's next numbered status and waits for the answer.
func (d *loadDevice) status() error {
	r, err := d.nextStatus()
	if err != nil {
		return err
	}
	return d.await(r, "a status")
}

// ping waits for the answer to a ping: what was pushed before is in the
// ledger, and in unackedNow.
func (d *loadDevice) ping() error {
	r, err := d.send("ping", []byte(`{"type":"ping"}`), nil)
	if err != nil {
		return err
	}
	return d.await(r, "a ping")
}

// ackAll sends acks of everything pushed and not acked yet, at most 100
// ids a frame (PROTOCOL §2); the reader records each answered true.
func (d *loadDevice) ackAll() error {
	for {
		d.mu.Lock()
		var ids, messages []string
		for id, m := range d.unacked {
			if len(ids) == 100 {
				break
			}
			ids, messages = append(ids, id), append(messages, m)
			delete(d.unacked, id)
		}
		sid := d.sid
		d.mu.Unlock()
		if len(ids) == 0 {
			return nil
		}
		frame, _ := json.Marshal(map[string]any{"type": "ack", "session_id": sid, "ids": ids})
		if _, err := d.send("ack", frame, messages); err != nil {
			return err
		}
	}
}

// unackedNow is what was pushed to the device and not acked yet.
func (d *loadDevice) unackedNow() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.unacked)
}

// run sets the device's next status and acks what it was pushed, every
// `every`, until stop is closed (nil) or its connection ends (an error
// wrapping errDropped).
func (d *loadDevice) run(stop <-chan struct{}, every time.Duration) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := d.nextStatus(); err != nil {
			return err
		}
		if err := d.ackAll(); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
}

// close ends the device's connection; the end is not a failure.
func (d *loadDevice) close() {
	d.mu.Lock()
	d.closed = true
	c := d.conn
	d.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// check fails the test if the device's connection ended (not closed by
// the test), a status or ping was answered anything but
// {"result":true}, an ack anything but that or allowAck, or some request
// was not answered within loadTimeout.
func (d *loadDevice) check(t *testing.T, allowAck string) {
	t.Helper()
	answered := eventually(loadTimeout, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.ended != nil || len(d.asked) == 0
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if !answered {
		t.Errorf("%s/%s: %d requests not answered within %v", d.user.email, d.id, len(d.asked), loadTimeout)
	}
	if d.ended != nil && !d.closed {
		t.Errorf("%s/%s: its connection ended: %v", d.user.email, d.id, d.ended)
	}
	if len(d.failures) > 0 {
		t.Errorf("%s/%s got %d answers that are not {\"result\":true}, first %s", d.user.email, d.id, len(d.failures), d.failures[0])
	}
	for _, a := range d.ackFailed {
		if a != allowAck {
			t.Errorf("%s/%s: an ack answered %s", d.user.email, d.id, a)
		}
	}
	if len(d.ackFailed) > 0 {
		t.Logf("%s/%s: %d acks answered %s", d.user.email, d.id, len(d.ackFailed), allowAck)
	}
}

// lastStatuses is the number of the last status each device has set.
func lastStatuses(devices []*loadDevice) map[string]int64 {
	last := map[string]int64{}
	for _, d := range devices {
		last[d.user.puid] = d.seq.Load()
	}
	return last
}

// healthWatch polls every node's /healthz and keeps, per node, the
// longest time it did not answer 200.
type healthWatch struct {
	mu      sync.Mutex // guards: longest, downAt, answers
	longest []time.Duration
	downAt  []time.Time // start of the current stretch without a 200; zero while up
	answers []string    // the first non-200 answer of each node
}

func watchHealth(stop <-chan struct{}, wg *sync.WaitGroup, nodes []*node) *healthWatch {
	h := &healthWatch{longest: make([]time.Duration, len(nodes)), downAt: make([]time.Time, len(nodes)), answers: make([]string, len(nodes))}
	client := &http.Client{Timeout: 5 * time.Second}
	for i, n := range nodes {
		url := n.http("/healthz")
		wg.Go(func() {
			for {
				res, err := client.Get(url)
				answer := ""
				if err != nil {
					answer = err.Error()
				} else {
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						answer = res.Status
					}
				}
				h.record(i, answer)
				select {
				case <-stop:
					h.record(i, "") // closes a stretch still open
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		})
	}
	return h
}

func (h *healthWatch) record(i int, answer string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	switch {
	case answer != "" && h.downAt[i].IsZero():
		h.downAt[i] = now
		if h.answers[i] == "" {
			h.answers[i] = answer
		}
	case answer == "" && !h.downAt[i].IsZero():
		h.longest[i] = max(h.longest[i], now.Sub(h.downAt[i]))
		h.downAt[i] = time.Time{}
	}
}

// worst is the node that went longest without a 200, for how long, and
// the answer it gave.
func (h *healthWatch) worst() (int, time.Duration, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	worst := 0
	for i, d := range h.longest {
		if d > h.longest[worst] {
			worst = i
		}
	}
	return worst, h.longest[worst], h.answers[worst]
}

// waitFor polls cond until it holds, and fails the test after within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !eventually(within, cond) {
		t.Fatalf("%s: not within %v", what, within)
	}
}

// eventually polls cond until it holds (true) or within has passed.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
