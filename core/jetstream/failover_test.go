package jetstream_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
	"github.com/presence-service/presence/core/jetstream"
)

// Writers keep adding two-item batches while the server leading the
// stream is killed. After it: every item answered OK is pending; every
// pending item is of a batch that was sent, and whole (a batch whose
// answer was lost in the failover may be stored, never half of one); an
// item acked before the kill does not come back.
func TestNothingAcknowledgedIsLostWhenAServerDies(t *testing.T) {
	// Queues longer than the test can fill: none of its items is dropped
	// by the cap.
	const queueSize = 100000
	e := newEnv(t, queueSize)
	ctx := ctxT(t)
	const writers = 4
	puids := make([]string, writers)
	for w := range writers {
		puids[w] = e.grants.add(fmt.Sprintf("user%d", w), 1, fmt.Sprintf("p%d", w))
	}

	// One acked item per user, before anything happens.
	acked := make([]string, writers)
	for w := range writers {
		ns, _, err := e.n.AddNotifications(ctx, 1, []core.NotificationInput{{PUID: puids[w], Message: "acked"}}, time.Now(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := e.n.AckNotifications(ctx, fmt.Sprintf("user%d", w), []string{ns[0].ID}); err != nil || n != 1 {
			t.Fatalf("ack: %d, %v", n, err)
		}
		acked[w] = ns[0].ID
	}

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex                  // guards: ok, failed
		ok     = make([][]string, writers) // ids answered OK
		failed int                         // batches answered with an error
		stop   = make(chan struct{})
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				items := []core.NotificationInput{
					{PUID: puids[w], Message: fmt.Sprintf("%d-a", i)},
					{PUID: puids[w], Message: fmt.Sprintf("%d-b", i)},
				}
				ns, _, err := e.n.AddNotifications(context.Background(), 1, items, time.Now(), 0, 0)
				mu.Lock()
				if err != nil {
					failed++
				} else {
					ok[w] = append(ok[w], ns[0].ID, ns[1].ID)
				}
				mu.Unlock()
			}
		})
	}
	okCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ids := range ok {
			n += len(ids)
		}
		return n
	}
	waitFor(t, "writes before the kill", func() bool { return okCount() >= 40 })

	stream, err := e.js.Stream(ctx, jetstream.NotificationStream)
	if err != nil {
		t.Fatal(err)
	}
	leader := e.c.Index(stream.CachedInfo().Cluster.Leader)
	e.c.Kill(leader)
	killedAt := okCount()
	waitFor(t, "writes after the kill", func() bool { return okCount() >= killedAt+40 })
	close(stop)
	wg.Wait()
	t.Logf("killed %s, the stream's leader; %d items answered OK, %d batches failed", e.c.Name(leader), okCount(), failed)
	for w := range writers {
		if len(ok[w])+2*failed > queueSize {
			t.Fatalf("user%d wrote past the queue's cap: the test cannot tell a loss from a drop", w)
		}
	}

	for w := range writers {
		p, err := e.n.PendingNotifications(ctx, fmt.Sprintf("user%d", w), nil)
		if err != nil {
			t.Fatal(err)
		}
		have := make(map[string]bool, len(p))
		halves := make(map[string]int) // batch number -> items pending
		for _, n := range p {
			have[n.ID] = true
			halves[strings.TrimSuffix(strings.TrimSuffix(n.Message, "-a"), "-b")]++
		}
		if have[acked[w]] {
			t.Errorf("user%d: the item acked before the kill is pending again", w)
		}
		missing := 0
		for _, id := range ok[w] {
			if !have[id] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("user%d: %d of the %d items answered OK are not pending after the kill", w, missing, len(ok[w]))
		}
		for batch, n := range halves {
			if n != 2 {
				t.Errorf("user%d: batch %s has %d of its 2 items pending", w, batch, n)
			}
		}
	}

	// The stream is back to three current replicas once the server is.
	e.c.Restart(leader)
	waitFor(t, "three current replicas", func() bool {
		info, err := stream.Info(ctx)
		if err != nil || len(info.Cluster.Replicas) != 2 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A batch in flight to the stream's leader when that leader is lost
// (its server killed, or the leadership moved to another server) is
// answered OK, with the ids and queue sizes of the one copy stored: its
// second try after the leader change is either stored, or refused as a
// duplicate of the first when that one was stored. Four writers add
// two-item batches, each to a queue of its own, around the loss.
func TestABatchInFlightToALostLeaderIsAnsweredOK(t *testing.T) {
	for _, how := range []string{"killed", "moved"} {
		t.Run(how, func(t *testing.T) {
			const queueSize = 100000 // no item dropped by the cap
			e := newEnv(t, queueSize)
			ctx := ctxT(t)
			const writers = 4
			puids := make([]string, writers)
			for w := range writers {
				puids[w] = e.grants.add(fmt.Sprintf("user%d", w), 1, fmt.Sprintf("p%d", w))
			}
			type answer struct {
				ns    []core.Notification
				sizes []int
				took  time.Duration
				err   error
			}
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex // guards: answers
				answers = make([][]answer, writers)
				stop    = make(chan struct{})
			)
			for w := range writers {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						items := []core.NotificationInput{
							{PUID: puids[w], Message: fmt.Sprintf("%d-a", i)},
							{PUID: puids[w], Message: fmt.Sprintf("%d-b", i)},
						}
						start := time.Now()
						ns, sizes, err := e.n.AddNotifications(context.Background(), 1, items, time.Now(), 0, 0)
						mu.Lock()
						answers[w] = append(answers[w], answer{ns, sizes, time.Since(start), err})
						mu.Unlock()
					}
				})
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, a := range answers {
					n += len(a)
				}
				return n
			}
			waitFor(t, "writes before the loss", func() bool { return count() >= 40 })
			leader := e.c.StreamLeader(jetstream.NotificationStream)
			if leader < 0 {
				t.Fatal("no leader")
			}
			if how == "killed" {
				e.c.Kill(leader)
			} else {
				e.c.MoveStreamLeader(jetstream.NotificationStream, (leader+1)%3)
			}
			lostAt := count()
			waitFor(t, "writes after the loss", func() bool { return count() >= lostAt+40 })
			close(stop)
			wg.Wait()

			var slowest time.Duration
			for w := range writers {
				want := make(map[string]string) // id -> message, of every OK
				for k, a := range answers[w] {
					slowest = max(slowest, a.took)
					if a.err != nil {
						t.Errorf("user%d: batch %d answered %v after %v", w, k, a.err, a.took.Round(time.Millisecond))
						continue
					}
					for i, n := range a.ns {
						want[n.ID] = n.Message
						if n.Message != fmt.Sprintf("%d-%c", k, 'a'+i) {
							t.Errorf("user%d: batch %d item %d is %q", w, k, i, n.Message)
						}
						// One writer per queue, nothing acked: the queue
						// holds every item answered before, and this one.
						if a.sizes[i] != 2*k+2 {
							t.Errorf("user%d: batch %d item %d: queue_size %d, want %d", w, k, i, a.sizes[i], 2*k+2)
						}
					}
				}
				p, err := e.n.PendingNotifications(ctx, fmt.Sprintf("user%d", w), nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(p) != len(want) {
					t.Errorf("user%d: %d items pending, %d answered OK", w, len(p), len(want))
				}
				for _, n := range p {
					if m, ok := want[n.ID]; !ok || m != n.Message {
						t.Errorf("user%d: pending %s %q was not answered OK with that id", w, n.ID, n.Message)
					}
				}
			}
			t.Logf("%s %s, the stream's leader; %d batches, the slowest answered in %v", how, e.c.Name(leader), count(), slowest.Round(time.Millisecond))
		})
	}
}
