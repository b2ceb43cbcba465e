package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

func item(puid, msg string) core.NotificationInput {
	return core.NotificationInput{PUID: puid, Message: msg, Action: "https://a.example/r"}
}

func messages(ns []core.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Message)
	}
	return out
}

func testBatchWholeOrNothing(t *testing.T, d core.Deps) {
	ctx := context.Background()
	q := d.Notifications
	a := setUp(t, d, "a.example", "ann", "puid-a")
	b := setUp(t, d, "b.example", "bob", "puid-b")
	now := time.Now()

	for _, bad := range []struct {
		name  string
		items []core.NotificationInput
		index int
	}{
		{"unknown PUID", []core.NotificationInput{item(a.puid, "1"), item("puid-nobody", "2")}, 1},
		{"another app's PUID", []core.NotificationInput{item(a.puid, "1"), item(a.puid, "2"), item(b.puid, "3")}, 2},
	} {
		_, _, err := q.AddNotifications(ctx, a.app, bad.items, now, time.Minute, 100)
		var ie *core.ItemError
		if !errors.As(err, &ie) || ie.Index != bad.index || core.ErrnoOf(err) != core.ErrnoUnknownUID {
			t.Fatalf("%s: got %v, want an ItemError with errno 44 at index %d", bad.name, err, bad.index)
		}
	}
	if ns, _ := q.PendingNotifications(ctx, "ann", nil); len(ns) != 0 {
		t.Fatalf("a refused batch left %d notifications", len(ns))
	}
	if users, _ := q.UsersWithNotifications(ctx); len(users) != 0 {
		t.Fatalf("a refused batch left users with notifications: %v", users)
	}

	stored, sizes, err := q.AddNotifications(ctx, a.app, []core.NotificationInput{
		item(a.puid, "one"), {PUID: a.puid, Message: "two", TTL: 5 * time.Minute},
	}, now, time.Minute, 100)
	must(t, err)
	if !slices.Equal(sizes, []int{2, 2}) || len(stored) != 2 {
		t.Fatalf("sizes %v, %d stored; want [2 2], 2", sizes, len(stored))
	}
	n := stored[0]
	if n.ID == "" || n.ID == stored[1].ID || n.UserID != "ann" || n.AppID != a.app || n.PUID != a.puid ||
		n.Message != "one" || n.Action != "https://a.example/r" {
		t.Fatalf("stored: %+v", n)
	}
	if !n.CreatedAt.Equal(now) || !n.ExpiresAt.Equal(now.Add(time.Minute)) || !stored[1].ExpiresAt.Equal(now.Add(5*time.Minute)) {
		t.Fatalf("times: created %v expires %v and %v; want now, +1m (default) and +5m (its ttl)", n.CreatedAt, n.ExpiresAt, stored[1].ExpiresAt)
	}
	pending, err := q.PendingNotifications(ctx, "ann", nil)
	must(t, err)
	if len(pending) != 2 || !sameNotification(pending[0], stored[0]) {
		t.Fatalf("pending: %+v, want what was stored", pending)
	}
}

func sameNotification(a, b core.Notification) bool {
	return a.ID == b.ID && a.AppID == b.AppID && a.PUID == b.PUID && a.UserID == b.UserID &&
		a.Message == b.Message && a.Action == b.Action && a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

func testQueueCap(t *testing.T, d core.Deps) {
	ctx := context.Background()
	q := d.Notifications
	a := setUp(t, d, "a.example", "ann", "puid-a")
	now := time.Now()
	_, sizes, err := q.AddNotifications(ctx, a.app, []core.NotificationInput{item(a.puid, "1"), item(a.puid, "2")}, now, time.Minute, 3)
	must(t, err)
	if !slices.Equal(sizes, []int{2, 2}) {
		t.Fatalf("sizes %v, want [2 2]", sizes)
	}
	_, sizes, err = q.AddNotifications(ctx, a.app, []core.NotificationInput{item(a.puid, "3"), item(a.puid, "4"), item(a.puid, "5")}, now, time.Minute, 3)
	must(t, err)
	if !slices.Equal(sizes, []int{3, 3, 3}) {
		t.Fatalf("sizes at the cap %v, want [3 3 3]", sizes)
	}
	pending, err := q.PendingNotifications(ctx, "ann", nil)
	must(t, err)
	if got := messages(pending); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Fatalf("a full queue kept %v, want the newest [3 4 5]", got)
	}
	// The cap is per PUID: a second grant of the same user has its own.
	g, _, err := d.Registry.Grant(ctx, "ann", a.app, "Ann at work", "puid-a2")
	must(t, err)
	_, sizes, err = q.AddNotifications(ctx, a.app, []core.NotificationInput{item(g.PUID, "w")}, now, time.Minute, 3)
	must(t, err)
	if !slices.Equal(sizes, []int{1}) {
		t.Fatalf("another PUID's queue size %v, want [1]", sizes)
	}
}

