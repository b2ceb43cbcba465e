package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// addOutcome is what AddNotificationsThen gave done, and when.
type addOutcome struct {
	ns     []core.Notification
	sizes  []int
	err    error
	syncs  uint64 // the WAL syncs done when done was called
	stored int    // the user's pending notifications then
}

// addThen calls AddNotificationsThen and returns its one outcome, failing
// if done is called a second time.
func addThen(t *testing.T, db *DB, ctx context.Context, app core.AppID, items []core.NotificationInput) addOutcome {
	t.Helper()
	got := make(chan addOutcome, 2)
	db.AddNotificationsThen(ctx, app, items, time.Now(), 0, 0, func(ns []core.Notification, sizes []int, err error) {
		o := addOutcome{ns: ns, sizes: sizes, err: err, syncs: db.wal.syncs.Load()}
		if err == nil {
			pending, perr := db.PendingNotifications(context.Background(), ns[0].UserID, nil)
			if perr != nil {
				t.Error(perr)
			}
			o.stored = len(pending)
		}
		got <- o
	})
	o := <-got
	select {
	case again := <-got:
		t.Fatalf("done called twice: %+v, then %+v", o, again)
	case <-time.After(50 * time.Millisecond):
	}
	return o
}

// AddNotificationsThen gives each batch its outcome once: stored and
// synced before done hears of it, or the error AddNotifications would
// have returned.
func TestAddNotificationsThen(t *testing.T) {
	db, app, puids := openQueues(t, "alice")
	ctx := context.Background()
	item := func(puid, msg string) []core.NotificationInput {
		return []core.NotificationInput{{PUID: puid, Message: msg}}
	}

	before := db.wal.syncs.Load()
	o := addThen(t, db, ctx, app, item(puids["alice"], "one"))
	if o.err != nil || len(o.ns) != 1 || o.ns[0].UserID != "alice" || o.ns[0].ID == "" || len(o.sizes) != 1 || o.sizes[0] != 1 {
		t.Fatalf("stored: %+v", o)
	}
	if o.syncs <= before || o.stored != 1 {
		t.Fatalf("done was called after %d syncs with %d stored, want the commit synced and stored", o.syncs-before, o.stored)
	}

	o = addThen(t, db, ctx, app, item("no-such-puid", "x"))
	var ie *core.ItemError
	if !errors.As(o.err, &ie) || ie.Index != 0 || core.ErrnoOf(o.err) != core.ErrnoUnknownUID {
		t.Fatalf("unknown PUID: %v, want item 0 errno 44", o.err)
	}

	o = addThen(t, db, ctx, app, nil)
	if core.ErrnoOf(o.err) != core.ErrnoInvalidField {
		t.Fatalf("empty batch: %v, want errno 3", o.err)
	}

	ended, cancel := context.WithCancel(ctx)
	cancel()
	if o = addThen(t, db, ended, app, item(puids["alice"], "late")); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("ended context: %v, want context.Canceled", o.err)
	}

	db.Close()
	if o = addThen(t, db, ctx, app, item(puids["alice"], "closed")); !errors.Is(o.err, ErrClosed) {
		t.Fatalf("closed store: %v, want ErrClosed", o.err)
	}
}
