package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/pgtest"
)

// Bursts of lookups as many at once as the pool holds, as notification
// POSTs make them, keep their connections: none is closed for want of an
// idle slot and opened again for the next burst.
func TestPoolKeepsItsConnectionsThroughBursts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	db, err := Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := &core.App{Domain: "example.com", Name: "app", OwnerEmail: "dev@example.com",
		State: core.AppActive, VerificationKey: "vk", KeyHash: core.HashKey("key")}
	if err := db.CreateApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	g, _, err := db.Grant(ctx, "alice", a.ID, "Alice", "puid-alice")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		var wg sync.WaitGroup
		errs := make([]error, maxConns)
		for i := range maxConns {
			wg.Go(func() {
				_, errs[i] = db.GrantByPUID(ctx, g.PUID)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := db.db.Stats(); st.MaxIdleClosed != 0 || st.OpenConnections > maxConns {
		t.Fatalf("after 10 bursts of %d lookups: %d connections closed for want of an idle slot, %d open",
			maxConns, st.MaxIdleClosed, st.OpenConnections)
	}
}
