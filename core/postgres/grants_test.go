package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/internal/pgtest"
)

// Two registries on one database, as two nodes of a cluster: the grant
// one makes, the other reads; the same triple granted on both at once
// ends with one PUID.
func TestGrant_TwoNodesShareOnePUID(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	a, b := mustOpenURL(t, url), mustOpenURL(t, url)
	app := MustApp(t, a, "dev@example.com")
	if err := b.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}

	const n = 20
	var (
		wg    sync.WaitGroup
		puids = make([]string, 2*n)
		errs  = make([]error, 2*n)
	)
	for i := range 2 * n {
		node := a
		if i%2 == 1 {
			node = b
		}
		wg.Go(func() {
			g, _, err := node.Grant(ctx, "alice", app.ID, "Alice", fmt.Sprintf("puid-%d", i))
			errs[i] = err
			if g != nil {
				puids[i] = g.PUID
			}
		})
	}
	wg.Wait()
	for i := range 2 * n {
		if errs[i] != nil || puids[i] != puids[0] {
			t.Fatalf("call %d: %s, %v; call 0 got %s", i, puids[i], errs[i], puids[0])
		}
	}
	got, err := a.GrantByPUID(ctx, puids[0])
	if err != nil || got.UserID != "alice" {
		t.Fatalf("GrantByPUID on the other node = %+v, %v", got, err)
	}
}
