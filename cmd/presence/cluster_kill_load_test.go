package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/presence-service/presence/internal/presencetest"
)

// The load of TestClusterSIGKILLUnderLoad, each peer on its own
// goroutine: devices that set their status and ack what they are pushed,
// and connect again elsewhere when their node dies; apps that POST
// notifications; the ledger of what was answered 200, pushed, and acked
// (with when: "none again after its ack" needs the time an ack was
// answered, and the time a connect was sent); and a log of every update
// an app channel saw (offlines are what the test looks for, where
// cluster_load_test.go's appWatch keeps the newest status). They report
// errors to the ledger instead of failing the test: only the test's
// goroutine may.

// loadTimeout bounds every wait of a load peer for an answer.
const loadTimeout = 10 * time.Second

// ledgerUser is a user with a grant of the test's app.
type ledgerUser struct {
	n     int // in every message posted for the user: "u<n> …"
	email string
	puid  string
	token string // a dev assertion, minted once
}

// deliveryLedger is what the test's users were promised and given: every
// notification answered 200, every one pushed to a device of its user,
// every ack answered true, and what went wrong on a peer's goroutine.
type deliveryLedger struct {
	mu       sync.Mutex             // guards: posted, pushed, ackedAt, acks, problems
	posted   map[string]*ledgerUser // message → its user, answered 200
	pushed   map[string]bool        // message → pushed to a device of its user
	ackedAt  map[string]time.Time   // message → when an ack of it was answered true
	acks     int                    // ack frames answered true
	problems []string
}

func newDeliveryLedger() *deliveryLedger {
	return &deliveryLedger{posted: map[string]*ledgerUser{}, pushed: map[string]bool{}, ackedAt: map[string]time.Time{}}
}

func (l *deliveryLedger) problem(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// problemsFrom returns the problems reported so far, from the i-th on.
func (l *deliveryLedger) problemsFrom(i int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.problems[min(i, len(l.problems)):]...)
}

// push records a notification pushed to a device of u on a connection
// whose connect was sent at opened. One whose ack was answered before
// that connect is delivered again after its ack: the contract says never.
func (l *deliveryLedger) push(u *ledgerUser, opened time.Time, id, uid, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if uid != u.puid || !strings.HasPrefix(message, fmt.Sprintf("u%d ", u.n)) {
		l.problems = append(l.problems, fmt.Sprintf("%s was pushed %q for %s: not theirs", u.email, message, uid))
	}
	if at, ok := l.ackedAt[message]; ok && at.Before(opened) {
		l.problems = append(l.problems, fmt.Sprintf("%s was pushed %q (id %s) again on a connect %v after its ack was answered",
			u.email, message, id, opened.Sub(at).Round(time.Millisecond)))
	}
	l.pushed[message] = true
}

func (l *deliveryLedger) acked(messages []string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range messages {
		l.ackedAt[m] = at
	}
	l.acks++
}

func (l *deliveryLedger) post(users []*ledgerUser, messages []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range messages {
		l.posted[m] = users[i]
	}
}

// counts is how many notifications were answered 200, and how many acks
// answered true, so far.
func (l *deliveryLedger) counts() (posted, acks int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.posted), l.acks
}

// perUser is how many notifications of each user were answered 200.
func (l *deliveryLedger) perUser() map[*ledgerUser]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := map[*ledgerUser]int{}
	for _, u := range l.posted {
		count[u]++
	}
	return count
}

// missing lists u's notifications answered 200 and never pushed to a
// device of u.
func (l *deliveryLedger) missing(u *ledgerUser) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for m, to := range l.posted {
		if to == u && !l.pushed[m] {
			out = append(out, m)
		}
	}
	return out
}

// ledgerDevice is a device under load, driven on one goroutine: each
// request's answer is read by the request's sender, so an ack's answer
// tells which items it acked.
type ledgerDevice struct {
	user    *ledgerUser
	id      string // device_id
	app     int64
	conn    *websocket.Conn
	sid     string
	opened  time.Time         // when its connect was sent
	unacked map[string]string // pushed and not acked yet: id → message
}

// errDropped wraps a device's read or write that failed: the server is
// gone, or cut the connection.
var errDropped = errors.New("connection dropped")

// connect opens a session on the node at addr (host:port).
func (d *ledgerDevice) connect(addr string) error {
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/presence", nil)
	if err != nil {
		return fmt.Errorf("%s/%s: dial %s: %w", d.user.email, d.id, addr, err)
	}
	d.conn, d.opened, d.unacked = c, time.Now(), map[string]string{}
	frame := fmt.Sprintf(`{"type":"connect","assertion":%q,"application_ids":[%d],"device_id":%q}`, d.user.token, d.app, d.id)
	c.SetWriteDeadline(time.Now().Add(loadTimeout))
	c.SetReadDeadline(time.Now().Add(loadTimeout))
	if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		return fmt.Errorf("%s/%s: connect on %s: %w", d.user.email, d.id, addr, err)
	}
	var answer struct {
		Result  bool    `json:"result"`
		Session string  `json:"session_id"`
		Ignored []int64 `json:"ignored_application_ids"`
	}
	_, data, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("%s/%s: connect on %s: %w", d.user.email, d.id, addr, err)
	}
	if json.Unmarshal(data, &answer) != nil || !answer.Result || answer.Session == "" || len(answer.Ignored) != 0 {
		return fmt.Errorf("%s/%s: connect on %s answered %s", d.user.email, d.id, addr, data)
	}
	d.sid = answer.Session
	return nil
}

