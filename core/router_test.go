package core_test

import (
	"context"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
	"github.com/presence-service/presence/internal/routertest"
)

// appSink records what an app channel is told.
type appSink struct {
	updates chan core.StatusUpdate
	closed  chan core.Errno
}

func newAppSink() *appSink {
	return &appSink{updates: make(chan core.StatusUpdate, 1000), closed: make(chan core.Errno, 1)}
}

func (s *appSink) SendStatus(u core.StatusUpdate) { s.updates <- u }
func (s *appSink) Close(e core.Errno)             { s.closed <- e }

// next returns the next update, failing the test if none comes.
func (s *appSink) next(t *testing.T) core.StatusUpdate {
	t.Helper()
	select {
	case u := <-s.updates:
		return u
	case <-time.After(5 * time.Second):
		t.Fatal("no status update arrived")
	}
	return core.StatusUpdate{}
}

func (s *appSink) expect(t *testing.T, puid string, st core.Status, msg string) {
	t.Helper()
	u := s.next(t)
	if u.PUID != puid || u.Status != st || u.Message != msg {
		t.Fatalf("got %s=%s %q, want %s=%s %q", u.PUID, u.Status, u.Message, puid, st, msg)
	}
}

// deviceSink records what a device is told.
type deviceSink struct {
	notes  chan core.Notification
	closed chan core.Errno
}

func newDeviceSink() *deviceSink {
	return &deviceSink{notes: make(chan core.Notification, 1000), closed: make(chan core.Errno, 1)}
}

func (d *deviceSink) SendNotifications(ns []core.Notification) {
	for _, n := range ns {
		d.notes <- n
	}
}
func (d *deviceSink) Close(e core.Errno) { d.closed <- e }

// drain returns what the device was pushed so far. The router pushes
// before its call returns, so nothing is in flight once a call has.
func (d *deviceSink) drain() []core.Notification {
	var out []core.Notification
	for {
		select {
		case n := <-d.notes:
			out = append(out, n)
		default:
			return out
		}
	}
}

type fixture struct {
	t      *testing.T
	db     *memstore.Store
	router *core.Router
	clock  *routertest.Clock
	app    core.AppID
}

func newFixture(t *testing.T, grace time.Duration) *fixture {
	t.Helper()
	db := memstore.New()
	keys, err := core.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	clk := routertest.NewClock(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC))
	r := core.NewRouter(db.Deps(), core.Options{DisconnectGrace: grace, StatusQueueTTL: time.Hour, Keys: keys, Now: clk.Now})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, db: db, router: r, clock: clk}
	f.app = f.activeApp("beer.example")
	return f
}

