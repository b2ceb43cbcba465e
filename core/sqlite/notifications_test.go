package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/sqlite"
)

func TestAddNotifications_StoresAndReturns(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	pa := MustGrant(t, db, "alice", app.ID, "A")
	pb := MustGrant(t, db, "bob", app.ID, "B")

	items := []core.NotificationInput{
		{PUID: pa, Message: "one", Action: "https://beer.example/r/1"},
		{PUID: pb, Message: "two", TTL: 10 * time.Second},
		{PUID: pa, Message: "three", Action: "beerchat:room/4"},
	}
	ns, sizes, err := db.AddNotifications(ctx, app.ID, items, t0, 30*time.Second, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sizes, []int{2, 1, 2}) {
		t.Fatalf("sizes = %v, want [2 1 2] (after the whole batch)", sizes)
	}
	seen := map[string]bool{}
	for i, n := range ns {
		if len(n.ID) < 22 || strings.ContainsAny(n.ID, "+/=") || seen[n.ID] {
			t.Fatalf("item %d: id %q is not a fresh URL-safe 128-bit id", i, n.ID)
		}
		seen[n.ID] = true
	}
	want := []core.Notification{
		{ID: ns[0].ID, AppID: app.ID, PUID: pa, UserID: "alice", Message: "one", Action: "https://beer.example/r/1", CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Second)},
		{ID: ns[1].ID, AppID: app.ID, PUID: pb, UserID: "bob", Message: "two", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Second)},
		{ID: ns[2].ID, AppID: app.ID, PUID: pa, UserID: "alice", Message: "three", Action: "beerchat:room/4", CreatedAt: t0, ExpiresAt: t0.Add(30 * time.Second)},
	}
	if !reflect.DeepEqual(ns, want) {
		t.Fatalf("AddNotifications = %+v\nwant %+v", ns, want)
	}

	got, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []core.Notification{want[0], want[2]}) {
		t.Fatalf("Pending(alice) = %+v, want items 0 and 2 in order", got)
	}

	// Zero defaults: 60 s TTL.
	ns, _, err = db.AddNotifications(ctx, app.ID, []core.NotificationInput{{PUID: pb, Message: "d"}}, t0, 0, 0)
	if err != nil || !ns[0].ExpiresAt.Equal(t0.Add(sqlite.DefaultTTL)) {
		t.Fatalf("default TTL: %+v, %v", ns, err)
	}
}

func TestAddNotifications_BadBatchStoresNothing(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	other := MustApp(t, db, "dev@example.com")
	pa := MustGrant(t, db, "alice", app.ID, "A")
	pOther := MustGrant(t, db, "alice", other.ID, "A")
	ok := core.NotificationInput{PUID: pa, Message: "fine"}

	tests := []struct {
		name      string
		items     []core.NotificationInput
		wantErrno core.Errno
		wantIndex int // -1: not an item's fault
		wantIn    string
	}{
		{"empty batch", nil, core.ErrnoInvalidField, -1, "no items"},
		{"101 items", make([]core.NotificationInput, 101), core.ErrnoInvalidField, -1, "at most 100"},
		{"unknown UID", []core.NotificationInput{ok, ok, ok, {PUID: "nope", Message: "x"}}, core.ErrnoUnknownUID, 3, "item 3: unknown UID"},
		{"UID of another app", []core.NotificationInput{ok, {PUID: pOther, Message: "x"}}, core.ErrnoUnknownUID, 1, "item 1: unknown UID"},
		{"missing message", []core.NotificationInput{ok, {PUID: pa}}, core.ErrnoInvalidField, 1, "item 1: message"},
		{"long message", []core.NotificationInput{{PUID: pa, Message: strings.Repeat("é", 513)}}, core.ErrnoInvalidField, 0, "item 0: message"},
		{"javascript action", []core.NotificationInput{ok, ok, {PUID: pa, Message: "x", Action: "javascript:alert(1)"}}, core.ErrnoInvalidField, 2, "item 2: action"},
		{"ttl too short", []core.NotificationInput{{PUID: pa, Message: "x", TTL: time.Second}}, core.ErrnoInvalidField, 0, "item 0: ttl"},
		{"missing UID", []core.NotificationInput{ok, {Message: "x"}}, core.ErrnoInvalidField, 1, "item 1: UID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, sizes, err := db.AddNotifications(ctx, app.ID, tt.items, t0, 0, 0)
			if err == nil {
				t.Fatalf("stored %d items", len(ns))
			}
			if ns != nil || sizes != nil {
				t.Fatalf("results with an error: %v %v", ns, sizes)
			}
			if got := core.ErrnoOf(err); got != tt.wantErrno {
				t.Fatalf("errno %d, want %d (%v)", got, tt.wantErrno, err)
			}
			if r := core.ReasonOf(err); !strings.Contains(r, tt.wantIn) {
				t.Fatalf("reason %q, want it to contain %q", r, tt.wantIn)
			}
			var ie *core.ItemError
			switch {
			case tt.wantIndex < 0 && errors.As(err, &ie):
				t.Fatalf("batch error is an ItemError: %v", err)
			case tt.wantIndex >= 0 && (!errors.As(err, &ie) || ie.Index != tt.wantIndex):
				t.Fatalf("err %v (%T), want an ItemError of index %d", err, err, tt.wantIndex)
			}
			if p, _ := db.PendingNotifications(ctx, "alice", nil); len(p) != 0 {
				t.Fatalf("a rejected batch left %d notifications", len(p))
			}
		})
	}
}

