package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// The Registry's contract (apps, users, grants, revocation) is
// core/storetest's, run in conformance_test.go. What stays here is
// SQLite's own: RevokeGrant by itself, in its one write transaction,
// deletes the grant's queued notifications and waiting statuses, and
// leaves the user's other grants' alone.
func TestRevokeGrant_Cascades(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	gone := MustGrant(t, db, "alice", app.ID, "A")
	kept := MustGrant(t, db, "alice", app.ID, "B")

	err := db.SaveWaiting(ctx, app.ID, []core.StatusUpdate{
		{PUID: gone, Status: core.Online, At: t0},
		{PUID: kept, Status: core.Online, At: t0},
	})
	if err != nil {
		t.Fatal(err)
	}
	items := []core.NotificationInput{{PUID: gone, Message: "x"}, {PUID: kept, Message: "y"}}
	if _, _, err := db.AddNotifications(ctx, app.ID, items, t0, 0, 0); err != nil {
		t.Fatal(err)
	}

	if err := db.RevokeGrant(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeGrant(ctx, gone); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("second RevokeGrant = %v, want ErrNotFound", err)
	}
	if _, err := db.GrantByPUID(ctx, gone); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("revoked grant still found: %v", err)
	}
	w, err := db.AllWaiting(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(w[app.ID]) != 1 || w[app.ID][0].PUID != kept {
		t.Fatalf("waiting after revoke = %v, want only %s", w, kept)
	}
	p, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1 || p[0].PUID != kept {
		t.Fatalf("pending after revoke = %+v, want only %s's", p, kept)
	}
}
