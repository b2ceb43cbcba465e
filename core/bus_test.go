package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
	"github.com/presence-service/presence/internal/routertest"
)

// twoNodes is two routers on one store and one LocalBus, as two nodes of a
// cluster share their services: what one router does, the other hears.
func twoNodes(t *testing.T) (a, b *core.Router, app core.AppID) {
	t.Helper()
	n := newNodes(t, core.Options{})
	a, b = n.start(), n.start()
	return a, b, activeApp(t, a)
}

// nodes are services shared by routers, one store and one LocalBus, as
// the nodes of a cluster share theirs: what one router does, the others
// hear.
type nodes struct {
	t    *testing.T
	deps core.Deps
	opts core.Options
}

// newNodes makes the shared services; opts are every router's (a node key
// is made when opts has none).
func newNodes(t *testing.T, opts core.Options) *nodes {
	deps := memstore.New().Deps()
	deps.Bus = core.NewLocalBus()
	if opts.Keys == nil {
		opts.Keys, _ = core.NewKeyring(make([]byte, 32))
	}
	return &nodes{t: t, deps: deps, opts: opts}
}

// start starts one more router on the shared services.
func (n *nodes) start() *core.Router {
	n.t.Helper()
	r := core.NewRouter(n.deps, n.opts)
	if err := r.Start(context.Background()); err != nil {
		n.t.Fatal(err)
	}
	return r
}

// activeApp registers, verifies and activates an app through r.
func activeApp(t *testing.T, r *core.Router) core.AppID { return routertest.ActiveApp(t, r) }

func TestBusCarriesStatusesBetweenRouters(t *testing.T) {
	ctx := context.Background()
	a, b, app := twoNodes(t)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(ctx, ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	channel := newAppSink()
	detach, err := b.AttachApp(ctx, app, channel, core.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer detach()
	s, ignored, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil || len(ignored) != 0 {
		t.Fatalf("connect: %v, ignored %v", err, ignored)
	}
	if err := a.SetStatus(s, core.Presence{Status: core.Online, Message: "here"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "here")

	// A revoke on the device's node ends with a last offline on the
	// channel's node, and nothing after it for that PUID.
	if err := a.Revoke(ctx, ann.Subject, g.PUID); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Offline, "")
	if err := a.SetStatus(s, core.Presence{Status: core.Unavailable}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-channel.updates:
		t.Fatalf("an update for a revoked PUID reached the app: %+v", u)
	default:
	}
}

func TestBusInvalidatesAppsOnEveryRouter(t *testing.T) {
	ctx := context.Background()
	a, b, app := twoNodes(t)
	if _, err := b.App(ctx, app); err != nil { // b caches the app
		t.Fatal(err)
	}
	channel := newAppSink()
	if _, err := b.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.RotateKey(ctx, app); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-channel.closed:
		if e != core.ErrnoBadKey {
			t.Fatalf("channel on the other router closed with %d, want 40", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a key rotation on one router did not end the app's channel on the other")
	}
	if _, err := a.DeactivateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	// b's cached copy went with the invalidation: it sees the app inactive
	// at once, not after its cache expires.
	if _, err := b.AttachApp(ctx, app, newAppSink(), core.AttachOptions{}); core.ErrnoOf(err) != core.ErrnoAppInactive {
		t.Fatalf("attach on the other router after deactivation: %v, want errno 41", err)
	}
}

func TestHealthNamesTheFailingPart(t *testing.T) {
	store := memstore.New()
	r := core.NewRouter(store.Deps(), core.Options{})
	if err := r.Health(context.Background()); err != nil {
		t.Fatalf("health of an open store: %v", err)
	}
	store.Close()
	err := r.Health(context.Background())
	var he *core.HealthError
	if !errors.As(err, &he) || he.Part != "registry" || !errors.Is(err, memstore.ErrClosed) {
		t.Fatalf("health of a closed store: %v, want a HealthError naming the registry", err)
	}
}

// A node whose bus link dropped may have missed invalidations: CachesLost
// makes it read apps and grants again instead of trusting its cache.
func TestCachesLostRereadsTheRegistry(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	bus := core.NewLocalBus()
	deps := store.Deps()
	deps.Bus = bus
	keys, _ := core.NewKeyring(make([]byte, 32))
	r := core.NewRouter(deps, core.Options{Keys: keys})
	reg, err := r.RegisterApp(ctx, "dev@beer.example", "beer.example", "Beer", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.App(ctx, reg.ID); err != nil { // cached now
		t.Fatal(err)
	}
	// A change this node never heard of, as if its invalidation was lost.
	changed, err := deps.Registry.App(ctx, reg.ID)
	if err != nil {
		t.Fatal(err)
	}
	changed.Name = "Stout"
	if err := deps.Registry.UpdateApp(ctx, changed); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.App(ctx, reg.ID); a.Name != "Beer" {
		t.Fatalf("the router read the registry again without being told (%q): the test shows nothing", a.Name)
	}
	if err := bus.Invalidate(ctx, core.Invalidation{Kind: core.CachesLost}); err != nil {
		t.Fatal(err)
	}
	if a, _ := r.App(ctx, reg.ID); a.Name != "Stout" {
		t.Fatalf("after CachesLost the router still shows %q, want the registry's %q", a.Name, "Stout")
	}
}

// A node that lost its link ends its devices and channels with -4 and
// refuses new ones until the link is back (PROTOCOL §10).
func TestLinkLostRefusesUntilRestored(t *testing.T) {
	ctx := context.Background()
	a, _, app := twoNodes(t)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	if _, err := a.Grant(ctx, ann, app, "Ann"); err != nil {
		t.Fatal(err)
	}
	device := newDeviceSink()
	if _, _, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: device}); err != nil {
		t.Fatal(err)
	}
	channel := newAppSink()
	if _, err := a.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	a.LinkLost()
	select { // Close is called before LinkLost returns
	case e := <-device.closed:
		if e != core.ErrnoShuttingDown {
			t.Fatalf("device closed with %d, want -4", e)
		}
	default:
		t.Fatal("the device session stayed open after the link was lost")
	}
	select {
	case e := <-channel.closed:
		if e != core.ErrnoShuttingDown {
			t.Fatalf("app channel closed with %d, want -4", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the app channel stayed open after the link was lost")
	}
	if _, _, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()}); core.ErrnoOf(err) != core.ErrnoShuttingDown {
		t.Fatalf("connect while the link is down: %v, want errno -4", err)
	}
	if _, err := a.AttachApp(ctx, app, newAppSink(), core.AttachOptions{}); core.ErrnoOf(err) != core.ErrnoShuttingDown {
		t.Fatalf("attach while the link is down: %v, want errno -4", err)
	}
	if n := a.Stats().Devices; n != 0 {
		t.Fatalf("%d devices counted while the link is down, want 0", n)
	}
	a.LinkRestored()
	if _, ignored, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()}); err != nil || len(ignored) != 0 {
		t.Fatalf("connect after the link is back: %v (ignored %v)", err, ignored)
	}
}

