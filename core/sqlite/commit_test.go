package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// TestGroupCommit queues writes behind a job that holds the committer,
// so that they must share one transaction: the good ones commit together,
// the bad one rolls back alone, and nobody is answered before the commit.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	app := &core.App{Domain: "d", Name: "n", OwnerEmail: "o", VerificationKey: "k"}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := db.UpsertUser(ctx, core.User{ID: "alice"}); err != nil {
		t.Fatal(err)
	}
	g, _, err := db.Grant(ctx, "alice", app.ID, "A", "pa")
	if err != nil {
		t.Fatal(err)
	}

	release := make(chan struct{})
	held := make(chan struct{})
	go db.write(ctx, func(*writeTx) error {
		close(held)
		<-release
		return nil
	})
	<-held
	commits0, _ := db.CommitStats()

	batches := [][]core.NotificationInput{
		{{PUID: g.PUID, Message: "1"}},
		{{PUID: g.PUID, Message: "2"}, {PUID: "nope", Message: "x"}},
		{{PUID: g.PUID, Message: "3"}, {PUID: g.PUID, Message: "4"}},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	answered := make(chan int, len(batches))
	for i, b := range batches {
		wg.Go(func() {
			_, _, errs[i] = db.AddNotifications(ctx, app.ID, b, time.Now(), 0, 0)
			answered <- i
		})
	}
	for len(db.jobs) < len(batches) {
		time.Sleep(time.Millisecond)
	}
	select {
	case i := <-answered:
		t.Fatalf("batch %d answered while the committer was held", i)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	wg.Wait()

	var ie *core.ItemError
	if errs[0] != nil || errs[2] != nil || !errors.As(errs[1], &ie) || ie.Index != 1 {
		t.Fatalf("errs = %v", errs)
	}
	commits, _ := db.CommitStats()
	if commits-commits0 != 2 {
		t.Fatalf("%d commits for the held job and three queued batches, want 2", commits-commits0)
	}
	p, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, n := range p {
		msgs = append(msgs, n.Message)
	}
	slices.Sort(msgs) // the three callers raced to the queue
	if !slices.Equal(msgs, []string{"1", "3", "4"}) {
		t.Fatalf("stored %v, want [1 3 4]", msgs)
	}
}

// TestCommit_PanicDoesNotStopCommitter: a write that panics fails alone.
func TestCommit_PanicDoesNotStopCommitter(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.write(context.Background(), func(*writeTx) error { panic("boom") }); err == nil {
		t.Fatal("a panicking write succeeded")
	}
	if err := db.UpsertUser(context.Background(), core.User{ID: "u"}); err != nil {
		t.Fatalf("write after a panic: %v", err)
	}
}

// TestCommit_GroupThenFailingJob: a job that fails after writing, in a
// commit where merged notification batches have already written, loses
// its own writes and not theirs.
func TestCommit_GroupThenFailingJob(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice")
	send, release := holdCommitter(t, db, nil)
	res := make(chan error, 3)
	for range 2 {
		send(func() {
			_, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: p["alice"], Message: "kept"}}, time.Now(), 0, 100)
			res <- err
		})
	}
	boom := errors.New("boom")
	send(func() {
		res <- db.write(ctx, func(tx *writeTx) error {
			if _, err := tx.Exec(`INSERT INTO users (id, email, created_at) VALUES ('ghost', '', 0)`); err != nil {
				return err
			}
			return boom
		})
	})
	release()
	var failed int
	for range 3 {
		if err := <-res; errors.Is(err, boom) {
			failed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d jobs failed, want the one", failed)
	}
	if _, err := db.User(ctx, "ghost"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the failed job's user: %v", err)
	}
	if pend, err := db.PendingNotifications(ctx, "alice", nil); err != nil || len(pend) != 2 {
		t.Fatalf("the batches' items: %d, %v; want 2", len(pend), err)
	}
}