func (f *fixture) activeApp(domain string) core.AppID {
	ctx := context.Background()
	a, err := f.router.RegisterApp(ctx, "dev@"+domain, domain, "Beer", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.router.MarkVerified(ctx, a.ID); err != nil {
		f.t.Fatal(err)
	}
	if _, _, err := f.router.ActivateApp(ctx, a.ID); err != nil {
		f.t.Fatal(err)
	}
	return a.ID
}

func (f *fixture) grant(email string, app core.AppID) string {
	g, err := f.router.Grant(context.Background(), core.Identity{Subject: email, Email: email}, app, email)
	if err != nil {
		f.t.Fatal(err)
	}
	return g.PUID
}

func (f *fixture) connect(email, device string, apps ...core.AppID) (*core.Session, *deviceSink) {
	f.t.Helper()
	sink := newDeviceSink()
	s, ignored, err := f.router.Connect(context.Background(), core.ConnectRequest{
		Identity: core.Identity{Subject: email, Email: email}, DeviceID: device, AppIDs: apps, Sink: sink,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(ignored) != 0 {
		f.t.Fatalf("ignored %v", ignored)
	}
	return s, sink
}

func (f *fixture) attach(app core.AppID) *appSink {
	f.t.Helper()
	sink := newAppSink()
	detach, err := f.router.AttachApp(context.Background(), app, sink, core.AttachOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(detach)
	return sink
}

func (f *fixture) status(s *core.Session, st core.Status, msg string, apps ...core.AppID) {
	f.t.Helper()
	if err := f.router.SetStatus(s, core.Presence{Status: st, Message: msg}, apps); err != nil {
		f.t.Fatal(err)
	}
}

func TestAggregationAcrossDevices(t *testing.T) {
	f := newFixture(t, 0)
	puid := f.grant("ann@example.com", f.app)
	app := f.attach(f.app)
	phone, _ := f.connect("ann@example.com", "phone", f.app)
	laptop, _ := f.connect("ann@example.com", "laptop", f.app)

	f.status(phone, core.Online, "on the bus")
	app.expect(t, puid, core.Online, "on the bus")
	f.status(laptop, core.Offline, "")     // phone online + laptop offline = online: nothing to tell
	f.status(laptop, core.Unavailable, "") // still online thanks to the phone
	f.status(phone, core.Offline, "")      // now the laptop's away is the best
	app.expect(t, puid, core.Unavailable, "")
	f.status(laptop, core.Offline, "")
	app.expect(t, puid, core.Offline, "")
}

func TestStatusNarrowedToSomeApps(t *testing.T) {
	f := newFixture(t, 0)
	other := f.activeApp("game.example")
	p1, p2 := f.grant("ann@example.com", f.app), f.grant("ann@example.com", other)
	a1, a2 := f.attach(f.app), f.attach(other)
	phone, _ := f.connect("ann@example.com", "phone", f.app, other)

	f.status(phone, core.Online, "")
	a1.expect(t, p1, core.Online, "")
	a2.expect(t, p2, core.Online, "")
	f.status(phone, core.Unavailable, "in a meeting", other)
	a2.expect(t, p2, core.Unavailable, "in a meeting")
	f.status(phone, core.Offline, "") // the marker: a1's next update must be this one
	a1.expect(t, p1, core.Offline, "")
}

func TestVisibilityRemovesAndAdds(t *testing.T) {
	f := newFixture(t, 0)
	other := f.activeApp("game.example")
	p1, p2 := f.grant("ann@example.com", f.app), f.grant("ann@example.com", other)
	a1, a2 := f.attach(f.app), f.attach(other)
	phone, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(phone, core.Online, "hi")
	a1.expect(t, p1, core.Online, "hi")

	ignored, err := f.router.SetVisibility(context.Background(), phone, []core.AppID{other, 9999})
	if err != nil {
		t.Fatal(err)
	}
	if len(ignored) != 1 || ignored[0] != 9999 {
		t.Fatalf("ignored = %v, want [9999]", ignored)
	}
	a1.expect(t, p1, core.Offline, "")
	a2.expect(t, p2, core.Online, "hi")
}

func TestDisconnectGrace(t *testing.T) {
	f := newFixture(t, 100*time.Millisecond)
	puid := f.grant("ann@example.com", f.app)
	app := f.attach(f.app)
	phone, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(phone, core.Online, "")
	app.expect(t, puid, core.Online, "")

	// A quick reconnect (a network hand-over) tells the app nothing.
	f.router.Disconnect(phone)
	phone2, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(phone2, core.Online, "")          // same as before: no change
	f.status(phone2, core.Online, "marker")    // the next thing the app sees
	app.expect(t, puid, core.Online, "marker") // no offline came before it

	// A real drop tells offline after the grace.
	start := time.Now()
	f.router.Disconnect(phone2)
	app.expect(t, puid, core.Offline, "")
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("offline after %v, before the 100ms grace", waited)
	}
}

func TestReplacedSessionGetsErrnoMinus2(t *testing.T) {
	f := newFixture(t, time.Minute)
	puid := f.grant("ann@example.com", f.app)
	app := f.attach(f.app)
	old, oldSink := f.connect("ann@example.com", "phone", f.app)
	f.status(old, core.Online, "")
	app.expect(t, puid, core.Online, "")
	fresh, _ := f.connect("ann@example.com", "phone", f.app)
	select {
	case e := <-oldSink.closed:
		if e != core.ErrnoReplaced {
			t.Fatalf("old session closed with %d, want -2", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("old session not closed")
	}
	if err := f.router.SetStatus(old, core.Presence{Status: core.Offline}, nil); core.ErrnoOf(err) != core.ErrnoUnknownSession {
		t.Fatalf("status on replaced session: %v, want errno -1", err)
	}
	f.router.Disconnect(old) // the old socket ends: must not touch the new session
	f.status(fresh, core.Unavailable, "")
	app.expect(t, puid, core.Unavailable, "")
}

func TestWaitingQueueCoalescesAndExpires(t *testing.T) {
	f := newFixture(t, 0)
	ann, bob := f.grant("ann@example.com", f.app), f.grant("bob@example.com", f.app)
	a, _ := f.connect("ann@example.com", "phone", f.app)
	b, _ := f.connect("bob@example.com", "phone", f.app)
	f.status(b, core.Online, "old news") // will be older than the TTL
	f.clock.Add(2 * time.Hour)
	f.status(a, core.Online, "")
	f.status(a, core.Unavailable, "")
	f.status(a, core.Online, "back") // only this one waits for ann

	app := f.attach(f.app)
	app.expect(t, ann, core.Online, "back")
	f.status(b, core.Unavailable, "live") // the next update is live: bob's old one was dropped
	app.expect(t, bob, core.Unavailable, "live")
}

func TestWaitingQueueSurvivesRestart(t *testing.T) {
	f := newFixture(t, 0)
	puid := f.grant("ann@example.com", f.app)
	s, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(s, core.Online, "before restart")
	if err := f.router.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r2 := core.NewRouter(f.db.Deps(), core.Options{Now: f.clock.Now})
	if err := r2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	app := newAppSink()
	if _, err := r2.AttachApp(context.Background(), f.app, app, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	app.expect(t, puid, core.Online, "before restart")
}

func TestRevokeSendsLastOffline(t *testing.T) {
	f := newFixture(t, 0)
	puid := f.grant("ann@example.com", f.app)
	app := f.attach(f.app)
	s, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(s, core.Online, "")
	app.expect(t, puid, core.Online, "")
	if err := f.router.Revoke(context.Background(), "bob@example.com", puid); err == nil {
		t.Fatal("another user revoked ann's grant")
	}
	if err := f.router.Revoke(context.Background(), "ann@example.com", puid); err != nil {
		t.Fatal(err)
	}
	app.expect(t, puid, core.Offline, "")
	res, err := f.router.Probe(context.Background(), f.app, []string{puid})
	if err != nil || res[0].Known {
		t.Fatalf("probe after revoke: %+v, %v; want unknown", res, err)
	}
}

func TestProbeIsolatesApps(t *testing.T) {
	f := newFixture(t, 0)
	other := f.activeApp("game.example")
	mine := f.grant("ann@example.com", f.app)
	theirs := f.grant("ann@example.com", other)
	s, _ := f.connect("ann@example.com", "phone", f.app, other)
	f.status(s, core.Online, "")
	res, err := f.router.Probe(context.Background(), f.app, []string{mine, theirs, "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Known || res[0].Status != core.Online {
		t.Errorf("own PUID: %+v", res[0])
	}
	for _, r := range res[1:] {
		if r.Known || r.Status != core.Offline {
			t.Errorf("foreign or unknown PUID %s: %+v, want unknown offline", r.PUID, r)
		}
	}
}

func TestConnectIgnoresUngrantedAndInactiveApps(t *testing.T) {
	f := newFixture(t, 0)
	other := f.activeApp("game.example") // no grant
	f.grant("ann@example.com", f.app)
	_, ignored, err := f.router.Connect(context.Background(), core.ConnectRequest{
		Identity: core.Identity{Subject: "ann@example.com"}, DeviceID: "d", AppIDs: []core.AppID{f.app, other, 777}, Sink: newDeviceSink(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ignored) != 2 || ignored[0] != other || ignored[1] != 777 {
		t.Fatalf("ignored = %v, want [%d 777]", ignored, other)
	}
}

func TestRotateAndDeactivateCloseChannels(t *testing.T) {
	f := newFixture(t, 0)
	app := f.attach(f.app)
	if _, _, err := f.router.RotateKey(context.Background(), f.app); err != nil {
		t.Fatal(err)
	}
	if e := <-app.closed; e != core.ErrnoBadKey {
		t.Fatalf("rotate closed with %d, want 40", e)
	}
	app2 := f.attach(f.app)
	if _, err := f.router.DeactivateApp(context.Background(), f.app); err != nil {
		t.Fatal(err)
	}
	if e := <-app2.closed; e != core.ErrnoAppInactive {
		t.Fatalf("deactivate closed with %d, want 41", e)
	}
	if _, err := f.router.AttachApp(context.Background(), f.app, newAppSink(), core.AttachOptions{}); core.ErrnoOf(err) != core.ErrnoAppInactive {
		t.Fatalf("attach to inactive app: %v, want errno 41", err)
	}
}

func TestRequeueKeepsWhatAChannelNeverWrote(t *testing.T) {
	f := newFixture(t, 0)
	ann, bob := f.grant("ann@example.com", f.app), f.grant("bob@example.com", f.app)
	a, _ := f.connect("ann@example.com", "phone", f.app)
	b, _ := f.connect("bob@example.com", "phone", f.app)
	out := core.NewStatusOutbox()
	detach, err := f.router.AttachApp(context.Background(), f.app, outboxSink{out}, core.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.status(a, core.Online, "queued, never written")
	detach()
	f.status(b, core.Online, "while away")
	f.router.Requeue(f.app, out.Take(nil))

	next := f.attach(f.app)
	got := map[string]string{}
	for range 2 {
		u := next.next(t)
		got[u.PUID] = u.Message
	}
	if got[ann] != "queued, never written" || got[bob] != "while away" {
		t.Fatalf("the next channel got %v", got)
	}
}

type outboxSink struct{ out *core.StatusOutbox }

func (s outboxSink) SendStatus(u core.StatusUpdate) { s.out.Push(u) }
func (outboxSink) Close(core.Errno)                 {}

func TestPendingNotificationsAcrossConnects(t *testing.T) {
	f := newFixture(t, 0)
	puid := f.grant("ann@example.com", f.app)
	ctx := context.Background()
	pending := func(s *core.Session, sink *deviceSink) []core.Notification {
		t.Helper()
		if err := f.router.PushPending(ctx, s); err != nil {
			t.Fatal(err)
		}
		return sink.drain()
	}
	first, firstSink := f.connect("ann@example.com", "phone", f.app)
	if ns := pending(first, firstSink); len(ns) != 0 {
		t.Fatalf("nothing stored yet: %v", ns)
	}
	stored, _, err := f.router.Notify(ctx, f.app, []core.NotificationInput{{PUID: puid, Message: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	again, againSink := f.connect("ann@example.com", "laptop", f.app)
	ns := pending(again, againSink)
	if len(ns) != 1 || ns[0].ID != stored[0].ID {
		t.Fatalf("after a store: %v, want the one stored", ns)
	}
	if err := f.router.Ack(ctx, again, []string{ns[0].ID}); err != nil {
		t.Fatal(err)
	}
	third, thirdSink := f.connect("ann@example.com", "tablet", f.app)
	if ns := pending(third, thirdSink); len(ns) != 0 {
		t.Fatalf("after the ack: %v", ns)
	}
	f.router.Notify(ctx, f.app, []core.NotificationInput{{PUID: puid, Message: "again"}})
	fourth, fourthSink := f.connect("ann@example.com", "watch", f.app)
	if ns := pending(fourth, fourthSink); len(ns) != 1 || ns[0].Message != "again" {
		t.Fatalf("a store after the set was cleared: %v", ns)
	}
	// A new router over the same store knows who has some (restart).
	r2 := core.NewRouter(f.db.Deps(), core.Options{Now: f.clock.Now})
	if err := r2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sink := newDeviceSink()
	s, _, err := r2.Connect(ctx, core.ConnectRequest{Identity: core.Identity{Subject: "ann@example.com"}, DeviceID: "d", Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.PushPending(ctx, s); err != nil {
		t.Fatal(err)
	}
	if ns := sink.drain(); len(ns) != 1 {
		t.Fatalf("after a restart: %v", ns)
	}
}

// The device gauge (/metrics, /admin) counts sockets: a reconnect within
// the grace, a replacement and a drop each leave it right.
func TestDeviceGaugeCountsSockets(t *testing.T) {
	f := newFixture(t, time.Minute)
	f.grant("ann@example.com", f.app)
	devices := func() int { return f.router.Stats().Devices }
	phone, _ := f.connect("ann@example.com", "phone", f.app)
	f.status(phone, core.Online, "")
	f.router.Disconnect(phone) // in its grace now
	if n := devices(); n != 0 {
		t.Fatalf("after the drop: %d devices, want 0", n)
	}
	phone, _ = f.connect("ann@example.com", "phone", f.app) // takes over the grace
	if n := devices(); n != 1 {
		t.Fatalf("after the reconnect: %d devices, want 1", n)
	}
	f.connect("ann@example.com", "phone", f.app) // replaces it (-2)
	if n := devices(); n != 1 {
		t.Fatalf("after the replacement: %d devices, want 1", n)
	}
}

// A PUID revoked while its update waited does not stop the others from
// being saved at shutdown (the store skips it).
func TestShutdownSavesWaitingAroundARevokedPUID(t *testing.T) {
	f := newFixture(t, 0)
	ann, bob := f.grant("ann@example.com", f.app), f.grant("bob@example.com", f.app)
	a, _ := f.connect("ann@example.com", "phone", f.app)
	b, _ := f.connect("bob@example.com", "phone", f.app)
	f.status(a, core.Online, "")
	f.status(b, core.Online, "bob waits")
	if err := f.router.Revoke(context.Background(), "ann@example.com", ann); err != nil {
		t.Fatal(err)
	}
	if err := f.router.Shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r2 := core.NewRouter(f.db.Deps(), core.Options{Now: f.clock.Now})
	if err := r2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	app := newAppSink()
	if _, err := r2.AttachApp(context.Background(), f.app, app, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	app.expect(t, bob, core.Online, "bob waits")
}

// panickingSink is a device whose push panics: a bug in an edge.
type panickingSink struct{}

func (panickingSink) SendNotifications([]core.Notification) { panic("push failed") }
func (panickingSink) Close(core.Errno)                      {}

// A push that panics after the store must neither lose the caller's
// answer (the batch is durable) nor stop the store's answering goroutine.
func TestNotify_APanickingPushStillAnswers(t *testing.T) {
	f := newFixture(t, 0)
	puid := f.grant("ann@example.com", f.app)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := f.router.Connect(ctx, core.ConnectRequest{
		Identity: core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}, DeviceID: "phone",
		AppIDs: []core.AppID{f.app}, Sink: panickingSink{},
	}); err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"first", "second"} {
		stored, sizes, err := f.router.Notify(ctx, f.app, []core.NotificationInput{{PUID: puid, Message: msg}})
		if err != nil {
			t.Fatalf("notify %d: %v, want it stored", i, err)
		}
		if len(stored) != 1 || stored[0].Message != msg || sizes[0] != i+1 {
			t.Fatalf("notify %d: %v sizes %v", i, stored, sizes)
		}
	}
}
