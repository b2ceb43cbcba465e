package sqlite

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/presence-service/presence/core"
)

// holdCommitter makes the committer wait inside a job until release is
// closed, so that the writes sent meanwhile share the next commit, in
// the order they were sent (each send waits for the queue to grow).
func holdCommitter(t *testing.T, db *DB, pre func(tx *writeTx) error) (send func(func()), release func()) {
	t.Helper()
	held, rel := make(chan struct{}), make(chan struct{})
	go db.write(context.Background(), func(tx *writeTx) error {
		close(held)
		<-rel
		if pre != nil {
			return pre(tx)
		}
		return nil
	})
	<-held
	send = func(f func()) {
		n := len(db.jobs)
		go f()
		for len(db.jobs) == n {
			time.Sleep(time.Millisecond)
		}
	}
	return send, func() { close(rel) }
}

type addResult struct {
	ns    []core.Notification
	sizes []int
	err   error
}

// TestAddGroup: batches of one commit merged into one write report the
// sizes and leave the rows that running them one after the other would.
func TestAddGroup(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice", "bob")
	a, b := p["alice"], p["bob"]
	other := &core.App{Domain: "d2", Name: "n2", OwnerEmail: "o", VerificationKey: "k"}
	if err := db.CreateApp(ctx, other); err != nil {
		t.Fatal(err)
	}
	commits0, _ := db.CommitStats()

	batches := []struct {
		app   core.AppID
		puids []string
		size  int
	}{
		{app, []string{a, a}, 3},
		{app, []string{a, b, "nope"}, 3}, // unknown PUID: fails alone
		{app, []string{a, a, b}, 3},      // alice 4 > 3: her oldest goes
		{other.ID, []string{b}, 3},       // a PUID of another app
		{app, []string{b}, 1},            // a smaller cap for bob
	}
	res := make([]chan addResult, len(batches))
	send, release := holdCommitter(t, db, nil)
	for i, bt := range batches {
		res[i] = make(chan addResult, 1)
		send(func() {
			items := make([]core.NotificationInput, len(bt.puids))
			for k, pu := range bt.puids {
				items[k] = core.NotificationInput{PUID: pu, Message: fmt.Sprintf("%d.%d", i, k)}
			}
			ns, sizes, err := db.AddNotifications(ctx, bt.app, items, time.Now(), 0, bt.size)
			res[i] <- addResult{ns, sizes, err}
		})
	}
	release()
	got := make([]addResult, len(batches))
	for i := range res {
		got[i] = <-res[i]
	}
	var ie *core.ItemError
	for i, want := range []string{"[2 2]", "", "[3 3 1]", "", "[1]"} {
		if want == "" {
			if !errors.As(got[i].err, &ie) {
				t.Fatalf("batch %d: err = %v, want an ItemError", i, got[i].err)
			}
			continue
		}
		if got[i].err != nil || fmt.Sprint(got[i].sizes) != want {
			t.Fatalf("batch %d: sizes %v, %v; want %s", i, got[i].sizes, got[i].err, want)
		}
	}
	if !errors.As(got[1].err, &ie) || ie.Index != 2 || !errors.As(got[3].err, &ie) || ie.Index != 0 {
		t.Fatalf("item errors: %v, %v", got[1].err, got[3].err)
	}
	if got[2].ns[0].UserID != "alice" || got[2].ns[2].UserID != "bob" {
		t.Fatalf("user ids: %+v", got[2].ns)
	}
	if commits, _ := db.CommitStats(); commits-commits0 != 2 {
		t.Fatalf("%d commits, want 2 (the held job's, and the batches')", commits-commits0)
	}
	for user, want := range map[string]string{"alice": "[0.1 2.0 2.1]", "bob": "[4.0]"} {
		pend, err := db.PendingNotifications(ctx, user, nil)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, n := range pend {
			msgs = append(msgs, n.Message)
		}
		if fmt.Sprint(msgs) != want {
			t.Fatalf("%s holds %v, want %s", user, msgs, want)
		}
	}
	checkIndex(t, db, "group")
}

// TestAddGroup_FallsBack: when the merged write fails, the batches run
// one by one, and only the one at fault fails.
func TestAddGroup_FallsBack(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice", "bob")
	a, b := p["alice"], p["bob"]
	add(t, db, app, 100, a, b) // both grants now known

	// Bob's rows cannot go in (a trigger of this connection refuses
	// them), so the merged INSERT fails.
	send, release := holdCommitter(t, db, func(tx *writeTx) error {
		_, err := tx.Exec(`CREATE TEMP TRIGGER no_bob BEFORE INSERT ON notifications
			WHEN NEW.puid = '` + b + `' BEGIN SELECT RAISE(ABORT, 'no bob'); END`)
		return err
	})
	t.Cleanup(func() {
		db.write(ctx, func(tx *writeTx) error { _, err := tx.Exec(`DROP TRIGGER temp.no_bob`); return err })
	})
	res := make([]chan error, 3)
	for i, pu := range []string{a, b, a} {
		res[i] = make(chan error, 1)
		send(func() {
			_, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: pu, Message: fmt.Sprint(i)}}, time.Now(), 0, 100)
			res[i] <- err
		})
	}
	release()
	for i, wantErr := range []bool{false, true, false} {
		if err := <-res[i]; (err != nil) != wantErr {
			t.Fatalf("batch %d: err = %v", i, err)
		}
	}
	pend, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(pend) != 3 {
		t.Fatalf("alice holds %d, %v; want 3", len(pend), err)
	}
	checkIndex(t, db, "fallback")
}
