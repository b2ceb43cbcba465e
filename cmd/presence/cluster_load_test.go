package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/internal/presencetest"
)

// The load of the cluster tests that lose an engine under traffic:
// devices that set their status over and over and take (and ack) every
// notification pushed to them, an app channel that records the newest
// status of each PUID, writers that POST notifications and keep a ledger
// of every one answered 200, and a watch on every node's /healthz.
// Nothing here fails the test from its own goroutine: each records what
// it saw, and the test checks it.

// loadLimits lifts the per-device and per-app rate limits, which a load
// test would otherwise hit by design.
const loadLimits = `
[limits]
status_per_minute = 1000000
notifications_per_minute = 1000000
`

// loadDevice is a connected device under load. Its reader acks every
// notification pushed to it and counts the answers to its requests.
type loadDevice struct {
	email, puid, sid string
	conn             *websocket.Conn
	wmu              sync.Mutex // guards: writes to conn

	last atomic.Int64 // number of the last status it set

	mu        sync.Mutex      // guards: got, asked, answers, failures, ackFailed, ended
	got       map[string]bool // message of every notification pushed to it
	asked     []string        // kinds of the requests not yet answered, oldest first
	answers   int64           // {"result":true} answers read
	failures  []string        // every other answer, but to an ack
	ackFailed []string        // answers other than {"result":true} to acks
	ended     error           // why the socket ended; nil while open
}

// loadDevice connects email's device "phone" to the node for app (whose
// grant is puid) and starts its reader.
func (n *node) loadDevice(email, puid string, app int64) *loadDevice {
	n.t.Helper()
	ws, sid := n.device(email, "phone", app)
	d := &loadDevice{email: email, puid: puid, sid: sid, conn: ws.Conn, got: map[string]bool{}}
	go d.read()
	return d
}