func TestAddNotifications_CapDropsOldest(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	pa := MustGrant(t, db, "alice", app.ID, "A")
	pb := MustGrant(t, db, "alice", app.ID, "B") // same user, other queue

	add := func(puid string, msgs ...string) []int {
		t.Helper()
		items := make([]core.NotificationInput, len(msgs))
		for i, m := range msgs {
			items[i] = core.NotificationInput{PUID: puid, Message: m}
		}
		_, sizes, err := db.AddNotifications(ctx, app.ID, items, t0, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return sizes
	}
	var hundred []string
	for i := range 100 {
		hundred = append(hundred, fmt.Sprint("m", i))
	}
	if sizes := add(pa, hundred...); sizes[99] != 100 {
		t.Fatalf("queue size after 100 = %d", sizes[99])
	}
	add(pb, "b0")
	if sizes := add(pa, "m100"); !reflect.DeepEqual(sizes, []int{100}) {
		t.Fatalf("queue size after the 101st = %v, want [100]", sizes)
	}
	p, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, n := range p {
		if n.PUID == pa {
			msgs = append(msgs, n.Message)
		}
	}
	if len(msgs) != 100 || msgs[0] != "m1" || msgs[99] != "m100" {
		t.Fatalf("queue after the 101st: %d items, %s…%s; want m1…m100", len(msgs), msgs[0], msgs[len(msgs)-1])
	}
	if len(p) != 101 {
		t.Fatalf("the other queue lost items: %d pending in all, want 101", len(p))
	}

	// A batch larger than a small queue keeps its newest items.
	_, sizes, err := db.AddNotifications(ctx, app.ID, []core.NotificationInput{
		{PUID: pb, Message: "c1"}, {PUID: pb, Message: "c2"}, {PUID: pb, Message: "c3"},
	}, t0, 0, 2)
	if err != nil || !reflect.DeepEqual(sizes, []int{2, 2, 2}) {
		t.Fatalf("cap 2: sizes %v, %v", sizes, err)
	}
	p, _ = db.PendingNotifications(ctx, "alice", []core.AppID{app.ID})
	msgs = msgs[:0]
	for _, n := range p {
		if n.PUID == pb {
			msgs = append(msgs, n.Message)
		}
	}
	if !reflect.DeepEqual(msgs, []string{"c2", "c3"}) {
		t.Fatalf("cap 2 queue = %v, want [c2 c3]", msgs)
	}
}

func TestPendingNotifications_ByApp(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	a1 := MustApp(t, db, "dev@example.com")
	a2 := MustApp(t, db, "dev@example.com")
	p1 := MustGrant(t, db, "alice", a1.ID, "A")
	p2 := MustGrant(t, db, "alice", a2.ID, "A")
	for _, x := range []struct {
		app  core.AppID
		puid string
	}{{a1.ID, p1}, {a2.ID, p2}, {a1.ID, p1}} {
		if _, _, err := db.AddNotifications(ctx, x.app, []core.NotificationInput{{PUID: x.puid, Message: "m"}}, t0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		apps []core.AppID
		want []core.AppID
	}{
		{nil, []core.AppID{a1.ID, a2.ID, a1.ID}},
		{[]core.AppID{}, nil},
		{[]core.AppID{a1.ID}, []core.AppID{a1.ID, a1.ID}},
		{[]core.AppID{a2.ID, 999}, []core.AppID{a2.ID}},
	}
	for _, tt := range tests {
		p, err := db.PendingNotifications(ctx, "alice", tt.apps)
		if err != nil {
			t.Fatal(err)
		}
		var got []core.AppID
		for _, n := range p {
			got = append(got, n.AppID)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Pending(apps %v) = %v, want %v", tt.apps, got, tt.want)
		}
	}
}

func TestAckNotifications_OnlyTheUsersOwn(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	pa := MustGrant(t, db, "alice", app.ID, "A")
	pb := MustGrant(t, db, "bob", app.ID, "B")
	ns, _, err := db.AddNotifications(ctx, app.ID, []core.NotificationInput{
		{PUID: pa, Message: "a1"}, {PUID: pa, Message: "a2"}, {PUID: pb, Message: "b1"},
	}, t0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		user string
		ids  []string
		want int
	}{
		{"alice", nil, 0},
		{"alice", []string{ns[2].ID}, 0},              // bob's: ignored
		{"alice", []string{ns[0].ID, "nope"}, 1},      // unknown ignored
		{"alice", []string{ns[0].ID, ns[1].ID}, 1},    // acked twice: once
		{"bob", []string{ns[2].ID, ns[2].ID}, 1},      // repeated id
		{"bob", []string{ns[0].ID, ns[1].ID, "x"}, 0}, // already gone
	}
	for i, s := range steps {
		n, err := db.AckNotifications(ctx, s.user, s.ids)
		if err != nil || n != s.want {
			t.Fatalf("step %d: Ack(%s) = %d, %v; want %d", i, s.user, n, err, s.want)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if p, _ := db.PendingNotifications(ctx, u, nil); len(p) != 0 {
			t.Fatalf("%s still has %d pending", u, len(p))
		}
	}

	// Many ids at once (more than one DELETE's worth).
	items := make([]core.NotificationInput, 100)
	for i := range items {
		items[i] = core.NotificationInput{PUID: pa, Message: "m"}
	}
	var ids []string
	for range 7 {
		ns, _, err := db.AddNotifications(ctx, app.ID, items, t0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			ids = append(ids, n.ID)
		}
	}
	if n, err := db.AckNotifications(ctx, "alice", ids); err != nil || n != 700 {
		t.Fatalf("Ack(700 ids) = %d, %v", n, err)
	}
}

func TestPurgeNotifications(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	pa := MustGrant(t, db, "alice", app.ID, "A")
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Hour)
		if _, _, err := db.AddNotifications(ctx, app.ID, []core.NotificationInput{{PUID: pa, Message: fmt.Sprint(i)}}, at, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	n, err := db.PurgeNotifications(ctx, t0.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Purge = %d, %v; want 2", n, err)
	}
	p, _ := db.PendingNotifications(ctx, "alice", nil)
	if len(p) != 3 || p[0].Message != "2" {
		t.Fatalf("after purge: %+v", p)
	}
	if n, err := db.PurgeNotifications(ctx, t0); err != nil || n != 0 {
		t.Fatalf("Purge again = %d, %v", n, err)
	}
}

// TestAddNotifications_Concurrent has 64 writers share commits: every item
// is stored, none lost, and every caller sees its own batch counted.
func TestAddNotifications_Concurrent(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	app := MustApp(t, db, "dev@example.com")
	const writers, each = 64, 10
	puids := make([]string, 8)
	for i := range puids {
		puids[i] = MustGrant(t, db, fmt.Sprint("user", i), app.ID, "U")
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	ids := make(chan string, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				items := []core.NotificationInput{{PUID: puids[w%len(puids)], Message: fmt.Sprint(w, "/", i)}}
				if w == 0 && i == 0 {
					items = append(items, core.NotificationInput{PUID: "bad", Message: "x"})
				}
				ns, sizes, err := db.AddNotifications(ctx, app.ID, items, t0, 0, 1000)
				if err != nil {
					errs <- err
					continue
				}
				if sizes[0] < 1 {
					errs <- fmt.Errorf("writer %d: queue size %d", w, sizes[0])
				}
				ids <- ns[0].ID
			}
		})
	}
	wg.Wait()
	close(errs)
	close(ids)

	var bad int
	for err := range errs {
		if core.ErrnoOf(err) != core.ErrnoUnknownUID {
			t.Fatal(err)
		}
		bad++
	}
	if bad != 1 {
		t.Fatalf("%d batches failed, want the 1 bad one", bad)
	}
	total := 0
	for i := range puids {
		p, err := db.PendingNotifications(ctx, fmt.Sprint("user", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		total += len(p)
	}
	if want := writers*each - 1; total != want || len(ids) != want {
		t.Fatalf("stored %d, answered %d, want %d", total, len(ids), want)
	}
}
