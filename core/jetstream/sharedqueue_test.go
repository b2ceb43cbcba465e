package jetstream_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
	"github.com/presence-service/presence/core/memstore"
	"github.com/presence-service/presence/core/natsbus"
	"github.com/presence-service/presence/internal/routertest"
)

// clusterNode is a router as a cluster node runs it: its own NATS
// connection to one of the servers, carrying its bus and its side of the
// status stream.
type clusterNode struct {
	r        *core.Router
	nc       *nats.Conn
	statuses *jetstream.Statuses
}

// kill ends the node's link as SIGKILL would: no Shutdown, no goodbye;
// what it published before is on its way.
func (n *clusterNode) kill(t *testing.T) {
	t.Helper()
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n.nc.Close()
}

// startClusterNodes starts one router per NATS server of e, sharing reg
// (PostgreSQL's stand-in: the registry has tests of its own) and the
// status stream.
func startClusterNodes(t *testing.T, e *env, reg *memstore.Store, opts core.Options) []*clusterNode {
	t.Helper()
	var out []*clusterNode
	for i := range 3 {
		nc, err := nats.Connect(e.c.ServerURL(i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		bus, err := natsbus.New(nc, nil)
		if err != nil {
			t.Fatal(err)
		}
		js, err := natsjs.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		statuses, err := jetstream.OpenStatuses(ctxT(t), js, reg, jetstream.StatusConfig{Replicas: 3, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		deps := reg.Deps()
		deps.Statuses, deps.Bus = statuses, bus
		r := core.NewRouter(deps, opts)
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Shutdown(context.Background()) })
		out = append(out, &clusterNode{r: r, nc: nc, statuses: statuses})
	}
	return out
}

// channel records what an app channel is sent.
type channel chan core.StatusUpdate

func (c channel) SendStatus(u core.StatusUpdate) { c <- u }
func (c channel) Close(core.Errno)               {}

// device is a device session's sink; these tests read nothing from it.
type device struct{}

func (device) SendNotifications([]core.Notification) {}
func (device) Close(core.Errno)                      {}

// attach opens a channel of app on n.
func attach(t *testing.T, n *clusterNode, app core.AppID) (channel, func()) {
	t.Helper()
	c := make(channel, 100)
	detach, err := n.r.AttachApp(ctxT(t), app, c, core.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c, detach
}

// expectUpdates reads want's count of updates from c and then checks that
// no other arrives within quiet.
func expectUpdates(t *testing.T, c channel, quiet time.Duration, want ...string) {
	t.Helper()
	var got []string
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case u := <-c:
			got = append(got, fmt.Sprintf("%s=%s %q", u.PUID, u.Status, u.Message))
		case <-deadline:
			t.Fatalf("the channel got %q, want %q", got, want)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("the channel got %q, want %q", got, want)
	}
	select {
	case u := <-c:
		t.Fatalf("after %q the channel got %s=%s %q too", want, u.PUID, u.Status, u.Message)
	case <-time.After(quiet):
	}
}

// The app status queue of a cluster lives in JetStream: updates routed on
// several nodes while the app has no channel anywhere wait there, each
// PUID's newest alone, for the first channel to attach, on any node; it
// gets them once, without those past apps.status_queue_ttl, and a second
// channel gets none again. They survive the node that routed them, killed
// without a shutdown, and a channel attaching while the node that held
// the app's only channel is dead gets what was routed meanwhile (and
// perhaps current statuses again, never older ones).
func TestClusterStatusQueue(t *testing.T) {
	e := newEnv(t, 0)
	reg := memstore.New()
	clock := routertest.NewClock(time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC))
	keys, _ := core.NewKeyring(make([]byte, 32))
	nodes := startClusterNodes(t, e, reg, core.Options{Keys: keys, Now: clock.Now, StatusQueueTTL: time.Hour,
		HeartbeatInterval: 100 * time.Millisecond,
		DisconnectGrace:   time.Minute, // the killed nodes' users stay shown throughout
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	ctx := ctxT(t)

	app := routertest.ActiveApp(t, a.r)
	// A channel on B while the users come: then it goes, and the app has
	// no channel anywhere.
	first, detach := attach(t, b, app)
	puid := map[string]string{}
	sessions := map[string]*core.Session{}
	for i, name := range []string{"ann", "bob", "carol"} {
		who := core.Identity{Subject: name + "@example.com", Email: name + "@example.com"}
		g, err := a.r.Grant(ctx, who, app, name)
		if err != nil {
			t.Fatal(err)
		}
		puid[name] = g.PUID
		on := nodes[i]
		s, _, err := on.r.Connect(ctx, core.ConnectRequest{Identity: who, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: device{}})
		if err != nil {
			t.Fatal(err)
		}
		sessions[name] = s
	}
	set := func(n *clusterNode, name string, st core.Status, msg string) {
		t.Helper()
		if err := n.r.SetStatus(sessions[name], core.Presence{Status: st, Message: msg}, nil); err != nil {
			t.Fatal(err)
		}
	}
	line := func(name string, st core.Status, msg string) string {
		return fmt.Sprintf("%s=%s %q", puid[name], st, msg)
	}
	// waitStored waits until the stream holds want (what a take by b
	// would return), reading without taking.
	waitStored := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			all, err := b.statuses.AllWaiting(ctx, clock.Now().Add(-time.Hour))
			var got []string
			for _, u := range all[app] {
				got = append(got, fmt.Sprintf("%s=%s %q", u.PUID, u.Status, u.Message))
			}
			slices.Sort(got)
			slices.Sort(want)
			if err == nil && slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the status stream holds %q (%v), want %q (all: %v; since %v)", got, err, want, all, clock.Now().Add(-time.Hour))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Every node has applied the grants (a grant tells the app the
	// user's status again, at the time it is applied) once it has ann's
	// status, published after them by the same node.
	set(a, "ann", core.Online, "hello")
	for _, n := range nodes {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			res, err := n.r.Probe(ctx, app, []string{puid["ann"]})
			if err == nil && res[0].Message == "hello" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a node does not show ann's status: %+v, %v", res, err)
			}
		}
	}
	expectUpdates(t, first, 0, line("ann", core.Online, "hello"))
	detach()

	set(c, "carol", core.Online, "long ago")
	clock.Add(time.Hour + time.Second) // carol's update is past the TTL
	set(a, "ann", core.Online, "one")
	set(b, "bob", core.Online, "bob here")
	set(a, "ann", core.Unavailable, "two")
	waitStored(line("ann", core.Unavailable, "two"), line("bob", core.Online, "bob here"))

	// C, where none of them was routed, gets each PUID's newest, once.
	onC, detachC := attach(t, c, app)
	expectUpdates(t, onC, 500*time.Millisecond, line("ann", core.Unavailable, "two"), line("bob", core.Online, "bob here"))
	// A second channel, on A, gets nothing again; nor does a channel on B
	// once both have gone.
	onA, detachA := attach(t, a, app)
	expectUpdates(t, onA, 500*time.Millisecond)
	detachA()
	detachC()
	again, detachAgain := attach(t, b, app)
	expectUpdates(t, again, 500*time.Millisecond)
	detachAgain()

	// Routed on A, which dies without a shutdown: the update waits for
	// the next channel, on B.
	set(a, "ann", core.Online, "three")
	a.kill(t)
	onB, detachB := attach(t, b, app)
	expectUpdates(t, onB, 500*time.Millisecond, line("ann", core.Online, "three"))

	// B holds the app's only channel and dies: an update routed on C
	// meanwhile reaches the app's next channel, on C. What else it gets
	// can only be current statuses again (a holder that dies leaves no
	// word of what it sent), never an older one.
	b.kill(t)
	detachB() // the channel of a dead node: nobody hears it go
	set(c, "carol", core.Unavailable, "after B")
	onC, _ = attach(t, c, app)
	current := []string{line("ann", core.Online, "three"), line("bob", core.Online, "bob here")}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case u := <-onC:
			got := fmt.Sprintf("%s=%s %q", u.PUID, u.Status, u.Message)
			if got == line("carol", core.Unavailable, "after B") {
				return
			}
			if !slices.Contains(current, got) {
				t.Fatalf("the channel on C got %s, not a current status", got)
			}
		case <-deadline:
			t.Fatal("the update routed while the holder was dead did not reach the channel on C")
		}
	}
}