// A user's status is aggregated over their devices on every node: a
// device going offline on one node does not hide a device online on the
// other (PROTOCOL §10).
func TestStatusIsAggregatedAcrossRouters(t *testing.T) {
	ctx := context.Background()
	a, b, app := twoNodes(t)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(ctx, ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	channel := newAppSink()
	if _, err := b.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	connect := func(r *core.Router, device string) *core.Session {
		s, _, err := r.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: device, AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	phone, laptop := connect(a, "phone"), connect(b, "laptop")
	if err := a.SetStatus(phone, core.Presence{Status: core.Online, Message: "phone"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "phone")
	if err := b.SetStatus(laptop, core.Presence{Status: core.Online, Message: "desk"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "desk") // the most recent of equals
	if err := b.SetStatus(laptop, core.Presence{Status: core.Offline}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "phone") // not offline: the phone on the other router shows online
	b.Disconnect(laptop)
	if err := a.SetStatus(phone, core.Presence{Status: core.Unavailable}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Unavailable, "") // nothing came between: the laptop's drop changed nothing
	if err := a.SetStatus(phone, core.Presence{Status: core.Offline}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Offline, "")
	select {
	case u := <-channel.updates:
		t.Fatalf("an update after the last device went offline: %+v", u)
	default:
	}
}

// One session per (user, device) across routers: a newer connect on one
// ends the older on the other with -2, and the new one takes over what
// the old showed, so the app sees no offline between them.
func TestNewerConnectOnAnotherRouterReplacesTheSession(t *testing.T) {
	ctx := context.Background()
	a, b, app := twoNodes(t)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(ctx, ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	channel := newAppSink()
	if _, err := b.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	oldSink := newDeviceSink()
	old, _, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: oldSink})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetStatus(old, core.Presence{Status: core.Online, Message: "on the train"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "on the train")

	s, _, err := b.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-oldSink.closed:
		if e != core.ErrnoReplaced {
			t.Fatalf("the older session closed with %d, want -2", e)
		}
	default:
		t.Fatal("the older session on the other router is still open")
	}
	if err := a.SetStatus(old, core.Presence{Status: core.Unavailable}, nil); core.ErrnoOf(err) != core.ErrnoUnknownSession {
		t.Fatalf("a status on the replaced session: %v, want errno %d", err, core.ErrnoUnknownSession)
	}
	if n := a.Stats().Devices + b.Stats().Devices; n != 1 {
		t.Fatalf("%d sessions of ann's phone across the routers, want 1", n)
	}
	if err := b.SetStatus(s, core.Presence{Status: core.Unavailable, Message: "off the train"}, nil); err != nil {
		t.Fatal(err)
	}
	// The next update is the new session's own: no offline came between.
	channel.expect(t, g.PUID, core.Unavailable, "off the train")
}

// A node that stops (its heartbeats stop) is taken for dead within three
// heartbeats; after the disconnect grace, apps are told offline for its
// users whose devices did not come back elsewhere, and nothing for those
// who did.
func TestDeadNodesUsersGoOfflineUnlessBackElsewhere(t *testing.T) {
	ctx := context.Background()
	n := newNodes(t, core.Options{HeartbeatInterval: 20 * time.Millisecond, DisconnectGrace: 300 * time.Millisecond})
	a, b := n.start(), n.start()
	t.Cleanup(func() { b.Shutdown(ctx) })
	app := activeApp(t, a)
	channel := newAppSink()
	if _, err := b.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	online := func(r *core.Router, email, msg string) string {
		who := core.Identity{Subject: email, Email: email}
		g, err := r.Grant(ctx, who, app, email)
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := r.Connect(ctx, core.ConnectRequest{Identity: who, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.SetStatus(s, core.Presence{Status: core.Online, Message: msg}, nil); err != nil {
			t.Fatal(err)
		}
		channel.expect(t, g.PUID, core.Online, msg)
		return g.PUID
	}
	ann := online(a, "ann@example.com", "on node A") // b has heard of a now: its NodePresences count as heartbeats
	online(a, "bob@example.com", "on node A")

	stopped := time.Now()
	if err := a.Shutdown(ctx); err != nil { // its heartbeats stop, and its part of the bus with them
		t.Fatal(err)
	}
	online(b, "bob@example.com", "back on node B") // within the grace: bob is back elsewhere
	channel.expect(t, ann, core.Offline, "")
	if waited := time.Since(stopped); waited < n.opts.DisconnectGrace {
		t.Fatalf("ann offline %v after her node stopped, before the %v grace", waited, n.opts.DisconnectGrace)
	}
	select {
	case u := <-channel.updates:
		t.Fatalf("an update after the dead node was forgotten: %+v (bob is back on node B: nothing for him)", u)
	case <-time.After(3 * n.opts.HeartbeatInterval):
	}
}

// The handover reaches every node's view, the old session's node
// included: a channel there sees no offline either.
func TestHandoverLeavesNoOfflineOnTheOldNode(t *testing.T) {
	ctx := context.Background()
	a, b, app := twoNodes(t)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(ctx, ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	channel := newAppSink()
	if _, err := a.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil { // on the old session's node
		t.Fatal(err)
	}
	old, _, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetStatus(old, core.Presence{Status: core.Online, Message: "on the train"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Online, "on the train")
	s, _, err := b.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetStatus(s, core.Presence{Status: core.Unavailable, Message: "off the train"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, g.PUID, core.Unavailable, "off the train")
}

// A node that starts asks the others what their devices show: its probes
// answer at once for users who came online before it started.
func TestStartingRouterLearnsWhatOthersShow(t *testing.T) {
	ctx := context.Background()
	n := newNodes(t, core.Options{})
	a := n.start()
	app := activeApp(t, a)
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	g, err := a.Grant(ctx, ann, app, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := a.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.SetStatus(s, core.Presence{Status: core.Unavailable, Message: "lunch"}, nil); err != nil {
		t.Fatal(err)
	}

	late := n.start()
	got, err := late.Probe(ctx, app, []string{g.PUID})
	if err != nil {
		t.Fatal(err)
	}
	if !got[0].Known || got[0].Status != core.Unavailable || got[0].Message != "lunch" {
		t.Fatalf("a probe on the router that started later: %+v, want unavailable \"lunch\"", got[0])
	}
}
