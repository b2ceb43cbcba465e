package core_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// sharedQueue is a core.SharedStatusQueue in memory whose takes the test
// may hold at their start, to route updates while one is under way.
type sharedQueue struct {
	mu       sync.Mutex // guards: m, gate, failPuts
	m        map[core.AppID]map[string]core.StatusUpdate
	gate     chan struct{} // when set, a take waits for it to close
	failPuts int           // so many puts fail before they succeed again
	started  chan struct{} // a take began (when gate is set)
}

func newSharedQueue() *sharedQueue {
	return &sharedQueue{m: make(map[core.AppID]map[string]core.StatusUpdate), started: make(chan struct{}, 1)}
}

func (q *sharedQueue) put(app core.AppID, us []core.StatusUpdate, keepNewer bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.m[app] == nil {
		q.m[app] = make(map[string]core.StatusUpdate)
	}
	for _, u := range us {
		if w, ok := q.m[app][u.PUID]; !keepNewer || !ok || !u.At.Before(w.At) {
			q.m[app][u.PUID] = u
		}
	}
}

func (q *sharedQueue) SaveWaiting(_ context.Context, app core.AppID, us []core.StatusUpdate) error {
	q.put(app, us, true)
	return nil
}

func (q *sharedQueue) PutWaiting(_ context.Context, app core.AppID, us []core.StatusUpdate) error {
	q.mu.Lock()
	failing := q.failPuts > 0
	if failing {
		q.failPuts--
	}
	q.mu.Unlock()
	if failing {
		return errors.New("no JetStream leader")
	}
	q.put(app, us, false)
	return nil
}

func (q *sharedQueue) DropWaiting(_ context.Context, app core.AppID) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.m, app)
	return nil
}

func (q *sharedQueue) TakeWaiting(ctx context.Context, app core.AppID, since time.Time) ([]core.StatusUpdate, error) {
	q.mu.Lock()
	gate := q.gate
	q.mu.Unlock()
	if gate != nil {
		q.started <- struct{}{}
		<-gate
	}
	all, _ := q.AllWaiting(ctx, since)
	q.mu.Lock()
	delete(q.m, app)
	q.mu.Unlock()
	return all[app], nil
}

func (q *sharedQueue) AllWaiting(_ context.Context, since time.Time) (map[core.AppID][]core.StatusUpdate, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make(map[core.AppID][]core.StatusUpdate)
	for app, m := range q.m {
		for _, u := range slices.Collect(maps.Values(m)) {
			if !u.At.Before(since) {
				out[app] = append(out[app], u)
			}
		}
	}
	return out, nil
}

// nodeQueue is one node's side of a sharedQueue: it counts the node's
// puts per app.
type nodeQueue struct {
	*sharedQueue
	mu   sync.Mutex // guards: puts
	puts map[core.AppID]int
}

func (q *nodeQueue) PutWaiting(ctx context.Context, app core.AppID, us []core.StatusUpdate) error {
	q.mu.Lock()
	q.puts[app]++
	q.mu.Unlock()
	return q.sharedQueue.PutWaiting(ctx, app, us)
}

func (q *nodeQueue) putsOf(app core.AppID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.puts[app]
}

// waiting is what waits for app, as "puid=status message".
func (q *sharedQueue) waiting(app core.AppID) []string {
	all, _ := q.AllWaiting(context.Background(), time.Time{})
	var out []string
	for _, u := range all[app] {
		out = append(out, u.PUID+"="+u.Status.String()+" "+u.Message)
	}
	slices.Sort(out)
	return out
}

// sharedNode is one router on a shared queue in memory, and an active
// app of it.
func sharedNode(t *testing.T) (*sharedQueue, *core.Router, core.AppID) {
	t.Helper()
	q := newSharedQueue()
	n := newNodes(t, core.Options{HeartbeatInterval: 20 * time.Millisecond})
	n.deps.Statuses = q
	r := n.start()
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	return q, r, activeApp(t, r)
}

