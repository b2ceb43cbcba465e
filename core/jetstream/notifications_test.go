package jetstream_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
)

// A batch is stored whole, with ids, users and times filled in; each
// user's pending list has their items only, oldest first, under the ids
// the add returned; a filter by app narrows it.
func TestAddThenPending(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	a1 := e.grants.add("alice@example.com", 1, "pa1")
	a2 := e.grants.add("alice@example.com", 2, "pa2")
	b1 := e.grants.add("bob", 1, "pb1")
	now := time.Now().Round(0).UTC()

	items := []core.NotificationInput{
		{PUID: a1, Message: "one"},
		{PUID: b1, Message: "for bob", TTL: 10 * time.Second},
		{PUID: a1, Message: "two", Action: "https://app.example/x"},
	}
	ns, sizes, err := e.n.AddNotifications(ctx, 1, items, now, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sizes, []int{2, 1, 2}) {
		t.Errorf("queue sizes = %v, want [2 1 2]", sizes)
	}
	want := core.Notification{ID: ns[0].ID, AppID: 1, PUID: a1, UserID: "alice@example.com", Message: "one",
		CreatedAt: now, ExpiresAt: now.Add(60 * time.Second)}
	if !reflect.DeepEqual(ns[0], want) {
		t.Errorf("first notification = %+v\nwant %+v", ns[0], want)
	}
	if ns[1].UserID != "bob" || !ns[1].ExpiresAt.Equal(now.Add(10*time.Second)) {
		t.Errorf("bob's = %+v", ns[1])
	}
	if ns[0].ID == ns[2].ID || ns[0].ID >= ns[2].ID {
		t.Errorf("ids not increasing: %v", ids(ns))
	}
	later, _, err := e.n.AddNotifications(ctx, 2, []core.NotificationInput{{PUID: a2, Message: "other app"}}, now.Add(time.Second), 0, 0)
	if err != nil {
		t.Fatal(err)
	}

	p, err := e.n.PendingNotifications(ctx, "alice@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(p), []string{ns[0].ID, ns[2].ID, later[0].ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("alice's pending = %v %v, want %v", got, messages(p), want)
	}
	if !reflect.DeepEqual(p[1], ns[2]) {
		t.Errorf("pending item = %+v\nwant the added %+v", p[1], ns[2])
	}
	p, err = e.n.PendingNotifications(ctx, "alice@example.com", []core.AppID{2})
	if err != nil || !reflect.DeepEqual(messages(p), []string{"other app"}) {
		t.Fatalf("alice's pending for app 2 = %v, %v", messages(p), err)
	}
	p, err = e.n.PendingNotifications(ctx, "bob", nil)
	if err != nil || !reflect.DeepEqual(messages(p), []string{"for bob"}) {
		t.Fatalf("bob's pending = %v, %v", messages(p), err)
	}
	if p, err := e.n.PendingNotifications(ctx, "nobody", nil); err != nil || len(p) != 0 {
		t.Fatalf("nobody's pending = %v, %v", p, err)
	}
}

// A batch with a PUID that is not a grant of the app stores nothing and
// names the first bad item, errno 44: unknown, another app's, or one that
// would address other subjects.
func TestAdd_NotAGrantStoresNothing(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	ok := e.grants.add("alice", 1, "pa")
	other := e.grants.add("alice", 2, "pother")
	for _, bad := range []string{"nope", other, "pa.x", "*", ">"} {
		items := []core.NotificationInput{{PUID: ok, Message: "a"}, {PUID: bad, Message: "b"}}
		_, _, err := e.n.AddNotifications(ctx, 1, items, time.Now(), 0, 0)
		var ie *core.ItemError
		if !errors.As(err, &ie) || ie.Index != 1 || core.ErrnoOf(err) != core.ErrnoUnknownUID {
			t.Fatalf("batch with %q: err = %v, want item 1 errno 44", bad, err)
		}
	}
	if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: ok, Message: strings.Repeat("x", core.MaxNotificationText+1)}}, time.Now(), 0, 0); core.ErrnoOf(err) != core.ErrnoInvalidField {
		t.Fatalf("too long a message: %v, want errno %d", err, core.ErrnoInvalidField)
	}
	if p, err := e.n.PendingNotifications(ctx, "alice", nil); err != nil || len(p) != 0 {
		t.Fatalf("pending after refused batches = %v, %v; want none", messages(p), err)
	}
}

