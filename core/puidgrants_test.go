package core_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
)

// While the registry is away, a PUID looked up before is answered with
// its grant; one never looked up, or whose grant was revoked (told by
// the bus), or any after a lost bus link, fails with the registry's
// error.
func TestPUIDGrantsFallBackUntilToldOtherwise(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	r, lookups, bus := routerWithPUIDGrants(t, store, store)
	app := activeApp(t, r)
	var puids []string
	for _, who := range []string{"ann", "bob", "cy", "dan"} {
		g, err := r.Grant(ctx, core.Identity{Subject: who + "@example.com", Email: who + "@example.com"}, app, who)
		if err != nil {
			t.Fatal(err)
		}
		puids = append(puids, g.PUID)
	}
	ann, bob, cy, dan := puids[0], puids[1], puids[2], puids[3]
	for _, p := range []string{ann, bob, cy} { // dan's is never looked up
		if _, err := lookups.GrantByPUID(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Revoke(ctx, "bob@example.com", bob); err != nil {
		t.Fatal(err)
	}
	store.Close()

	if g, err := lookups.GrantByPUID(ctx, ann); err != nil || g.PUID != ann || g.AppID != app {
		t.Fatalf("ann's PUID with the registry away: %+v, %v; want her grant", g, err)
	}
	for name, p := range map[string]string{"bob's (revoked)": bob, "dan's (never looked up)": dan} {
		if _, err := lookups.GrantByPUID(ctx, p); !errors.Is(err, memstore.ErrClosed) {
			t.Fatalf("%s PUID with the registry away: %v, want the registry's error", name, err)
		}
	}
	bus.Invalidate(ctx, core.Invalidation{Kind: core.CachesLost})
	if _, err := lookups.GrantByPUID(ctx, cy); !errors.Is(err, memstore.ErrClosed) {
		t.Fatalf("cy's PUID after a lost bus link: %v, want the registry's error", err)
	}
}

// routerWithPUIDGrants starts a router on store, with a PUIDGrants
// reading reg, told of invalidations by the returned bus.
func routerWithPUIDGrants(t *testing.T, store *memstore.Store, reg core.Registry) (*core.Router, *core.PUIDGrants, *core.LocalBus) {
	t.Helper()
	deps := store.Deps()
	bus := core.NewLocalBus()
	deps.Bus = bus
	lookups := core.NewPUIDGrants(reg)
	deps.PUIDGrants = lookups
	keys, _ := core.NewKeyring(make([]byte, 32))
	r := core.NewRouter(deps, core.Options{Keys: keys})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return r, lookups, bus
}

// countingRegistry counts the registry's GrantByPUID reads.
type countingRegistry struct {
	*memstore.Store
	reads atomic.Int64
}

func (c *countingRegistry) GrantByPUID(ctx context.Context, puid string) (*core.Grant, error) {
	c.reads.Add(1)
	return c.Store.GrantByPUID(ctx, puid)
}

// A PUID is read from the registry once, then answered from memory until
// its grant is revoked: then it is unknown (errno 44's ErrNotFound), read
// from the registry again.
func TestPUIDGrantsReadTheRegistryOnceUntilRevoked(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	reg := &countingRegistry{Store: store}
	r, lookups, _ := routerWithPUIDGrants(t, store, reg)
	app := activeApp(t, r)
	g, err := r.Grant(ctx, core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}, app, "ann")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, err := lookups.GrantByPUID(ctx, g.PUID); err != nil || got.UserID != "ann@example.com" || got.AppID != app {
			t.Fatalf("ann's PUID: %+v, %v; want her grant", got, err)
		}
	}
	if n := reg.reads.Load(); n != 1 {
		t.Fatalf("three lookups read the registry %d times, want once", n)
	}
	if err := r.Revoke(ctx, "ann@example.com", g.PUID); err != nil {
		t.Fatal(err)
	}
	if got, err := lookups.GrantByPUID(ctx, g.PUID); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("ann's revoked PUID: %+v, %v; want ErrNotFound", got, err)
	}
}