func testPendingAndAck(t *testing.T, d core.Deps) {
	ctx := context.Background()
	q := d.Notifications
	a := setUp(t, d, "a.example", "ann", "puid-a")
	b := setUp(t, d, "b.example", "bob", "puid-b")
	_, _, err := d.Registry.Grant(ctx, "ann", b.app, "ann at b", "puid-ab")
	must(t, err)
	now := time.Now()
	for i, step := range []struct {
		app  core.AppID
		puid string
		msg  string
	}{{a.app, a.puid, "a1"}, {b.app, "puid-ab", "b1"}, {a.app, a.puid, "a2"}, {b.app, b.puid, "bob1"}} {
		_, _, err := q.AddNotifications(ctx, step.app, []core.NotificationInput{item(step.puid, step.msg)}, now.Add(time.Duration(i)*time.Millisecond), time.Minute, 100)
		must(t, err)
	}
	all, err := q.PendingNotifications(ctx, "ann", nil)
	must(t, err)
	if got := messages(all); !slices.Equal(got, []string{"a1", "b1", "a2"}) {
		t.Fatalf("ann's pending %v, want [a1 b1 a2], oldest first", got)
	}
	onlyB, err := q.PendingNotifications(ctx, "ann", []core.AppID{b.app})
	must(t, err)
	if got := messages(onlyB); !slices.Equal(got, []string{"b1"}) {
		t.Fatalf("ann's pending for app b %v, want [b1]", got)
	}
	if none, _ := q.PendingNotifications(ctx, "ann", []core.AppID{}); len(none) != 0 {
		t.Fatalf("pending for no app: %d", len(none))
	}
	users, err := q.UsersWithNotifications(ctx)
	must(t, err)
	slices.Sort(users)
	if !slices.Equal(users, []string{"ann", "bob"}) {
		t.Fatalf("UsersWithNotifications %v, want [ann bob]", users)
	}

	bobs, _ := q.PendingNotifications(ctx, "bob", nil)
	n, err := q.AckNotifications(ctx, "ann", []string{bobs[0].ID, "no-such-id", all[0].ID, all[2].ID})
	must(t, err)
	if n != 2 {
		t.Fatalf("ann's ack deleted %d, want 2 (bob's id and an unknown one are ignored)", n)
	}
	if n, _ := q.AckNotifications(ctx, "ann", []string{all[0].ID}); n != 0 {
		t.Fatalf("a second ack of the same id deleted %d", n)
	}
	if left, _ := q.PendingNotifications(ctx, "ann", nil); !slices.Equal(messages(left), []string{"b1"}) {
		t.Fatalf("ann's pending after ack %v, want [b1]", messages(left))
	}
	if left, _ := q.PendingNotifications(ctx, "bob", nil); len(left) != 1 {
		t.Fatalf("bob's notification went with ann's ack")
	}
}

func testPurge(t *testing.T, d core.Deps) {
	ctx := context.Background()
	q := d.Notifications
	a := setUp(t, d, "a.example", "ann", "puid-a")
	old := time.Now().Add(-2 * time.Hour)
	_, _, err := q.AddNotifications(ctx, a.app, []core.NotificationInput{item(a.puid, "old1"), item(a.puid, "old2")}, old, time.Minute, 100)
	must(t, err)
	_, _, err = q.AddNotifications(ctx, a.app, []core.NotificationInput{item(a.puid, "new")}, time.Now(), time.Minute, 100)
	must(t, err)
	n, err := q.PurgeNotifications(ctx, time.Now().Add(-time.Hour))
	must(t, err)
	if n != 2 {
		t.Fatalf("purged %d, want 2", n)
	}
	if left, _ := q.PendingNotifications(ctx, "ann", nil); !slices.Equal(messages(left), []string{"new"}) {
		t.Fatalf("after purge %v, want [new]", messages(left))
	}
}