// A full queue drops its oldest for the new ones, in the same write, and
// says it is full.
func TestQueueCapDropsOldest(t *testing.T) {
	e := newEnv(t, 3)
	ctx := ctxT(t)
	pa := e.grants.add("alice", 1, "pa")
	pb := e.grants.add("alice", 1, "pb")
	for _, m := range []string{"1", "2", "3", "4"} {
		if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: m}}, time.Now(), 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	_, sizes, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "5"}, {PUID: pb, Message: "b"}}, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sizes, []int{3, 1}) {
		t.Errorf("sizes = %v, want [3 1]", sizes)
	}
	p, err := e.n.PendingNotifications(ctx, "alice", nil)
	if err != nil || !reflect.DeepEqual(messages(p), []string{"3", "4", "5", "b"}) {
		t.Fatalf("pending = %v, %v; want the newest 3 of pa, then pb's", messages(p), err)
	}
	// A smaller cap (notifications.queue_size changed) applies to every
	// queue at once.
	_, sizes, err = e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "x"}}, time.Now(), 0, 2)
	if err != nil || !reflect.DeepEqual(sizes, []int{2}) {
		t.Fatalf("add under a cap of 2: sizes %v, %v", sizes, err)
	}
	p, err = e.n.PendingNotifications(ctx, "alice", nil)
	if err != nil || !reflect.DeepEqual(messages(p), []string{"5", "b", "x"}) {
		t.Fatalf("pending under a cap of 2 = %v, %v; want [5 b x]", messages(p), err)
	}
}

// An ack deletes the user's own items only; an id of another user, a
// forged one or one already acked deletes nothing.
func TestAck(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice", 1, "pa")
	pb := e.grants.add("bob", 1, "pb")
	ns, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{
		{PUID: pa, Message: "a1"}, {PUID: pa, Message: "a2"}, {PUID: pa, Message: "a3"}, {PUID: pb, Message: "b1"},
	}, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	forged := ns[1].ID[:16] + strings.Repeat("0", len(ns[1].ID)-16)
	if n, err := e.n.AckNotifications(ctx, "bob", []string{ns[0].ID}); err != nil || n != 0 {
		t.Fatalf("bob acking alice's = %d, %v; want 0", n, err)
	}
	if n, err := e.n.AckNotifications(ctx, "alice", []string{forged, "junk", "", ns[3].ID}); err != nil || n != 0 {
		t.Fatalf("forged, junk and bob's ids = %d, %v; want 0", n, err)
	}
	if n, err := e.n.AckNotifications(ctx, "alice", []string{ns[0].ID, ns[2].ID}); err != nil || n != 2 {
		t.Fatalf("ack = %d, %v; want 2", n, err)
	}
	if n, err := e.n.AckNotifications(ctx, "alice", []string{ns[0].ID}); err != nil || n != 0 {
		t.Fatalf("second ack = %d, %v; want 0", n, err)
	}
	p, err := e.n.PendingNotifications(ctx, "alice", nil)
	if err != nil || !reflect.DeepEqual(messages(p), []string{"a2"}) {
		t.Fatalf("pending after ack = %v, %v; want [a2]", messages(p), err)
	}
	if p, _ := e.n.PendingNotifications(ctx, "bob", nil); len(p) != 1 {
		t.Fatalf("bob's pending = %v, want his one", messages(p))
	}
}

