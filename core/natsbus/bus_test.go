package natsbus_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/natsbus"
	"github.com/presence-service/presence/internal/natstest"
)

// node is what a router would be: it records what its bus delivers.
type node struct {
	mu       sync.Mutex // guards: statuses, apps, invs, notes, pres, devs, chans
	statuses []core.StatusUpdate
	apps     []core.AppID
	invs     []core.Invalidation
	notes    [][]core.Notification
	pres     []core.NodePresence
	devs     []core.DeviceEvent
	chans    []core.AppChannels
	changed  chan struct{} // a value after each delivery, dropped when full
}

func newNode() *node { return &node{changed: make(chan struct{}, 1)} }

func (n *node) DeliverStatus(app core.AppID, u core.StatusUpdate) {
	n.mu.Lock()
	n.statuses = append(n.statuses, u)
	n.apps = append(n.apps, app)
	n.mu.Unlock()
	n.poke()
}

func (n *node) Invalidated(inv core.Invalidation) {
	n.mu.Lock()
	n.invs = append(n.invs, inv)
	n.mu.Unlock()
	n.poke()
}

func (n *node) DeliverPresence(p core.NodePresence) {
	n.mu.Lock()
	n.pres = append(n.pres, p)
	n.mu.Unlock()
	n.poke()
}

func (n *node) DeliverDevice(e core.DeviceEvent) {
	n.mu.Lock()
	n.devs = append(n.devs, e)
	n.mu.Unlock()
	n.poke()
}

func (n *node) DeliverAppChannels(c core.AppChannels) {
	n.mu.Lock()
	n.chans = append(n.chans, c)
	n.mu.Unlock()
	n.poke()
}

func (n *node) DeliverHeartbeat(string) {}

func (n *node) DeliverPresenceRequest(string) {}

func (n *node) DeliverNotifications(ns []core.Notification) {
	n.mu.Lock()
	n.notes = append(n.notes, ns)
	n.mu.Unlock()
	n.poke()
}

// waitNotes waits for n's first batch of notifications.
func (n *node) waitNotes(t *testing.T, within time.Duration, what string) []core.Notification {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		if len(n.notes) > 0 {
			defer n.mu.Unlock()
			return n.notes[0]
		}
		n.mu.Unlock()
		select {
		case <-n.changed:
		case <-deadline.C:
			t.Fatalf("after %v: %s did not arrive", within, what)
		}
	}
}

