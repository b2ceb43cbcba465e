package jetstream_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// queueModel is what PROTOCOL §4 says each queue holds: every item added,
// the oldest dropped past the cap.
type queueModel struct {
	cap  int
	held map[string]int // PUID -> items
}

// add applies a batch and returns the sizes its answer must carry: each
// item's queue after the whole batch.
func (m *queueModel) add(items []core.NotificationInput) []int {
	for _, it := range items {
		m.held[it.PUID] = min(m.held[it.PUID]+1, m.cap)
	}
	sizes := make([]int, len(items))
	for i, it := range items {
		sizes[i] = m.held[it.PUID]
	}
	return sizes
}

// The queue sizes a batch's answer carries are exactly what each queue
// holds after it, capped, whichever way they are read: one queue, one
// user's queues, every queue of the app at once, or queue by queue once
// the stream holds too many queues for the app-wide read; queues of
// another app, and acks, count as they should.
func TestQueueSizesAreExactOnTheCluster(t *testing.T) {
	const queueCap = 5
	e := newEnv(t, queueCap)
	ctx := ctxT(t)
	m := &queueModel{cap: queueCap, held: make(map[string]int)}
	pa := e.grants.add("alice", 1, "pa")
	pa2 := e.grants.add("alice", 1, "pa2") // a second queue of alice's in app 1
	pb := e.grants.add("bob", 1, "pb")
	pc := e.grants.add("carol", 1, "pc")
	other := e.grants.add("alice", 2, "other") // another app's queue of the same user
	add := func(app core.AppID, what string, items ...core.NotificationInput) []core.Notification {
		t.Helper()
		ns, sizes, err := e.n.AddNotifications(ctx, app, items, time.Now(), 0, 0)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if want := m.add(items); !reflect.DeepEqual(sizes, want) {
			t.Fatalf("%s: queue sizes %v, want %v", what, sizes, want)
		}
		return ns
	}
	item := func(puid string) core.NotificationInput { return core.NotificationInput{PUID: puid, Message: "m"} }

	add(2, "other app's queue", item(other), item(other), item(other))
	for round := range 4 { // the cap is reached in the third
		add(1, fmt.Sprintf("one queue, round %d", round), item(pa), item(pa))
		add(1, fmt.Sprintf("one user's queues, round %d", round), item(pa2), item(pa))
		add(1, fmt.Sprintf("three users, round %d", round), item(pb), item(pc), item(pa), item(pb))
	}
	// An ack empties bob's queue by one; the next batch counts it.
	p, err := e.n.PendingNotifications(ctx, "bob", nil)
	if err != nil || len(p) != queueCap {
		t.Fatalf("bob's pending: %d, %v; want %d", len(p), err, queueCap)
	}
	if n, err := e.n.AckNotifications(ctx, "bob", []string{p[0].ID}); err != nil || n != 1 {
		t.Fatalf("ack: %d, %v; want 1 deleted", n, err)
	}
	m.held[pb]--
	add(1, "after bob's ack", item(pc), item(pb))

	// 130 queues of another app: the stream now holds more than an
	// app-wide read of a two-queue batch may return, so each queue is
	// read on its own, and still exactly.
	var many []core.NotificationInput
	for i := range 130 {
		many = append(many, item(e.grants.add(fmt.Sprintf("user%d", i), 3, fmt.Sprintf("p3-%d", i))))
	}
	add(3, "a batch of 100 queues", many[:100]...)
	add(3, "a batch of 30 queues", many[100:]...)
	add(1, "two users in a large stream", item(pb), item(pc))
	add(1, "two users in a large stream, again", item(pc), item(pb), item(pa))
}

// Single items added at once, by many callers, to queues of two apps and
// several users, share their size reads (one read serves every one-queue
// batch waiting on the node) and still get their own queue's exact size:
// each caller owns a queue, so its j-th item finds min(j, cap) there,
// whatever the other queues in the same read hold. Callers sharing one
// queue get sizes between 1 and the cap.
func TestConcurrentSingleItemsGetTheirQueuesSizes(t *testing.T) {
	const queueCap = 5
	e := newEnv(t, queueCap)
	ctx := ctxT(t)
	// 100 queues of a third app first: early reads, of few waiters, are
	// made queue by queue; later ones, of many, app-wide.
	var many []core.NotificationInput
	for i := range 100 {
		many = append(many, core.NotificationInput{PUID: e.grants.add(fmt.Sprintf("many%d", i), 3, fmt.Sprintf("m%d", i)), Message: "m"})
	}
	if _, _, err := e.n.AddNotifications(ctx, 3, many, time.Now(), 0, 0); err != nil {
		t.Fatal(err)
	}
	const owners, adds = 40, 8
	shared := e.grants.add("shared", 1, "shared")
	var wg sync.WaitGroup
	for w := range owners {
		app := core.AppID(1 + w%2)
		puid := e.grants.add(fmt.Sprintf("user%d", w%7), app, fmt.Sprintf("p%d", w))
		wg.Go(func() {
			for j := 1; j <= adds; j++ {
				_, sizes, err := e.n.AddNotifications(ctx, app, []core.NotificationInput{{PUID: puid, Message: "m"}}, time.Now(), 0, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if want := min(j, queueCap); sizes[0] != want {
					t.Errorf("%s, item %d: queue_size %d, want %d", puid, j, sizes[0], want)
				}
			}
		})
		wg.Go(func() {
			_, sizes, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: shared, Message: "m"}}, time.Now(), 0, 0)
			if err != nil {
				t.Error(err)
			} else if sizes[0] < 1 || sizes[0] > queueCap {
				t.Errorf("shared queue: queue_size %d, want 1 to %d", sizes[0], queueCap)
			}
		})
	}
	wg.Wait()
}
