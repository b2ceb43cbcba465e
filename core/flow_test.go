package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/memstore"
)

// windowFixture is a router with a notification window of 3 and one app
// that ann granted.
func windowFixture(t *testing.T) (*core.Router, core.AppID, string) {
	t.Helper()
	keys, _ := core.NewKeyring(make([]byte, 32))
	r := core.NewRouter(memstore.New().Deps(), core.Options{Keys: keys, NotificationWindow: 3, NotificationQueueSize: 1000})
	ctx := context.Background()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := r.RegisterApp(ctx, "dev@beer.example", "beer.example", "Beer", "")
	if err != nil {
		t.Fatal(err)
	}
	r.MarkVerified(ctx, a.ID)
	if _, _, err := r.ActivateApp(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	g, err := r.Grant(ctx, core.Identity{Subject: "ann"}, a.ID, "Ann")
	if err != nil {
		t.Fatal(err)
	}
	return r, a.ID, g.PUID
}

func notify(t *testing.T, r *core.Router, app core.AppID, puid string, msgs ...string) {
	t.Helper()
	items := make([]core.NotificationInput, len(msgs))
	for i, m := range msgs {
		items[i] = core.NotificationInput{PUID: puid, Message: m}
	}
	if _, _, err := r.Notify(context.Background(), app, items); err != nil {
		t.Fatal(err)
	}
}

func connectAnn(t *testing.T, r *core.Router, app core.AppID, device string) (*core.Session, *deviceSink) {
	t.Helper()
	sink := newDeviceSink()
	s, _, err := r.Connect(context.Background(), core.ConnectRequest{Identity: core.Identity{Subject: "ann"}, DeviceID: device, AppIDs: []core.AppID{app}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	return s, sink
}

func wantMessages(t *testing.T, got []core.Notification, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("pushed %v, want %v", messagesOf(got), want)
	}
	for i := range want {
		if got[i].Message != want[i] {
			t.Fatalf("pushed %v, want %v", messagesOf(got), want)
		}
	}
}

func messagesOf(ns []core.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Message)
	}
	return out
}

func idsOf(ns []core.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func TestWindowHoldsTheBacklog(t *testing.T) {
	r, app, puid := windowFixture(t)
	ctx := context.Background()
	notify(t, r, app, puid, "1", "2", "3", "4", "5", "6", "7")
	s, sink := connectAnn(t, r, app, "phone")
	if err := r.PushPending(ctx, s); err != nil {
		t.Fatal(err)
	}
	first := sink.drain()
	wantMessages(t, first, "1", "2", "3")

	// One ack frees one place; an ack of nothing pushed frees none.
	if err := r.Ack(ctx, s, []string{first[0].ID, "no-such-id"}); err != nil {
		t.Fatal(err)
	}
	wantMessages(t, sink.drain(), "4")
	if err := r.Ack(ctx, s, idsOf(first[1:])); err != nil {
		t.Fatal(err)
	}
	next := sink.drain()
	wantMessages(t, next, "5", "6")
	s2, sink2 := connectAnn(t, r, app, "laptop") // each session has its own window
	r.PushPending(ctx, s2)
	wantMessages(t, sink2.drain(), "4", "5", "6")
}

func TestWindowHoldsLiveNotifications(t *testing.T) {
	r, app, puid := windowFixture(t)
	ctx := context.Background()
	s, sink := connectAnn(t, r, app, "phone")
	r.PushPending(ctx, s)
	notify(t, r, app, puid, "1", "2")
	live := sink.drain()
	wantMessages(t, live, "1", "2")
	notify(t, r, app, puid, "3", "4")
	notify(t, r, app, puid, "5")
	more := sink.drain()
	wantMessages(t, more, "3") // the window is full: 4 and 5 wait in the store
	if err := r.Ack(ctx, s, idsOf(append(live, more...))); err != nil {
		t.Fatal(err)
	}
	rest := sink.drain()
	wantMessages(t, rest, "4", "5")
	if err := r.Ack(ctx, s, idsOf(rest)); err != nil {
		t.Fatal(err)
	}
	notify(t, r, app, puid, "6")
	wantMessages(t, sink.drain(), "6")
}

// Notifications stored while the device acks, from many goroutines, all
// arrive, and never more than the window wait unacked. (Delivery is at
// least once: a live push that loses the race with a refill may bring one
// again, which the device acks again.)
func TestWindowUnderConcurrentNotifies(t *testing.T) {
	r, app, puid := windowFixture(t)
	ctx := context.Background()
	var mu sync.Mutex
	var unacked []string
	seen := make(map[string]bool)
	pushed := make(chan struct{}, 1)
	sink := &funcSink{send: func(ns []core.Notification) {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range ns {
			seen[n.Message] = true
			unacked = append(unacked, n.ID)
		}
		if len(unacked) > 3 {
			t.Errorf("%d unacked, window 3", len(unacked))
		}
		select {
		case pushed <- struct{}{}:
		default:
		}
	}}
	s, _, err := r.Connect(ctx, core.ConnectRequest{Identity: core.Identity{Subject: "ann"}, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				notify(t, r, app, puid, fmt.Sprintf("w%d-%d", w, i))
			}
		}()
	}
	deadline := time.After(10 * time.Second)
	for {
		mu.Lock()
		batch := unacked
		unacked = nil
		total := len(seen)
		mu.Unlock()
		if total == writers*each && len(batch) == 0 {
			break
		}
		if len(batch) > 0 {
			if err := r.Ack(ctx, s, batch); err != nil {
				t.Fatal(err)
			}
			continue
		}
		select {
		case <-pushed:
		case <-deadline:
			t.Fatalf("%d of %d delivered", total, writers*each)
		}
	}
	wg.Wait()
}

type funcSink struct {
	send func([]core.Notification)
}

func (f *funcSink) SendNotifications(ns []core.Notification) { f.send(ns) }
func (f *funcSink) Close(core.Errno)                         {}
