package jetstream_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// With every NATS server down, an add fails within its bound, never
// answering OK; once they are back (on their stores), the same queues
// take adds again and what was stored before the outage is all there.
func TestAllServersDownThenBack(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice", 1, "pa")
	before, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "before"}}, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		e.c.Kill(i)
	}
	start := time.Now()
	_, _, err = e.n.AddNotifications(context.Background(), 1, []core.NotificationInput{{PUID: pa, Message: "during"}}, time.Now(), 0, 0)
	if err == nil {
		t.Fatal("an add answered OK with every NATS server down")
	}
	t.Logf("the add failed after %v: %v", time.Since(start), err)
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("a failed add took %v: the caller is held past the request bound", took)
	}

	for i := range 3 {
		e.c.Restart(i)
	}
	e.c.WaitJetStream()
	var after []core.Notification
	waitFor(t, "an add to succeed once NATS is back", func() bool {
		after, _, err = e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "after"}}, time.Now(), 0, 0)
		return err == nil
	})
	p, err := e.n.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(p)
	if len(got) < 2 || got[0] != before[0].ID || got[len(got)-1] != after[0].ID {
		t.Fatalf("pending after the outage = %v %v; want %s (before) first and %s (after) last", got, messages(p), before[0].ID, after[0].ID)
	}
	// "during" failed; if its commit was stored anyway, it is whole and
	// between the two (at least once), never half of anything.
	if m := messages(p); !reflect.DeepEqual(m, []string{"before", "after"}) && !reflect.DeepEqual(m, []string{"before", "during", "after"}) {
		t.Fatalf("pending = %v", m)
	}
}
