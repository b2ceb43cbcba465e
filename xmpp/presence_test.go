package xmpp_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/presence-service/presence/core"
)

// wantPresence checks one presence stanza against §7's table.
func wantPresence(t *testing.T, e *env, g got, puid string, st core.Status, msg string) {
	t.Helper()
	if g.XMLName.Local != "presence" || g.From != userJID(puid) || g.To != e.componentJID(e.app).String() {
		t.Fatalf("got %+v, want a presence from %s to %s", g, userJID(puid), e.componentJID(e.app))
	}
	wantType, wantShow := "", ""
	switch st {
	case core.Offline:
		wantType, msg = "unavailable", ""
	case core.Unavailable:
		wantShow = "away"
	}
	if g.Type != wantType || g.Show != wantShow || g.Status != msg {
		t.Fatalf("got type=%q show=%q status=%q, want type=%q show=%q status=%q", g.Type, g.Show, g.Status, wantType, wantShow, msg)
	}
}

func TestPresence_EachStatus(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	d := e.connect("alice@example.com", e.app)
	for _, step := range []struct {
		st  core.Status
		msg string
	}{
		{core.Online, ""},
		{core.Online, "In a meeting"},
		{core.Unavailable, ""},
		{core.Unavailable, "Back at 3 <pm> & later"},
		{core.Offline, ""},
		{core.Online, "again"},
	} {
		t.Run(fmt.Sprintf("%s %q", step.st, step.msg), func(t *testing.T) {
			e.setStatus(d, step.st, step.msg)
			wantPresence(t, e, c.next(), e.alice, step.st, step.msg)
		})
	}
}

func TestPresence_InitialThenQueueThenLive(t *testing.T) {
	e := newEnv(t)
	alice := e.connect("alice@example.com", e.app)
	e.setStatus(alice, core.Online, "here")
	bob := e.connect("bob@example.com", e.app)
	e.setStatus(bob, core.Unavailable, "")
	e.setStatus(bob, core.Offline, "") // waits in the queue as offline

	c := e.mustDial()
	// Initial presence: alice only (bob is offline); then the queue:
	// alice's same update again (coalesced with the first in the
	// outbox) and bob's offline.
	seen := map[string][]got{}
	for range 2 {
		g := c.next()
		seen[g.From] = append(seen[g.From], g)
	}
	if len(seen[userJID(e.alice)]) != 1 || len(seen[userJID(e.bob)]) != 1 {
		t.Fatalf("got %v", seen)
	}
	wantPresence(t, e, seen[userJID(e.alice)][0], e.alice, core.Online, "here")
	wantPresence(t, e, seen[userJID(e.bob)][0], e.bob, core.Offline, "")
	c.none()

	e.setStatus(bob, core.Online, "live")
	wantPresence(t, e, c.next(), e.bob, core.Online, "live")
}

func TestProbe(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	d := e.connect("alice@example.com", e.app)
	e.setStatus(d, core.Unavailable, "lunch")
	c.next()

	other, _ := e.newApp("other.example")
	stranger := e.grant("carol@example.com", other, "carol")
	me := e.componentJID(e.app).String()
	for _, tc := range []struct {
		name, to string
		want     func(*testing.T, got)
	}{
		{"known, away", userJID(e.alice), func(t *testing.T, g got) { wantPresence(t, e, g, e.alice, core.Unavailable, "lunch") }},
		{"known, offline", userJID(e.bob), func(t *testing.T, g got) { wantPresence(t, e, g, e.bob, core.Offline, "") }},
		{"with a resource", userJID(e.alice) + "/phone", func(t *testing.T, g got) { wantPresence(t, e, g, e.alice, core.Unavailable, "lunch") }},
		{"unknown", userJID("nosuchpuid"), wantError("presence", "item-not-found")},
		{"another app's user", userJID(stranger), wantError("presence", "item-not-found")},
		{"another domain", e.alice + "@elsewhere.example", wantError("presence", "item-not-found")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.send(fmt.Sprintf("<presence type='probe' id='p1' from='%s' to='%s'/>", me, tc.to))
			g := c.next()
			tc.want(t, g)
			if g.To != me {
				t.Errorf("answer to %q, want %q", g.To, me)
			}
		})
	}
}

func wantError(kind, cond string) func(*testing.T, got) {
	return func(t *testing.T, g got) {
		t.Helper()
		if g.XMLName.Local != kind || g.Type != "error" || g.cond() != cond {
			t.Fatalf("got %+v (condition %q), want a %s error %s", g, g.cond(), kind, cond)
		}
	}
}

// recorder is a second channel of the app (as the WebSocket app channel
// would be), attached to the router directly.
type recorder struct {
	mu      sync.Mutex
	updates []core.StatusUpdate
}

func (r *recorder) SendStatus(u core.StatusUpdate) {
	r.mu.Lock()
	r.updates = append(r.updates, u)
	r.mu.Unlock()
}
func (r *recorder) Close(core.Errno) {}

func TestPresence_BothChannelsGetEveryUpdate(t *testing.T) {
	e := newEnv(t)
	c := e.mustDial()
	rec := &recorder{}
	detach, err := e.router.AttachApp(context.Background(), e.app, rec, core.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	d := e.connect("alice@example.com", e.app)
	e.setStatus(d, core.Online, "1")
	wantPresence(t, e, c.next(), e.alice, core.Online, "1")
	e.setStatus(d, core.Unavailable, "2")
	wantPresence(t, e, c.next(), e.alice, core.Unavailable, "2")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.updates) != 2 || rec.updates[1].Message != "2" {
		t.Fatalf("other channel got %v", rec.updates)
	}
}
