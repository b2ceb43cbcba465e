package sqlite_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

func TestSaveWaiting_Coalesces(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	p1 := MustGrant(t, db, "alice", app.ID, "A")
	p2 := MustGrant(t, db, "bob", app.ID, "B")
	other := MustApp(t, db, "dev@example.com")
	pOther := MustGrant(t, db, "carol", other.ID, "C")

	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		name string
		app  core.AppID
		save []core.StatusUpdate
	}{
		{"first", app.ID, []core.StatusUpdate{
			{PUID: p1, Status: core.Online, Message: "hi", At: at(1)},
			{PUID: p2, Status: core.Unavailable, At: at(2)},
		}},
		{"newer replaces, last of a call wins", app.ID, []core.StatusUpdate{
			{PUID: p1, Status: core.Unavailable, Message: "away", At: at(3)},
			{PUID: p1, Status: core.Offline, At: at(4)},
		}},
		{"older is ignored", app.ID, []core.StatusUpdate{
			{PUID: p2, Status: core.Online, At: at(0)},
		}},
		{"PUID of another app and unknown PUID are skipped", app.ID, []core.StatusUpdate{
			{PUID: pOther, Status: core.Online, At: at(5)},
			{PUID: "nope", Status: core.Online, At: at(5)},
		}},
		{"other app", other.ID, []core.StatusUpdate{
			{PUID: pOther, Status: core.Online, Message: "c", At: at(6)},
		}},
	}
	for _, s := range steps {
		if err := db.SaveWaiting(ctx, s.app, s.save); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	if err := db.SaveWaiting(ctx, app.ID, nil); err != nil {
		t.Fatal(err)
	}

	want := map[core.AppID][]core.StatusUpdate{
		app.ID: {
			{PUID: p2, Status: core.Unavailable, At: at(2)},
			{PUID: p1, Status: core.Offline, At: at(4)},
		},
		other.ID: {{PUID: pOther, Status: core.Online, Message: "c", At: at(6)}},
	}
	all, err := db.AllWaiting(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, want) {
		t.Fatalf("AllWaiting = %v\nwant %v", all, want)
	}
	// AllWaiting reads only; since filters.
	all, err = db.AllWaiting(ctx, at(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(all[app.ID]) != 1 || len(all[other.ID]) != 1 {
		t.Fatalf("AllWaiting(since +3s) = %v", all)
	}
}

func TestTakeWaiting(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	other := MustApp(t, db, "dev@example.com")
	p1 := MustGrant(t, db, "alice", app.ID, "A")
	p2 := MustGrant(t, db, "bob", app.ID, "B")
	p3 := MustGrant(t, db, "carol", app.ID, "C")
	pOther := MustGrant(t, db, "carol", other.ID, "C")

	err := db.SaveWaiting(ctx, app.ID, []core.StatusUpdate{
		{PUID: p1, Status: core.Online, At: t0.Add(-2 * time.Hour)}, // past the TTL
		{PUID: p2, Status: core.Online, At: t0.Add(2 * time.Second)},
		{PUID: p3, Status: core.Unavailable, At: t0.Add(time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveWaiting(ctx, other.ID, []core.StatusUpdate{{PUID: pOther, Status: core.Online, At: t0}}); err != nil {
		t.Fatal(err)
	}

	got, err := db.TakeWaiting(ctx, app.ID, t0.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []core.StatusUpdate{
		{PUID: p3, Status: core.Unavailable, At: t0.Add(time.Second)},
		{PUID: p2, Status: core.Online, At: t0.Add(2 * time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("TakeWaiting = %v, want %v (oldest first, expired left out)", got, want)
	}

	// Taken once: the expired one is gone too, the other app's stays.
	if got, err := db.TakeWaiting(ctx, app.ID, time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("second TakeWaiting = %v, %v; want nothing", got, err)
	}
	all, err := db.AllWaiting(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || len(all[other.ID]) != 1 {
		t.Fatalf("AllWaiting after take = %v, want only the other app's", all)
	}
}