// Two devices of one user are pushed the same notifications and ack them
// at the same moment, on two nodes: every ack succeeds, as a second ack
// of an id already gone does (TestAck), and each item is deleted once.
func TestAckOfOneItemByTwoDevicesAtOnce(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice", 1, "pa")
	var in []core.NotificationInput
	for i := range 40 {
		in = append(in, core.NotificationInput{PUID: pa, Message: fmt.Sprint("n", i)})
	}
	ns, _, err := e.n.AddNotifications(ctx, 1, in, time.Now(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var deleted atomic.Int64
	for device := range 4 {
		wg.Go(func() {
			for _, n := range ns {
				d, err := e.n.AckNotifications(ctx, "alice", []string{n.ID})
				if err != nil {
					t.Errorf("device %d acking %s: %v", device, n.Message, err)
				}
				deleted.Add(int64(d))
			}
		})
	}
	wg.Wait()
	if deleted.Load() != int64(len(ns)) {
		t.Errorf("%d deleted by the acks, want %d: each item once", deleted.Load(), len(ns))
	}
	if p, err := e.n.PendingNotifications(ctx, "alice", nil); err != nil || len(p) != 0 {
		t.Fatalf("pending after the acks = %v, %v; want none", messages(p), err)
	}
}

// An ack answered is final for every later read, wherever it is served:
// a connect on another node right after the ack, reading through a
// server whose replica has not applied the delete yet, is not given the
// acked items again.
func TestAckedItemIsNotReadAgainOnAnotherServer(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice", 1, "pa")
	stream, err := e.js.Stream(ctx, jetstream.NotificationStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := e.c.Index(stream.CachedInfo().Cluster.Leader)
	// One node on the leader's server acks; another, on a follower's,
	// reads (a direct get is answered by the replica of the server the
	// client is on).
	nodeOn := func(server int) *jetstream.Notifications {
		nc, err := nats.Connect(e.c.ServerURL(server))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := natsjs.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		n, err := jetstream.OpenNotifications(ctx, js, e.grants, jetstream.NotificationConfig{Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	acker, reader := nodeOn(leader), nodeOn((leader+1)%3)
	// Other users' notifications keep the replicas busy, as a cluster's are.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for w := range 4 {
		puid := e.grants.add(fmt.Sprint("busy", w), 1, fmt.Sprint("pbusy", w))
		wg.Go(func() {
			for ctx.Err() == nil {
				select {
				case <-stop:
					return
				default:
				}
				in := make([]core.NotificationInput, 20)
				for i := range in {
					in[i] = core.NotificationInput{PUID: puid, Message: "busy"}
				}
				acker.AddNotifications(ctx, 1, in, time.Now(), 0, 0)
			}
		})
	}
	for round := range 50 {
		var in []core.NotificationInput
		for i := range 5 {
			in = append(in, core.NotificationInput{PUID: pa, Message: fmt.Sprint(round, "-", i)})
		}
		ns, _, err := acker.AddNotifications(ctx, 1, in, time.Now(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := acker.AckNotifications(ctx, "alice", ids(ns)); err != nil || n != len(ns) {
			t.Fatalf("round %d: ack = %d, %v; want %d", round, n, err, len(ns))
		}
		if p, err := reader.PendingNotifications(ctx, "alice", nil); err != nil || len(p) != 0 {
			t.Fatalf("round %d: pending on another server right after the ack = %v, %v; want none", round, messages(p), err)
		}
	}
}

// The users with queued items are listed (ids with dots and @ survive the
// subject encoding); a revoked PUID's queue empties; a purge removes what
// was created before its time, wherever it is in the stream, and keeps
// the rest.
func TestUsersRevokeAndPurge(t *testing.T) {
	e := newEnv(t, 0)
	ctx := ctxT(t)
	pa := e.grants.add("alice.smith@example.com", 1, "pa")
	pb := e.grants.add("bob", 1, "pb")
	now := time.Now()
	if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "old"}, {PUID: pb, Message: "b"}}, now.Add(-2*time.Hour), 0, 0); err != nil {
		t.Fatal(err)
	}
	users, err := e.n.UsersWithNotifications(ctx)
	if err != nil || !reflect.DeepEqual(users, []string{"alice.smith@example.com", "bob"}) {
		t.Fatalf("UsersWithNotifications = %v, %v", users, err)
	}

	for range 2 { // idempotent
		if err := e.n.DeletePUIDNotifications(ctx, pb); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := e.n.PendingNotifications(ctx, "bob", nil); err != nil || len(p) != 0 {
		t.Fatalf("bob's pending after revoking his PUID = %v, %v", messages(p), err)
	}
	if users, _ := e.n.UsersWithNotifications(ctx); !reflect.DeepEqual(users, []string{"alice.smith@example.com"}) {
		t.Fatalf("users after revoking bob's = %v", users)
	}

	if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "new"}}, now, 0, 0); err != nil {
		t.Fatal(err)
	}
	// Stored after "new", created before it: not in a leading run.
	if _, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: pa, Message: "late"}}, now.Add(-90*time.Minute), 0, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := e.n.PurgeNotifications(ctx, now.Add(-time.Hour)); err != nil || n != 2 {
		t.Fatalf("PurgeNotifications = %d, %v; want 2 (old, late)", n, err)
	}
	p, err := e.n.PendingNotifications(ctx, "alice.smith@example.com", nil)
	if err != nil || !reflect.DeepEqual(messages(p), []string{"new"}) {
		t.Fatalf("pending after purge = %v, %v; want [new]", messages(p), err)
	}
	if n, err := e.n.PurgeNotifications(ctx, now.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("purging all = %d, %v; want 1", n, err)
	}
}