func testWaiting(t *testing.T, d core.Deps) {
	ctx := context.Background()
	s := d.Statuses
	a := setUp(t, d, "a.example", "ann", "puid-a")
	b := setUp(t, d, "b.example", "bob", "puid-b")
	_, _, err := d.Registry.Grant(ctx, "ann", a.app, "second", "puid-a2")
	must(t, err)
	t0 := time.Now().Round(0).UTC().Truncate(time.Millisecond)
	must(t, s.SaveWaiting(ctx, a.app, []core.StatusUpdate{
		{PUID: a.puid, Status: core.Online, Message: "first", At: t0},
		{PUID: "puid-a2", Status: core.Unavailable, At: t0.Add(-2 * time.Hour)},
		{PUID: b.puid, Status: core.Online, At: t0}, // another app's: skipped
	}))
	must(t, s.SaveWaiting(ctx, a.app, []core.StatusUpdate{
		{PUID: a.puid, Status: core.Unavailable, Message: "newer", At: t0.Add(time.Second)},
	}))
	must(t, s.SaveWaiting(ctx, a.app, []core.StatusUpdate{
		{PUID: a.puid, Status: core.Offline, At: t0.Add(-time.Second)}, // older: ignored
	}))
	must(t, s.SaveWaiting(ctx, b.app, []core.StatusUpdate{{PUID: b.puid, Status: core.Online, At: t0}}))

	all, err := s.AllWaiting(ctx, t0.Add(-time.Hour))
	must(t, err)
	if len(all) != 2 || len(all[a.app]) != 1 || len(all[b.app]) != 1 {
		t.Fatalf("AllWaiting: %v, want one update of each app (the two-hour-old one left out)", all)
	}
	got := all[a.app][0]
	if got.PUID != a.puid || got.Status != core.Unavailable || got.Message != "newer" || !got.At.Equal(t0.Add(time.Second)) {
		t.Fatalf("waiting for a: %+v, want the newest (unavailable, newer)", got)
	}
	if again, _ := s.AllWaiting(ctx, t0.Add(-3*time.Hour)); len(again[a.app]) != 2 {
		t.Fatalf("AllWaiting deleted something, or lost the old update: %v", again)
	}

	taken, err := s.TakeWaiting(ctx, a.app, t0.Add(-time.Hour))
	must(t, err)
	if len(taken) != 1 || taken[0].PUID != a.puid {
		t.Fatalf("TakeWaiting: %+v, want a's newest only", taken)
	}
	if left, _ := s.TakeWaiting(ctx, a.app, t0.Add(-3*time.Hour)); len(left) != 0 {
		t.Fatalf("TakeWaiting left %d updates of the app (older ones too must go)", len(left))
	}
	if bs, _ := s.AllWaiting(ctx, t0.Add(-time.Hour)); len(bs[b.app]) != 1 {
		t.Fatalf("TakeWaiting of a took app b's updates: %v", bs)
	}
}

// Concurrent batches to one PUID, as many edges store at once: every call
// succeeds, the queue ends at its cap, and what it keeps is the newest.
func testConcurrentAdds(t *testing.T, d core.Deps) {
	ctx := context.Background()
	q := d.Notifications
	a := setUp(t, d, "a.example", "ann", "puid-a")
	const writers, each, size = 8, 10, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, sizes, err := q.AddNotifications(ctx, a.app, []core.NotificationInput{item(a.puid, fmt.Sprintf("w%d-%d", w, i))}, time.Now(), time.Minute, size)
				if err == nil && (sizes[0] < 1 || sizes[0] > size) {
					err = fmt.Errorf("queue size %d, cap %d", sizes[0], size)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	pending, err := q.PendingNotifications(ctx, "ann", nil)
	must(t, err)
	if len(pending) != size {
		t.Fatalf("%d queued after %d concurrent adds, want the cap %d", len(pending), writers*each, size)
	}
	// Each writer's items are in its own order: FIFO holds per caller.
	last := make(map[string]int)
	for _, n := range pending {
		var w, i int
		fmt.Sscanf(n.Message, "w%d-%d", &w, &i)
		key := fmt.Sprint(w)
		if prev, ok := last[key]; ok && i <= prev {
			t.Fatalf("writer %d's item %d came after its item %d", w, i, prev)
		}
		last[key] = i
	}
}
