package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
)

// While the registry cannot be read (PostgreSQL restarting), an app
// cached earlier still answers however old its copy (any change to it
// would have dropped it), and a connect never reports an app it could
// not look up as ignored: the device would take that as the app's final
// word and stay hidden from it.
func TestRegistryAwayKeepsCachedAppsAndFailsTheOthers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 0)
	other := f.activeApp("game.example")
	f.grant("ann@example.com", f.app)
	f.grant("ann@example.com", other)
	if _, _, err := f.router.RotateKey(ctx, other); err != nil { // drops other's cached copy
		t.Fatal(err)
	}
	f.connect("ann@example.com", "phone", f.app) // caches ann's grants and f.app, not other
	f.clock.Add(time.Hour)                       // f.app's copy is stale now
	f.db.Close()

	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	_, ignored, err := f.router.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "laptop", AppIDs: []core.AppID{f.app}, Sink: newDeviceSink()})
	if err != nil || len(ignored) != 0 {
		t.Fatalf("connect with a cached app while the registry is away: %v, ignored %v; want it shown", err, ignored)
	}
	_, ignored, err = f.router.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "tablet", AppIDs: []core.AppID{f.app, other}, Sink: newDeviceSink()})
	if !errors.Is(err, memstore.ErrClosed) || core.ErrnoOf(err) != core.ErrnoInternal {
		t.Fatalf("connect with an app never cached while the registry is away: %v, ignored %v; want the registry's error (errno 50)", err, ignored)
	}
}
