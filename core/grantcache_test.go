package core_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/presence-service/presence/core"
)

// recordSink keeps every update an app channel is told, in order.
type recordSink struct {
	mu      sync.Mutex // guards: updates
	updates []core.StatusUpdate
}

func (s *recordSink) SendStatus(u core.StatusUpdate) {
	s.mu.Lock()
	s.updates = append(s.updates, u)
	s.mu.Unlock()
}
func (*recordSink) Close(core.Errno) {}

// last is the last update told for puid.
func (s *recordSink) last(puid string) (core.StatusUpdate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.updates) - 1; i >= 0; i-- {
		if s.updates[i].PUID == puid {
			return s.updates[i], true
		}
	}
	return core.StatusUpdate{}, false
}

func (f *fixture) connectIgnoring(email, device string, apps ...core.AppID) (*core.Session, []core.AppID) {
	f.t.Helper()
	s, ignored, err := f.router.Connect(context.Background(), core.ConnectRequest{
		Identity: core.Identity{Subject: email, Email: email}, DeviceID: device, AppIDs: apps, Sink: newDeviceSink(),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return s, ignored
}

// Grants are cached per user; a revoke must reach a connect that comes
// after it even though the cache was warm, and a grant must too.
func TestConnectAfterRevokeOrGrantSeesIt(t *testing.T) {
	f := newFixture(t, 0)
	other := f.activeApp("game.example")
	puid := f.grant("ann@example.com", f.app)
	if _, ignored := f.connectIgnoring("ann@example.com", "phone", f.app, other); !slices.Equal(ignored, []core.AppID{other}) {
		t.Fatalf("before: ignored %v, want [%d]", ignored, other)
	}
	f.grant("ann@example.com", other) // the cache was warm: the grant must show
	if _, ignored := f.connectIgnoring("ann@example.com", "laptop", f.app, other); len(ignored) != 0 {
		t.Fatalf("after the grant: ignored %v, want none", ignored)
	}
	if err := f.router.Revoke(context.Background(), "ann@example.com", puid); err != nil {
		t.Fatal(err)
	}
	if _, ignored := f.connectIgnoring("ann@example.com", "tablet", f.app, other); !slices.Equal(ignored, []core.AppID{f.app}) {
		t.Fatalf("after the revoke: ignored %v, want [%d]", ignored, f.app)
	}
	// With no device left (the user's live state gone), the same holds.
	f2 := newFixture(t, 0)
	puid = f2.grant("bob@example.com", f2.app)
	s, _ := f2.connectIgnoring("bob@example.com", "phone", f2.app)
	f2.router.Disconnect(s)
	if err := f2.router.Revoke(context.Background(), "bob@example.com", puid); err != nil {
		t.Fatal(err)
	}
	if _, ignored := f2.connectIgnoring("bob@example.com", "phone", f2.app); !slices.Equal(ignored, []core.AppID{f2.app}) {
		t.Fatalf("after the revoke, user idle: ignored %v, want [%d]", ignored, f2.app)
	}
	// SetVisibility reads the same cache.
	puid = f2.grant("bob@example.com", f2.app)
	s, _ = f2.connectIgnoring("bob@example.com", "laptop")
	if err := f2.router.Revoke(context.Background(), "bob@example.com", puid); err != nil {
		t.Fatal(err)
	}
	if ignored, err := f2.router.SetVisibility(context.Background(), s, []core.AppID{f2.app}); err != nil || !slices.Equal(ignored, []core.AppID{f2.app}) {
		t.Fatalf("visibility after the revoke: ignored %v, %v", ignored, err)
	}
}

// Connects and status updates racing with a revoke: once Revoke has
// returned, no connect gets the app, and the last thing the app is told
// for the PUID is offline, whatever the order the race took.
func TestRevokeRacingConnects(t *testing.T) {
	f := newFixture(t, 0)
	app := &recordSink{}
	if _, err := f.router.AttachApp(context.Background(), f.app, app, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		email := fmt.Sprintf("user%d@example.com", i)
		puid := f.grant(email, f.app)
		var revoked atomic.Bool
		var wg sync.WaitGroup
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 30 {
					after := revoked.Load()
					s, ignored, err := f.router.Connect(context.Background(), core.ConnectRequest{
						Identity: core.Identity{Subject: email}, DeviceID: fmt.Sprintf("d%d", w), AppIDs: []core.AppID{f.app}, Sink: newDeviceSink(),
					})
					if err != nil {
						t.Error(err)
						return
					}
					if after && len(ignored) == 0 {
						t.Errorf("%s: a connect after the revoke got the app", email)
					}
					f.router.SetStatus(s, core.Presence{Status: core.Online, Message: fmt.Sprint(k)}, nil)
					if k%3 == 2 {
						f.router.Disconnect(s)
					}
				}
			}()
		}
		if err := f.router.Revoke(context.Background(), email, puid); err != nil {
			t.Fatal(err)
		}
		revoked.Store(true)
		wg.Wait()
		if u, ok := app.last(puid); !ok || u.Status != core.Offline {
			t.Fatalf("%s: the app was last told %+v for the revoked PUID, want offline", email, u)
		}
	}
}

// BenchmarkConnect measures a device connect in the router: grants (from
// the cache once warm), app checks, session registration.
func BenchmarkConnect(b *testing.B) {
	f := newFixture(&testing.T{}, 0)
	const users = 1000
	emails := make([]string, users)
	for i := range emails {
		emails[i] = fmt.Sprintf("user%d@example.com", i)
		f.grant(emails[i], f.app)
	}
	apps := []core.AppID{f.app}
	sink := newDeviceSink()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e := emails[i%users]
		s, _, err := f.router.Connect(context.Background(), core.ConnectRequest{
			Identity: core.Identity{Subject: e, Email: e}, DeviceID: "phone", AppIDs: apps, Sink: sink,
		})
		if err != nil {
			b.Fatal(err)
		}
		f.router.Disconnect(s)
	}
}