func (d *loadDevice) read() {
	d.conn.SetReadDeadline(time.Time{}) // the connect's answer set one
	for {
		_, data, err := d.conn.ReadMessage()
		if err != nil {
			d.mu.Lock()
			d.ended = err
			d.mu.Unlock()
			return
		}
		var f struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			Message string `json:"message"`
			Result  bool   `json:"result"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			f.Result = false // files the frame as a failure
		}
		switch {
		case f.Type == "notification":
			d.mu.Lock()
			d.got[f.Message] = true
			d.mu.Unlock()
			ack, _ := json.Marshal(map[string]any{"type": "ack", "session_id": d.sid, "ids": []string{f.ID}})
			d.send("ack", ack)
		default:
			d.answered(f.Result, string(data))
		}
	}
}

// answered files the answer to the oldest request not yet answered
// (answers come in the order of the requests).
func (d *loadDevice) answered(ok bool, frame string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	kind := ""
	if len(d.asked) > 0 {
		kind, d.asked = d.asked[0], d.asked[1:]
	}
	switch {
	case ok && kind != "":
		d.answers++
	case kind == "ack":
		d.ackFailed = append(d.ackFailed, frame)
	default:
		d.failures = append(d.failures, frame)
	}
}

// send writes a request of this kind ("status", "ack").
func (d *loadDevice) send(kind string, frame []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	d.asked = append(d.asked, kind)
	d.mu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return d.conn.WriteMessage(websocket.TextMessage, frame)
}

// setStatuses sets the device online with a new numbered message every
// period until stop is closed.
func (d *loadDevice) setStatuses(stop <-chan struct{}, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for seq := int64(1); ; seq++ {
		frame := fmt.Sprintf(`{"type":"status","session_id":%q,"status":"online","message":"#%d"}`, d.sid, seq)
		if d.send("status", []byte(frame)) != nil {
			return
		}
		d.last.Store(seq)
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// has reports whether the notification with this message reached it.
func (d *loadDevice) has(message string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.got[message]
}

// check fails the test if the device's socket ended, a status was
// answered anything but {"result":true}, an ack anything but that or
// allowAck, or some request was never answered.
func (d *loadDevice) check(t *testing.T, allowAck string) {
	t.Helper()
	waitFor(t, 10*time.Second, d.email+"'s answers", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.ended != nil || len(d.asked) == 0
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended != nil {
		t.Errorf("%s's device socket ended: %v", d.email, d.ended)
	}
	if len(d.failures) > 0 {
		t.Errorf("%s's device got %d answers that are not {\"result\":true}, first %s", d.email, len(d.failures), d.failures[0])
	}
	for _, a := range d.ackFailed {
		if a != allowAck {
			t.Errorf("%s's device: an ack answered %s", d.email, a)
		}
	}
	if len(d.ackFailed) > 0 {
		t.Logf("%s's device: %d acks answered %s", d.email, len(d.ackFailed), allowAck)
	}
}

// appWatch reads an app channel and keeps the newest status number
// (the "#N" of loadDevice's messages) of each PUID.
type appWatch struct {
	mu     sync.Mutex // guards: latest, count, ended, since, lastAt, gap
	latest map[string]int64
	count  int
	ended  error

	// From since on, the longest time a PUID went without an update.
	since  time.Time
	lastAt map[string]time.Time
	gap    time.Duration
}

func watchApp(f *presencetest.Feed) *appWatch {
	w := &appWatch{latest: map[string]int64{}, lastAt: map[string]time.Time{}}
	f.Conn.SetReadDeadline(time.Time{}) // the key's answer set one
	go func() {
		for {
			_, data, err := f.Conn.ReadMessage()
			var batch []presencetest.Update
			if err == nil {
				err = json.Unmarshal(data, &batch)
			}
			w.mu.Lock()
			if err != nil {
				w.ended = fmt.Errorf("%v (frame %.200s)", err, data)
				w.mu.Unlock()
				return
			}
			now := time.Now()
			for _, u := range batch {
				w.count++
				if !w.since.IsZero() {
					w.gap = max(w.gap, now.Sub(w.lastAt[u.UID]))
					w.lastAt[u.UID] = now
				}
				if n, err := strconv.ParseInt(strings.TrimPrefix(u.Message, "#"), 10, 64); err == nil && n > w.latest[u.UID] {
					w.latest[u.UID] = n
				}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// saw reports whether the app saw a status numbered above after from
// each device.
func (w *appWatch) saw(devices []*loadDevice, after map[string]int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range devices {
		if w.latest[d.puid] <= after[d.puid] {
			return false
		}
	}
	return true
}

// measureGaps starts measuring, from now, the longest time any of the
// devices' PUIDs goes without an update.
func (w *appWatch) measureGaps(devices []*loadDevice) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.since = time.Now()
	for _, d := range devices {
		w.lastAt[d.puid] = w.since
	}
}

// longestGap is the longest time a PUID went without an update since
// measureGaps, up to its last update.
func (w *appWatch) longestGap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gap
}

func (w *appWatch) updates() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.count
}

// noteLedger is what the writers were told: every notification answered
// 200 (message → its PUID) and every other answer.
type noteLedger struct {
	phase atomic.Int32 // 0 before the engine is lost, 1 after

	mu      sync.Mutex // guards: acked, okAfter, refused
	acked   map[string]string
	okAfter map[int]int // writer → 200s of POSTs sent after the loss
	refused []string    // "node: status body" or the request's error
}

func newLedger() *noteLedger {
	return &noteLedger{acked: map[string]string{}, okAfter: map[int]int{}}
}

// write POSTs notifications to one node, each to the next device's PUID,
// every period until stop is closed.
func (l *noteLedger) write(stop <-chan struct{}, writer int, n *node, app int64, key string, devices []*loadDevice, period time.Duration) {
	base := n.http("")
	tick := time.NewTicker(period)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		d := devices[seq%len(devices)]
		message := fmt.Sprintf("w%d-%d", writer, seq)
		after := l.phase.Load() == 1
		code, body, err := postNote(base, app, key, d.puid, message)
		l.mu.Lock()
		switch {
		case err != nil:
			l.refused = append(l.refused, fmt.Sprintf("writer %d: %v", writer, err))
		case code == http.StatusOK:
			l.acked[message] = d.puid
			if after {
				l.okAfter[writer]++
			}
		default:
			l.refused = append(l.refused, fmt.Sprintf("writer %d: %d %s", writer, code, strings.TrimSpace(body)))
		}
		l.mu.Unlock()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// ackedCount is how many POSTs were answered 200.
func (l *noteLedger) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// okAfter is each writer's count of 200s after the loss, for messages.
func (l *noteLedger) okAfterCounts() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.okAfter)
}

// okAfterLoss reports whether each of writers writers had at least n
// POSTs sent after the loss answered 200.
func (l *noteLedger) okAfterLoss(writers, n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range writers {
		if l.okAfter[w] < n {
			return false
		}
	}
	return true
}

// undelivered lists the acknowledged notifications that their device
// has not received.
func (l *noteLedger) undelivered(devices []*loadDevice) []string {
	byPUID := map[string]*loadDevice{}
	for _, d := range devices {
		byPUID[d.puid] = d
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var missing []string
	for message, puid := range l.acked {
		if !byPUID[puid].has(message) {
			missing = append(missing, message)
		}
	}
	sort.Strings(missing)
	return missing
}

// refusals is every answer that was not a 200.
func (l *noteLedger) refusals() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.refused...)
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

// progress says, per device, the last status it set and the newest the
// app saw, for a failure's message.
func (w *appWatch) progress(devices []*loadDevice) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var b strings.Builder
	for i, d := range devices {
		fmt.Fprintf(&b, "device %d set #%d, app saw #%d; ", i, d.last.Load(), w.latest[d.puid])
	}
	fmt.Fprintf(&b, "app channel ended: %v", w.ended)
	return b.String()
}
