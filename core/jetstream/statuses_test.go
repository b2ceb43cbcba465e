package jetstream_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// Per (app, PUID) only the newest update waits; a revoked PUID's is not
// kept; a take hands the app its updates once, oldest first, and leaves
// other apps' alone.
func TestStatusQueue(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	pa := e.grants.add("alice", 1, "pa")
	pb := e.grants.add("bob", 1, "pb")
	po := e.grants.add("alice", 2, "po")
	gone := e.grants.add("carol", 1, "gone")
	e.grants.revoke(gone)

	err := e.s.SaveWaiting(ctx, 1, []core.StatusUpdate{
		{PUID: pa, Status: core.Online, At: t0.Add(2 * time.Second)},
		{PUID: pb, Status: core.Online, At: t0.Add(time.Second)},
		{PUID: pa, Status: core.Online, Message: "older, same batch", At: t0},
		{PUID: gone, Status: core.Online, At: t0},
		{PUID: po, Status: core.Online, At: t0}, // app 2's PUID, saved under app 1
	})
	if err != nil {
		t.Fatal(err)
	}
	// A later save with an older update keeps the newer one.
	if err := e.s.SaveWaiting(ctx, 1, []core.StatusUpdate{{PUID: pa, Status: core.Offline, At: t0}}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveWaiting(ctx, 1, []core.StatusUpdate{{PUID: pb, Status: core.Offline, Message: "gone", At: t0.Add(3 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.SaveWaiting(ctx, 2, []core.StatusUpdate{{PUID: po, Status: core.Online, At: t0}}); err != nil {
		t.Fatal(err)
	}

	all, err := e.s.AllWaiting(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want1 := []core.StatusUpdate{
		{PUID: pa, Status: core.Online, At: t0.Add(2 * time.Second)},
		{PUID: pb, Status: core.Offline, Message: "gone", At: t0.Add(3 * time.Second)},
	}
	want2 := []core.StatusUpdate{{PUID: po, Status: core.Online, At: t0}}
	if !reflect.DeepEqual(all, map[core.AppID][]core.StatusUpdate{1: want1, 2: want2}) {
		t.Fatalf("AllWaiting = %v\nwant app 1: %v, app 2: %v", all, want1, want2)
	}
	if all, _ := e.s.AllWaiting(ctx, t0.Add(3*time.Second)); len(all[1]) != 1 || len(all[2]) != 0 {
		t.Fatalf("AllWaiting since +3s = %v, want bob's alone", all)
	}

	got, err := e.s.TakeWaiting(ctx, 1, t0.Add(3*time.Second))
	if err != nil || !reflect.DeepEqual(got, want1[1:]) {
		t.Fatalf("TakeWaiting since +3s = %v, %v; want %v", got, err, want1[1:])
	}
	if got, err := e.s.TakeWaiting(ctx, 1, time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("second take = %v, %v; want nothing (the older one went with the first)", got, err)
	}
	if got, err := e.s.TakeWaiting(ctx, 2, time.Time{}); err != nil || !reflect.DeepEqual(got, want2) {
		t.Fatalf("app 2's take = %v, %v; want %v", got, err, want2)
	}
}

// A put replaces what waits for its PUID, whatever the times (a node
// writes one PUID's updates in the order it routed them); a drop empties
// the app's queue and no other app's.
func TestStatusQueuePutAndDrop(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	pa := e.grants.add("alice", 1, "pa")
	po := e.grants.add("alice", 2, "po")
	if err := e.s.PutWaiting(ctx, 1, []core.StatusUpdate{{PUID: pa, Status: core.Online, At: t0.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	routedLast := core.StatusUpdate{PUID: pa, Status: core.Offline, At: t0}
	if err := e.s.PutWaiting(ctx, 1, []core.StatusUpdate{routedLast}); err != nil {
		t.Fatal(err)
	}
	if err := e.s.PutWaiting(ctx, 2, []core.StatusUpdate{{PUID: po, Status: core.Online, At: t0}}); err != nil {
		t.Fatal(err)
	}
	all, err := e.s.AllWaiting(ctx, time.Time{})
	if err != nil || !reflect.DeepEqual(all[1], []core.StatusUpdate{routedLast}) || len(all[2]) != 1 {
		t.Fatalf("after the puts: %v, %v; want app 1's last put alone, and app 2's", all, err)
	}
	if err := e.s.DropWaiting(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := e.s.TakeWaiting(ctx, 1, time.Time{}); err != nil || len(got) != 0 {
		t.Fatalf("app 1 after the drop: %v, %v; want nothing", got, err)
	}
	if got, err := e.s.TakeWaiting(ctx, 2, time.Time{}); err != nil || len(got) != 1 {
		t.Fatalf("app 2 after app 1's drop: %v, %v; want its update", got, err)
	}
}
