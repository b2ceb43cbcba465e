package sqlite

import (
	"context"
	"testing"
	"time"
)

// TestGarbage_Collected: the rows a full queue drops stay dropped (never
// pending, never acked, not after a reopen either) and are deleted once
// the committer is idle.
func TestGarbage_Collected(t *testing.T) {
	noIdleCollection(t)
	ctx := context.Background()
	db, app, p := openQueues(t, "alice")
	a := p["alice"]
	ns, _ := add(t, db, app, 3, a, a, a, a, a, a, a, a) // 5 dropped by their own batch
	add(t, db, app, 3, a, a)                            // 2 more
	checkIndex(t, db, "dropped")
	var rows, tombstones int
	count := func() {
		t.Helper()
		if err := db.rdb.Get(&rows, `SELECT COUNT(*) FROM notifications`); err != nil {
			t.Fatal(err)
		}
		if err := db.rdb.Get(&tombstones, `SELECT COUNT(*) FROM (`+droppedSeqs+`)`); err != nil {
			t.Fatal(err)
		}
	}
	if count(); rows != 10 || tombstones != 7 {
		t.Fatalf("rows %d, tombstones %d; want 10 and 7 before collection", rows, tombstones)
	}
	pend, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(pend) != 3 || pend[0].Message != "m7" || pend[1].Message != "m0" || pend[2].Message != "m1" {
		t.Fatalf("pending = %v, %v; want the newest 3 (m7 of the first batch, then m0 m1)", pend, err)
	}
	if n, err := db.AckNotifications(ctx, "alice", []string{ns[0].ID, ns[4].ID}); err != nil || n != 0 {
		t.Fatalf("ack of dropped items = %d, %v", n, err)
	}

	db.Close()
	if db, err = Open(db.Path()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if again, err := db.PendingNotifications(ctx, "alice", nil); err != nil || len(again) != 3 || again[0].ID != pend[0].ID {
		t.Fatalf("reopened, pending = %v, %v; want %v", again, err, pend)
	}

	gcIdleDelay.Store(int64(time.Millisecond))
	add(t, db, app, 3, a) // wakes the committer: one more dropped, then idle
	deadline := time.Now().Add(10 * time.Second)
	for count(); rows != 3 || tombstones != 0; count() {
		if time.Now().After(deadline) {
			t.Fatalf("idle committer left rows %d, tombstones %d; want 3 and 0", rows, tombstones)
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkIndex(t, db, "collected")
}
