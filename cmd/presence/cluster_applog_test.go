package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/internal/presencetest"
)

// appLog is every update an app channel (a WebSocket channel or an XMPP
// component) received, with when, read on a goroutine of its own until
// the connection ends (when the test does). The load tests read it for
// what they look for: offlines, each PUID's newest "#N" status, the
// longest silence.
type appLog struct {
	mu    sync.Mutex // guards: seen, err, grown
	seen  []seenUpdate
	err   error         // why the channel stopped being read
	grown chan struct{} // closed, and replaced, when an update is added
}

type seenUpdate struct {
	presencetest.Update
	at time.Time
}

// number is the N of a loadDevice status's message "#N", 0 for others.
func (u seenUpdate) number() int64 {
	n, _ := strconv.ParseInt(strings.TrimPrefix(u.Message, "#"), 10, 64)
	return n
}

func newAppLog() *appLog { return &appLog{grown: make(chan struct{})} }

// add records a batch the channel received, or why it stopped.
func (r *appLog) add(batch []presencetest.Update, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = err
	}
	for _, u := range batch {
		r.seen = append(r.seen, seenUpdate{u, now})
	}
	close(r.grown)
	r.grown = make(chan struct{})
}

// recordFeed logs what an app's WebSocket channel receives.
func recordFeed(f *presencetest.Feed) *appLog {
	r := newAppLog()
	f.Conn.SetReadDeadline(time.Time{}) // the feed's reads wait as long as the test
	go func() {
		for {
			_, data, err := f.Conn.ReadMessage()
			var batch []presencetest.Update
			if err == nil {
				if err = json.Unmarshal(data, &batch); err != nil {
					err = fmt.Errorf("%v (frame %.200s)", err, data)
				}
			}
			r.add(batch, err)
			if err != nil {
				return
			}
		}
	}()
	return r
}

// recordComponent logs the presences an app's component receives, as
// the updates of a WebSocket channel (type unavailable is offline, show
// away unavailable).
func recordComponent(c *clusterComponent) *appLog {
	r := newAppLog()
	go func() {
		for {
			select {
			case st := <-c.in:
				if st.XMLName.Local != "presence" {
					r.add(nil, fmt.Errorf("the component got a %s from %s", st.XMLName.Local, st.From))
					continue
				}
				u := presencetest.Update{UID: strings.TrimSuffix(st.From, "@presence.localhost"), Status: "online", Message: st.Status}
				switch {
				case st.Type == "unavailable":
					u.Status = "offline"
				case st.Show == "away":
					u.Status = "unavailable"
				}
				r.add([]presencetest.Update{u}, nil)
			case err := <-c.ended:
				r.add(nil, fmt.Errorf("the component's stream ended: %v", err))
				return
			}
		}
	}()
	return r
}

// waitUntil waits until done holds of what the channel saw, and fails
// the test, saying what it waited for, if it does not within `within`.
func (r *appLog) waitUntil(t *testing.T, within time.Duration, what string, done func([]seenUpdate) bool) {
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
func (r *appLog) snapshot() []seenUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

// failed is why the channel stopped being read, nil while it is read.
func (r *appLog) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// newest is the highest status number the channel saw of each PUID.
func (r *appLog) newest() map[string]int64 {
	latest := map[string]int64{}
	for _, u := range r.snapshot() {
		latest[u.UID] = max(latest[u.UID], u.number())
	}
	return latest
}

// saw reports whether the app saw a status numbered above after from
// each device.
func (r *appLog) saw(devices []*loadDevice, after map[string]int64) bool {
	latest := r.newest()
	for _, d := range devices {
		if latest[d.user.puid] <= after[d.user.puid] {
			return false
		}
	}
	return true
}

// longestGap is the longest time, from since on, that one of the
// devices' PUIDs went without an update, up to its last update.
func (r *appLog) longestGap(devices []*loadDevice, since time.Time) time.Duration {
	lastAt := map[string]time.Time{}
	for _, d := range devices {
		lastAt[d.user.puid] = since
	}
	var gap time.Duration
	for _, u := range r.snapshot() {
		if last, ok := lastAt[u.UID]; ok && !u.at.Before(since) {
			gap = max(gap, u.at.Sub(last))
			lastAt[u.UID] = u.at
		}
	}
	return gap
}

// progress says, per device, the last status it set and the newest the
// app saw, for a failure's message.
func (r *appLog) progress(devices []*loadDevice) string {
	latest := r.newest()
	var b strings.Builder
	for i, d := range devices {
		fmt.Fprintf(&b, "device %d set #%d, app saw #%d; ", i, d.seq.Load(), latest[d.user.puid])
	}
	fmt.Fprintf(&b, "app channel failed: %v", r.failed())
	return b.String()
}