// exchange sends one request and reads up to its answer, which must be
// {"result":true}, recording what is pushed meanwhile.
func (d *ledgerDevice) exchange(frame string, l *deliveryLedger) error {
	d.conn.SetWriteDeadline(time.Now().Add(loadTimeout))
	if err := d.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		return fmt.Errorf("%w: %s/%s: %v", errDropped, d.user.email, d.id, err)
	}
	for {
		d.conn.SetReadDeadline(time.Now().Add(loadTimeout))
		_, data, err := d.conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("%w: %s/%s: %v", errDropped, d.user.email, d.id, err)
		}
		var f struct {
			Type    string `json:"type"`
			ID      string `json:"id"`
			UID     string `json:"UID"`
			Message string `json:"message"`
			Result  *bool  `json:"result"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("%s/%s got %s: %v", d.user.email, d.id, data, err)
		}
		switch {
		case f.Type == "notification":
			l.push(d.user, d.opened, f.ID, f.UID, f.Message)
			d.unacked[f.ID] = f.Message
		case f.Result != nil && *f.Result:
			return nil
		default:
			return fmt.Errorf("%s/%s sent %s, got %s", d.user.email, d.id, frame, data)
		}
	}
}

// status sets the device's status, for every app of its session.
func (d *ledgerDevice) status(l *deliveryLedger, status, message string) error {
	return d.exchange(fmt.Sprintf(`{"type":"status","session_id":%q,"status":%q,"message":%q}`, d.sid, status, message), l)
}

// ackAll acks everything the device was pushed, at most 100 ids a frame
// (PROTOCOL §2), recording each ack answered true.
func (d *ledgerDevice) ackAll(l *deliveryLedger) error {
	for len(d.unacked) > 0 {
		var ids, messages []string
		for id, m := range d.unacked {
			if len(ids) == 100 {
				break
			}
			ids, messages = append(ids, id), append(messages, m)
		}
		frame, _ := json.Marshal(map[string]any{"type": "ack", "session_id": d.sid, "ids": ids})
		if err := d.exchange(string(frame), l); err != nil {
			return err
		}
		l.acked(messages, time.Now())
		for _, id := range ids {
			delete(d.unacked, id)
		}
	}
	return nil
}

// run sets the device's status every `every`, between online and away,
// and acks what it was pushed, until stop is closed (nil) or the
// connection fails.
func (d *ledgerDevice) run(stop <-chan struct{}, every time.Duration, l *deliveryLedger) error {
	return ticking(stop, every, func(i int) error {
		status := "online"
		if i%2 == 1 {
			status = "unavailable"
		}
		if err := d.status(l, status, fmt.Sprintf("%s %d", d.id, i)); err != nil {
			return err
		}
		return d.ackAll(l)
	})
}

// ticking calls step(0), step(1), … one every `every`, until stop is
// closed (nil) or a step fails (its error).
func ticking(stop <-chan struct{}, every time.Duration, step func(i int) error) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
		if err := step(i); err != nil {
			return err
		}
	}
}

// postNotifications POSTs, every `every` until stop is closed, one batch
// of two notifications for the next two users, to the nodes at addrs in
// turn; it records each one answered 200. Any other answer is an error:
// the nodes it posts to are up.
func postNotifications(stop <-chan struct{}, every time.Duration, writer int, addrs []string, app int64, key string, users []*ledgerUser, l *deliveryLedger) error {
	return ticking(stop, every, func(i int) error {
		to := []*ledgerUser{users[(2*i)%len(users)], users[(2*i+1)%len(users)]}
		var items []map[string]any
		var messages []string
		for _, u := range to {
			m := fmt.Sprintf("u%d w%d-%d", u.n, writer, i)
			messages = append(messages, m)
			items = append(items, map[string]any{"UID": u.puid, "message": m, "ttl": 3600})
		}
		body, _ := json.Marshal(items)
		addr := addrs[i%len(addrs)]
		req, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/%d/notification", addr, app), strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := noteClient.Do(req)
		if err != nil {
			return fmt.Errorf("POST to %s: %w", addr, err)
		}
		answer, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("POST to %s: %d %s", addr, res.StatusCode, answer)
		}
		l.post(to, messages)
		return nil
	})
}

// feedLog is every update an app channel received, with when.
type feedLog struct {
	mu    sync.Mutex // guards: seen, err, grown
	seen  []seenUpdate
	err   error         // why the channel stopped being read
	grown chan struct{} // closed, and replaced, when an update is added
}

type seenUpdate struct {
	presencetest.Update
	at time.Time
}

// recordFeed reads f on a goroutine of its own until the connection
// ends (when the test does).
func recordFeed(f *presencetest.Feed) *feedLog {
	r := &feedLog{grown: make(chan struct{})}
	f.Conn.SetReadDeadline(time.Time{}) // the feed's reads wait as long as the test
	go func() {
		for {
			_, data, err := f.Conn.ReadMessage()
			var batch []presencetest.Update
			if err == nil {
				err = json.Unmarshal(data, &batch)
			}
			now := time.Now()
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			for _, u := range batch {
				r.seen = append(r.seen, seenUpdate{u, now})
			}
			close(r.grown)
			r.grown = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	return r
}

// waitUntil waits until done holds of what the channel saw, and fails
// the test, saying what it waited for, if it does not within `within`.
func (r *feedLog) waitUntil(t *testing.T, within time.Duration, what string, done func([]seenUpdate) bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		seen, grown, err := r.seen, r.grown, r.err
		r.mu.Unlock()
		if done(seen) {
			return
		}
		if err != nil {
			t.Fatalf("waiting for %s: the app channel failed: %v", what, err)
		}
		select {
		case <-grown:
		case <-deadline:
			t.Fatalf("the app channel did not see %s within %v", what, within)
		}
	}
}

// snapshot is what the channel saw so far.
func (r *feedLog) snapshot() []seenUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}