func (n *node) poke() {
	select {
	case n.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until ok holds of what n received, or fails the test.
func (n *node) waitFor(t *testing.T, within time.Duration, what string, ok func(statuses []core.StatusUpdate, invs []core.Invalidation) bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		done := ok(n.statuses, n.invs)
		n.mu.Unlock()
		if done {
			return
		}
		select {
		case <-n.changed:
		case <-deadline.C:
			t.Fatalf("after %v: %s did not arrive", within, what)
		}
	}
}

// busOn connects to server i alone, so that messages between two buses
// on different servers cross the cluster's routes.
func busOn(t *testing.T, c *natstest.Cluster, i int, opts ...nats.Option) *natsbus.Bus {
	t.Helper()
	nc, err := nats.Connect(c.ServerURL(i), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	b, err := natsbus.New(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestBusBetweenNodes(t *testing.T) {
	c := natstest.Start(t, 3)
	busA, busB, busC := busOn(t, c, 0), busOn(t, c, 1), busOn(t, c, 2)
	a, b, cc := newNode(), newNode(), newNode()
	busA.Subscribe(a)
	busB.Subscribe(b)
	busC.Subscribe(cc)

	t.Run("updates reach the other node in order per PUID, and apply once on their own", func(t *testing.T) {
		const app, perPUID = core.AppID(7), 100
		at := time.Unix(1_700_000_000, 0)
		var sent []core.StatusUpdate
		for i := range perPUID {
			for _, puid := range []string{"p1", "p2", "p3"} {
				u := core.StatusUpdate{PUID: puid, Status: core.Status(i % 3), At: at.Add(time.Duration(i) * time.Millisecond)}
				if u.Status != core.Offline {
					u.Message = fmt.Sprintf("%s #%d ☕", puid, i)
				}
				sent = append(sent, u)
				busA.PublishStatus(app, u)
			}
		}
		a.mu.Lock()
		local := len(a.statuses)
		a.mu.Unlock()
		if local != len(sent) {
			t.Fatalf("node A's own subscriber had %d updates when PublishStatus returned, want %d", local, len(sent))
		}
		b.waitFor(t, 10*time.Second, "every update on node B", func(s []core.StatusUpdate, _ []core.Invalidation) bool { return len(s) >= len(sent) })
		b.mu.Lock()
		got, apps := b.statuses, b.apps
		b.mu.Unlock()
		assertInOrderPerPUID(t, sent, got)
		for _, id := range apps {
			if id != app {
				t.Fatalf("node B got an update for app %d, want %d", id, app)
			}
		}
		// B's marker reaches A after A's echoes of its own updates (both
		// pass through A's server, echoes first): once A has it, any
		// echo applied would show as a duplicate.
		busB.PublishStatus(app, core.StatusUpdate{PUID: "marker", Status: core.Online, At: at})
		a.waitFor(t, 10*time.Second, "node B's marker on node A", func(s []core.StatusUpdate, _ []core.Invalidation) bool {
			return len(s) > 0 && s[len(s)-1].PUID == "marker"
		})
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.statuses) != len(sent)+1 {
			t.Fatalf("node A applied %d updates, want its own %d once and B's marker", len(a.statuses), len(sent))
		}
	})

	t.Run("an invalidation reaches every node within a second", func(t *testing.T) {
		inv := core.Invalidation{Kind: core.GrantRevoked, App: 9, User: "ann@example.com", PUID: "puid-1"}
		start := time.Now()
		if err := busC.Invalidate(context.Background(), inv); err != nil {
			t.Fatal(err)
		}
		cc.mu.Lock()
		applied := len(cc.invs) == 1 && cc.invs[0] == inv
		cc.mu.Unlock()
		if !applied {
			t.Fatalf("node C had not applied its own invalidation when Invalidate returned")
		}
		for name, n := range map[string]*node{"A": a, "B": b} {
			n.waitFor(t, time.Second-time.Since(start), "the invalidation on node "+name, func(_ []core.StatusUpdate, invs []core.Invalidation) bool {
				return len(invs) == 1 && invs[0] == inv
			})
		}
		closeApp := core.Invalidation{Kind: core.AppChanged, App: 9, Close: core.ErrnoBadKey}
		if err := busA.Invalidate(context.Background(), closeApp); err != nil {
			t.Fatal(err)
		}
		for name, n := range map[string]*node{"B": b, "C": cc} {
			n.waitFor(t, time.Second, "the key rotation on node "+name, func(_ []core.StatusUpdate, invs []core.Invalidation) bool {
				return len(invs) == 2 && invs[1] == closeApp
			})
		}
		// The marker again: C's own invalidation came back to C and was
		// dropped, so C holds exactly two.
		busA.PublishStatus(1, core.StatusUpdate{PUID: "marker2", At: time.Unix(1, 0)})
		cc.waitFor(t, 10*time.Second, "node A's marker on node C", func(s []core.StatusUpdate, _ []core.Invalidation) bool {
			return len(s) > 0 && s[len(s)-1].PUID == "marker2"
		})
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if len(cc.invs) != 2 {
			t.Fatalf("node C applied %d invalidations, want 2: %v", len(cc.invs), cc.invs)
		}
	})

	t.Run("a node's presence of a user reaches the others whole and in order", func(t *testing.T) {
		at := time.Unix(1_700_000_000, 5)
		sent := []core.NodePresence{
			{Node: "node-a", User: "ann@example.com", App: 7, PUIDs: []string{"p1", "p2"}, Presence: core.Presence{Status: core.Online, Message: "on the bus 🚌"}, At: at},
			{Node: "node-a", User: "ann@example.com", App: 7, PUIDs: []string{"p1", "p2"}, Presence: core.Presence{Status: core.Unavailable}, At: at.Add(time.Second)},
			{Node: "node-a", User: "ann@example.com", App: 7, PUIDs: nil, Presence: core.Presence{Status: core.Offline}, At: at.Add(2 * time.Second)},
		}
		for _, p := range sent {
			busA.PublishPresence(p)
		}
		cc.waitFor(t, 10*time.Second, "three presences on node C", func([]core.StatusUpdate, []core.Invalidation) bool {
			return len(cc.pres) >= len(sent) // waitFor holds cc.mu
		})
		cc.mu.Lock()
		defer cc.mu.Unlock()
		for i, w := range sent {
			g := cc.pres[i]
			if g.Node != w.Node || g.User != w.User || g.App != w.App || g.Presence != w.Presence || !g.At.Equal(w.At) ||
				strings.Join(g.PUIDs, ",") != strings.Join(w.PUIDs, ",") {
				t.Fatalf("presence %d on node C: %+v, want %+v", i, g, w)
			}
		}
	})

	t.Run("a device handover reaches the other nodes whole", func(t *testing.T) {
		sent := core.DeviceEvent{Kind: core.DeviceHandover, Node: "node-b", To: "node-a", User: "ann@example.com", DeviceID: "phone",
			SessionID: "5f0c-new", At: time.Unix(1_700_000_000, 9), Current: core.Presence{Status: core.Online, Message: "here"},
			Apps: map[core.AppID]core.Presence{7: {Status: core.Online, Message: "here"}, 8: {Status: core.Unavailable}}}
		busB.PublishDevice(sent)
		a.waitFor(t, 10*time.Second, "the handover on node A", func([]core.StatusUpdate, []core.Invalidation) bool {
			return len(a.devs) > 0 // waitFor holds a.mu
		})
		a.mu.Lock()
		defer a.mu.Unlock()
		g := a.devs[0]
		if g.Kind != sent.Kind || g.Node != sent.Node || g.To != sent.To || g.User != sent.User || g.DeviceID != sent.DeviceID ||
			g.SessionID != sent.SessionID || !g.At.Equal(sent.At) || g.Current != sent.Current || !maps.Equal(g.Apps, sent.Apps) {
			t.Fatalf("node A got %+v, want %+v", g, sent)
		}
	})

	t.Run("which apps a node holds channels of reaches the other nodes, in order", func(t *testing.T) {
		sent := []core.AppChannels{{Node: "node-b", App: 7, Held: true}, {Node: "node-b", App: 1 << 40, Held: true}, {Node: "node-b", App: 7}, {Node: "node-b", Ask: true}}
		for _, c := range sent {
			busB.PublishAppChannels(c)
		}
		cc.waitFor(t, 10*time.Second, "four app-channel events on node C", func([]core.StatusUpdate, []core.Invalidation) bool {
			return len(cc.chans) >= len(sent) // waitFor holds cc.mu
		})
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if fmt.Sprint(cc.chans) != fmt.Sprint(sent) {
			t.Fatalf("node C got %+v, want %+v", cc.chans, sent)
		}
	})

	t.Run("a stored batch reaches every node whole", func(t *testing.T) {
		created := time.Unix(1_700_000_000, 123)
		batch := []core.Notification{
			{ID: "0000000000000001abc", AppID: 7, PUID: "p1", UserID: "ann@example.com", Message: "Bob: a beer? 🍺", Action: "https://beer.example/chat/1", CreatedAt: created, ExpiresAt: created.Add(time.Minute)},
			{ID: "0000000000000002def", AppID: 7, PUID: "p2", UserID: "bob@example.com", Message: "Ann waved", CreatedAt: created, ExpiresAt: created.Add(time.Hour)},
		}
		busB.PublishNotifications(batch)
		for name, n := range map[string]*node{"A": a, "C": cc} {
			got := n.waitNotes(t, 10*time.Second, "the batch on node "+name)
			if len(got) != len(batch) {
				t.Fatalf("node %s got %d notifications, want %d", name, len(got), len(batch))
			}
			for i := range batch {
				w, g := batch[i], got[i]
				if g.ID != w.ID || g.AppID != w.AppID || g.PUID != w.PUID || g.UserID != w.UserID || g.Message != w.Message ||
					g.Action != w.Action || !g.CreatedAt.Equal(w.CreatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
					t.Fatalf("node %s: notification %d is %+v, want %+v", name, i, g, w)
				}
			}
		}
		b.mu.Lock()
		own := len(b.notes)
		b.mu.Unlock()
		if own != 1 {
			t.Fatalf("node B delivered its own batch %d times, want once", own)
		}
	})

	t.Run("a malformed message is dropped and the bus goes on", func(t *testing.T) {
		nc := c.Connect()
		if err := nc.Publish("presence.bus.s.7", []byte("not a bus message")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		busA.PublishStatus(7, core.StatusUpdate{PUID: "after-garbage", Status: core.Online, At: time.Unix(2, 0)})
		b.waitFor(t, 10*time.Second, "the update after the garbage", func(s []core.StatusUpdate, _ []core.Invalidation) bool {
			return len(s) > 0 && s[len(s)-1].PUID == "after-garbage"
		})
		if got := busB.Stats().Malformed; got != 1 {
			t.Fatalf("node B counted %d malformed messages, want 1", got)
		}
		if err := busB.Ping(context.Background()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})

	// Last: it stops a server.
	t.Run("a bus that lost NATS says so, and an invalidation fails", func(t *testing.T) {
		lone := busOn(t, c, 2, nats.NoReconnect())
		if err := lone.Ping(context.Background()); err != nil {
			t.Fatalf("ping with the server up: %v", err)
		}
		c.Kill(2)
		deadline := time.Now().Add(10 * time.Second)
		for lone.Ping(context.Background()) == nil {
			if time.Now().After(deadline) {
				t.Fatal("ping still answers 10s after the bus's NATS server stopped")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := lone.Invalidate(context.Background(), core.Invalidation{Kind: core.AppChanged, App: 1}); err == nil {
			t.Fatal("an invalidation with NATS gone returned nil: the other nodes would never hear it")
		}
	})
}

// assertInOrderPerPUID checks that got is sent, each PUID's updates in
// the order sent, equal field for field.
func assertInOrderPerPUID(t *testing.T, sent, got []core.StatusUpdate) {
	t.Helper()
	if len(got) != len(sent) {
		t.Fatalf("got %d updates, want %d", len(got), len(sent))
	}
	want := map[string][]core.StatusUpdate{}
	for _, u := range sent {
		want[u.PUID] = append(want[u.PUID], u)
	}
	next := map[string]int{}
	for _, u := range got {
		i := next[u.PUID]
		if i >= len(want[u.PUID]) {
			t.Fatalf("unexpected update %v", u)
		}
		w := want[u.PUID][i]
		if u.PUID != w.PUID || u.Status != w.Status || u.Message != w.Message || !u.At.Equal(w.At) {
			t.Fatalf("update %d of %s: got %v, want %v", i, u.PUID, u, w)
		}
		next[u.PUID] = i + 1
	}
}