// sharedUser grants app to name@example.com, connects a device of the
// user to r, and returns the PUID and a way to set the device's status.
func sharedUser(t *testing.T, r *core.Router, app core.AppID, name string) (string, func(core.Status, string)) {
	t.Helper()
	ctx := context.Background()
	who := core.Identity{Subject: name + "@example.com", Email: name + "@example.com"}
	g, err := r.Grant(ctx, who, app, name)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := r.Connect(ctx, core.ConnectRequest{Identity: who, DeviceID: "phone", AppIDs: []core.AppID{app}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	return g.PUID, func(st core.Status, msg string) {
		t.Helper()
		if err := r.SetStatus(s, core.Presence{Status: st, Message: msg}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// With a cluster's shared queue, the first channel gets what waited
// there, and an update routed while it takes the queue follows it: a
// PUID whose older status waited gets the live one alone, never the
// older after it.
func TestSharedQueueLiveUpdatesFollowTheTake(t *testing.T) {
	ctx := context.Background()
	q, r, app := sharedNode(t)
	set := map[string]func(core.Status, string){}
	puid := map[string]string{}
	for _, name := range []string{"ann", "bob"} {
		puid[name], set[name] = sharedUser(t, r, app, name)
	}
	set["ann"](core.Online, "old")
	set["bob"](core.Online, "bob")
	want := []string{puid["ann"] + "=online old", puid["bob"] + "=online bob"}
	slices.Sort(want)
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(q.waiting(app), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shared queue holds %q, want %q", q.waiting(app), want)
		}
	}

	gate := make(chan struct{})
	q.mu.Lock()
	q.gate = gate
	q.mu.Unlock()
	channel := newAppSink()
	attached := make(chan error, 1)
	go func() {
		_, err := r.AttachApp(ctx, app, channel, core.AttachOptions{})
		attached <- err
	}()
	<-q.started
	set["ann"](core.Unavailable, "live")
	close(gate)
	if err := <-attached; err != nil {
		t.Fatal(err)
	}
	channel.expect(t, puid["bob"], core.Online, "bob")
	channel.expect(t, puid["ann"], core.Unavailable, "live")
	select {
	case u := <-channel.updates:
		t.Fatalf("after the live update the channel got %+v", u)
	default: // AttachApp sends the queue and what it held back before it returns
	}
	if w := q.waiting(app); len(w) != 0 {
		t.Fatalf("after the take the shared queue holds %q", w)
	}
}

// A node that starts while another holds a channel of an app hears so
// (the presence sync) before it writes anything, and writes none of that
// app's updates: the holder's channel had them. Another app's, held
// nowhere, it writes.
func TestSharedQueueStartingNodeLearnsHeldApps(t *testing.T) {
	ctx := context.Background()
	q := newSharedQueue()
	n := newNodes(t, core.Options{HeartbeatInterval: 20 * time.Millisecond})
	n.deps.Statuses = q
	a := n.start()
	t.Cleanup(func() { a.Shutdown(ctx) })
	held, away := activeApp(t, a), activeApp(t, a)
	channel := newAppSink()
	if _, err := a.AttachApp(ctx, held, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}

	bQueue := &nodeQueue{sharedQueue: q, puts: make(map[core.AppID]int)}
	n.deps.Statuses = bQueue
	b := n.start()
	t.Cleanup(func() { b.Shutdown(ctx) })
	ann := core.Identity{Subject: "ann@example.com", Email: "ann@example.com"}
	gHeld, err := b.Grant(ctx, ann, held, "ann")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Grant(ctx, ann, away, "ann"); err != nil {
		t.Fatal(err)
	}
	s, _, err := b.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "phone", AppIDs: []core.AppID{held}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetStatus(s, core.Presence{Status: core.Online, Message: "to the holder"}, nil); err != nil {
		t.Fatal(err)
	}
	channel.expect(t, gHeld.PUID, core.Online, "to the holder")
	// Parked on b after the first: once b has written the second, it has
	// written the first, if it ever would.
	s2, _, err := b.Connect(ctx, core.ConnectRequest{Identity: ann, DeviceID: "laptop", AppIDs: []core.AppID{away}, Sink: newDeviceSink()})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetStatus(s2, core.Presence{Status: core.Unavailable, Message: "to the queue"}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); bQueue.putsOf(away) == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the starting node did not write the update of the app held nowhere")
		}
	}
	if got := bQueue.putsOf(held); got != 0 || len(q.waiting(held)) != 0 {
		t.Fatalf("the starting node wrote %d times for the app a node held (%q waits)", got, q.waiting(held))
	}
}

// A node that had not yet heard that a channel attached may write an
// older step after the take; the next channel gets each PUID's status as
// it is now, never that older step: ann's current status, and bob's
// offline.
func TestSharedQueueLateWriteNeverGoesBack(t *testing.T) {
	ctx := context.Background()
	q, r, app := sharedNode(t)
	puid := map[string]string{}
	for _, name := range []string{"ann", "bob"} {
		var set func(core.Status, string)
		puid[name], set = sharedUser(t, r, app, name)
		set(core.Online, name+" now")
		if name == "bob" {
			set(core.Offline, "")
		}
	}
	want := []string{puid["ann"] + "=online ann now", puid["bob"] + "=offline "}
	slices.Sort(want)
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(q.waiting(app), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shared queue holds %q, want %q", q.waiting(app), want)
		}
	}
	// The late writer's older steps replace what waits.
	long := r.Now().Add(-time.Minute)
	q.PutWaiting(ctx, app, []core.StatusUpdate{
		{PUID: puid["ann"], Status: core.Unavailable, Message: "an older step", At: long},
		{PUID: puid["bob"], Status: core.Online, Message: "an older step", At: long},
	})
	channel := newAppSink()
	if _, err := r.AttachApp(ctx, app, channel, core.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	got := map[string]core.StatusUpdate{}
	for range 2 {
		u := channel.next(t)
		got[u.PUID] = u
	}
	if a, b := got[puid["ann"]], got[puid["bob"]]; a.Status != core.Online || a.Message != "ann now" || b.Status != core.Offline || b.Message != "" {
		t.Fatalf("the channel got ann %+v and bob %+v; want ann online \"ann now\" and bob offline", a, b)
	}
	select {
	case u := <-channel.updates:
		t.Fatalf("and then %+v", u)
	default:
	}
}

// A write to the shared queue that fails (JetStream electing a leader) is
// counted and tried again; what it held, and what was routed meanwhile,
// is written once the queue answers, the newest per PUID.
func TestSharedQueueFailedWriteIsTriedAgain(t *testing.T) {
	q, r, app := sharedNode(t)
	q.mu.Lock()
	q.failPuts = 3
	q.mu.Unlock()
	ann, set := sharedUser(t, r, app, "ann")
	set(core.Online, "first")
	for deadline := time.Now().Add(5 * time.Second); r.Metrics.StatusQueueFailures.Load() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no write failed")
		}
	}
	set(core.Unavailable, "second")
	want := []string{ann + "=unavailable second"}
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(q.waiting(app), want); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shared queue holds %q, want %q", q.waiting(app), want)
		}
	}
	if n := r.Metrics.StatusQueueFailures.Load(); n != 3 {
		t.Fatalf("%d failed writes counted, want 3", n)
	}
}
