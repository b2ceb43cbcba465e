package sqlite

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestCheckpointer: pages committed reach the database file soon, well
// before the WAL reaches the writer's own autocheckpoint.
func TestCheckpointer(t *testing.T) {
	db, app, p := openQueues(t, "alice")
	var backstop int
	if err := db.write(context.Background(), func(tx *writeTx) error {
		return tx.Get(&backstop, `PRAGMA wal_autocheckpoint`)
	}); err != nil || backstop != walBackstop {
		t.Fatalf("writer's wal_autocheckpoint = %d, %v; want %d", backstop, err, walBackstop)
	}
	size := func() int64 {
		fi, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	// Let the checkpoints of the set-up land first.
	time.Sleep(3 * checkpointInterval)
	before := size()
	for range 20 {
		add(t, db, app, 1000, p["alice"], p["alice"], p["alice"], p["alice"], p["alice"])
	}
	for deadline := time.Now().Add(5 * time.Second); size() <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("database file still %d bytes: no checkpoint ran", before)
		}
		time.Sleep(checkpointInterval)
	}
}
