package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/presence-service/presence/core"
)

// openQueues opens a database with one app and the given users, each
// granted the app; it returns the PUIDs by user.
func openQueues(t *testing.T, users ...string) (*DB, core.AppID, map[string]string) {
	t.Helper()
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "presence.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	app := &core.App{Domain: "d", Name: "n", OwnerEmail: "o", VerificationKey: "k"}
	if err := db.CreateApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	puids := map[string]string{}
	for _, u := range users {
		if err := db.UpsertUser(ctx, core.User{ID: u}); err != nil {
			t.Fatal(err)
		}
		g, _, err := db.Grant(ctx, u, app.ID, "S", "p-"+u)
		if err != nil {
			t.Fatal(err)
		}
		puids[u] = g.PUID
	}
	return db, app.ID, puids
}

// indexState reads the queue index from inside a write: the live seqs
// of each queue that has any, and its counters.
func indexState(t *testing.T, db *DB) (queues map[string][]int64, grantReads, loads int) {
	t.Helper()
	queues = map[string][]int64{}
	err := db.write(context.Background(), func(tx *writeTx) error {
		for p, q := range tx.queues.queues {
			if len(q.seqs) > 0 {
				queues[p] = slices.Clone(q.seqs)
			}
		}
		grantReads, loads = tx.queues.grantReads, tx.queues.loads
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return queues, grantReads, loads
}

// checkIndex fails unless the queue index is the table's truth: every
// row whose grant exists in its PUID's queue, in seq order, and nothing
// else (a dropped row is deleted by the write that drops it); and the
// users with items.
func checkIndex(t *testing.T, db *DB, step string) {
	t.Helper()
	got, _, _ := indexState(t, db)
	var rows []struct {
		Seq  int64  `db:"seq"`
		PUID string `db:"puid"`
	}
	if err := db.rdb.Select(&rows, `SELECT seq, puid FROM notifications
		WHERE puid IN (SELECT puid FROM grants) ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int64{}
	for _, r := range rows {
		want[r.PUID] = append(want[r.PUID], r.Seq)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: index holds %v, the table %v", step, got, want)
	}
	var users []string
	if err := db.rdb.Select(&users, `SELECT DISTINCT user_id FROM notifications
		WHERE puid IN (SELECT puid FROM grants) ORDER BY user_id`); err != nil {
		t.Fatal(err)
	}
	have, _ := db.UsersWithNotifications(context.Background())
	slices.Sort(have)
	if fmt.Sprint(have) != fmt.Sprint(users) {
		t.Fatalf("%s: users with items %v, the table %v", step, have, users)
	}
}

func add(t *testing.T, db *DB, app core.AppID, queueSize int, puids ...string) ([]core.Notification, []int) {
	t.Helper()
	items := make([]core.NotificationInput, len(puids))
	for i, p := range puids {
		items[i] = core.NotificationInput{PUID: p, Message: fmt.Sprint("m", i)}
	}
	ns, sizes, err := db.AddNotifications(context.Background(), app, items, time.Now(), 0, queueSize)
	if err != nil {
		t.Fatal(err)
	}
	return ns, sizes
}

// TestQueueIndex_StaysRight runs every write that changes a queue and
// checks after each that the index is the tables' truth, that the sizes
// AddNotifications reports are right, and that a reopened database loads
// the same index.
func TestQueueIndex_StaysRight(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice", "bob", "carol")
	a, b, c := p["alice"], p["bob"], p["carol"]

	ns, sizes := add(t, db, app, 5, a, a, b)
	if fmt.Sprint(sizes) != "[2 2 1]" {
		t.Fatalf("sizes = %v", sizes)
	}
	checkIndex(t, db, "first add")

	// Cap: 7 more for alice with a queue of 5 drops the oldest.
	_, sizes = add(t, db, app, 5, a, a, a, a, a, a, a)
	if sizes[0] != 5 {
		t.Fatalf("sizes after cap = %v", sizes)
	}
	checkIndex(t, db, "cap")
	if q, _, _ := indexState(t, db); len(q[a]) != 5 {
		t.Fatalf("index has alice at %d, want 5", len(q[a]))
	}

	// Ack: bob's one item, and an id of alice's that the cap already
	// dropped (its row is gone: nothing to ack), and one of
	// another user (ignored).
	n, err := db.AckNotifications(ctx, "bob", []string{ns[2].ID, ns[0].ID})
	if err != nil || n != 1 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	if n, err := db.AckNotifications(ctx, "alice", []string{ns[0].ID}); err != nil || n != 0 {
		t.Fatalf("ack of an item the cap dropped = %d, %v", n, err)
	}
	checkIndex(t, db, "ack")
	pend, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.AckNotifications(ctx, "alice", []string{pend[0].ID, pend[1].ID}); err != nil || n != 2 {
		t.Fatalf("ack alice = %d, %v", n, err)
	}
	checkIndex(t, db, "ack alice")
	if _, sizes = add(t, db, app, 5, a); sizes[0] != 4 {
		t.Fatalf("alice after 2 acks and 1 add: %v, want 4", sizes)
	}

	// A batch that fails (unknown PUID last) changes nothing.
	_, _, err = db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: a, Message: "x"}, {PUID: "nope", Message: "y"}}, time.Now(), 0, 5)
	var ie *core.ItemError
	if !errors.As(err, &ie) || ie.Index != 1 {
		t.Fatalf("bad batch: %v", err)
	}
	checkIndex(t, db, "failed batch")

	// Reopened, the index is loaded from the tables: the same queues,
	// the dropped items still dropped.
	before, _, _ := indexState(t, db)
	db.Close()
	if db, err = Open(db.Path()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if after, _, _ := indexState(t, db); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("reopened: %v, before %v", after, before)
	}
	checkIndex(t, db, "reopen")

	// Revoke: the grant and its queue go; a new grant under another PUID
	// starts empty; the old PUID is unknown.
	add(t, db, app, 5, c, c)
	if err := db.RevokeGrant(ctx, c); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, db, "revoke")
	if _, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: c, Message: "x"}}, time.Now(), 0, 5); !errors.As(err, &ie) {
		t.Fatalf("add to a revoked PUID: %v", err)
	}
	g, _, err := db.Grant(ctx, "carol", app, "S", "p-carol-2")
	if err != nil {
		t.Fatal(err)
	}
	if _, sizes = add(t, db, app, 5, g.PUID); sizes[0] != 1 {
		t.Fatalf("new grant's queue: %v", sizes)
	}

	// Purge: everything created before now goes.
	if n, err := db.PurgeNotifications(ctx, time.Now().Add(time.Hour)); err != nil || n != 4+1 {
		t.Fatalf("purge = %d, %v; want the 5 live items (alice's 4, carol's 1)", n, err)
	}
	checkIndex(t, db, "purge")
	if _, sizes = add(t, db, app, 5, a, b); fmt.Sprint(sizes) != "[1 1]" {
		t.Fatalf("after purge: %v", sizes)
	}
	checkIndex(t, db, "add after purge")
}

// TestQueueIndex_Hits: once a PUID has been written to, its grant comes
// from memory.
func TestQueueIndex_Hits(t *testing.T) {
	db, app, p := openQueues(t, "alice", "bob")
	add(t, db, app, 100, p["alice"], p["bob"])
	_, reads0, loads0 := indexState(t, db)
	for range 40 {
		add(t, db, app, 3, p["alice"])
		add(t, db, app, 100, p["alice"], p["bob"])
	}
	_, reads, loads := indexState(t, db)
	if reads != reads0 || loads != loads0 {
		t.Fatalf("%d grant reads and %d loads for PUIDs already known", reads-reads0, loads-loads0)
	}
	checkIndex(t, db, "hits")
}

// TestQueueIndex_OtherProcess: a change committed through another
// connection (the CLI on the same file) makes the committer load the
// index again.
func TestQueueIndex_OtherProcess(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice")
	a := p["alice"]
	add(t, db, app, 100, a, a, a)

	other, err := sqlx.Open("sqlite3", dsn(db.Path(), nil))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `DELETE FROM notifications WHERE seq IN (SELECT seq FROM notifications LIMIT 2)`); err != nil {
		t.Fatal(err)
	}
	if _, sizes := add(t, db, app, 100, a); sizes[0] != 2 {
		t.Fatalf("size after another connection deleted 2 of 3 and we added 1: %v, want 2", sizes)
	}
	if _, err := other.ExecContext(ctx, `DELETE FROM grants WHERE puid = ?`, a); err != nil {
		t.Fatal(err)
	}
	var ie *core.ItemError
	if _, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: a, Message: "x"}}, time.Now(), 0, 100); !errors.As(err, &ie) {
		t.Fatalf("add to a grant another connection revoked: %v", err)
	}
	checkIndex(t, db, "other process")
}

// TestCommit_LoneJobFailsAlone: a commit of one job runs without a
// savepoint; if the job fails after writing, none of it stays.
func TestCommit_LoneJobFailsAlone(t *testing.T) {
	ctx := context.Background()
	db, _, _ := openQueues(t)
	boom := errors.New("boom")
	err := db.write(ctx, func(tx *writeTx) error {
		if _, err := tx.Exec(`INSERT INTO users (id, email, created_at) VALUES ('ghost', '', 0)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, err := db.User(ctx, "ghost"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the failed job's user: %v", err)
	}
	if err := db.UpsertUser(ctx, core.User{ID: "real"}); err != nil {
		t.Fatal(err)
	}
}

// TestQueries_UsePrimaryKey: the table has no index but seq, so every
// statement of the hot paths must find its rows by seq, never by
// scanning notifications (only loading the index and the hourly purge
// scan, on purpose).
func TestQueries_UsePrimaryKey(t *testing.T) {
	db, _, _ := openQueues(t, "alice")
	for _, q := range []string{
		`SELECT id, app_id, puid, user_id, message, action, created_at, expires_at
			FROM notifications WHERE seq IN (?, ?) AND user_id = ? ORDER BY seq`,
		`SELECT seq, id, puid, user_id FROM notifications WHERE seq IN (?, ?)`,
		`DELETE FROM notifications WHERE seq IN (?, ?)`,
	} {
		args := []any{1, 2, "alice"}
		rows, err := db.rdb.Query(`EXPLAIN QUERY PLAN `+q, args[:strings.Count(q, "?")]...)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, parent, notUsed int
			var detail string
			if err := rows.Scan(&id, &parent, &notUsed, &detail); err != nil {
				t.Fatal(err)
			}
			if f := strings.Fields(detail); len(f) > 1 && f[0] == "SCAN" && f[1] == "notifications" {
				t.Errorf("%s\nplan: %s", q, detail)
			}
		}
		rows.Close()
	}
}

// TestUsersWithNotifications: the users with a queued item.
func TestUsersWithNotifications(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice", "bob", "carol")
	ns, _ := add(t, db, app, 100, p["alice"], p["bob"], p["bob"])
	if n, err := db.AckNotifications(ctx, "alice", []string{ns[0].ID}); err != nil || n != 1 {
		t.Fatalf("ack = %d, %v", n, err)
	}
	users, err := db.UsersWithNotifications(ctx)
	if err != nil || fmt.Sprint(users) != "[bob]" {
		t.Fatalf("UsersWithNotifications = %v, %v; want [bob]", users, err)
	}
}

// TestPurge_Scans: PurgeNotifications scans the table, on purpose. It
// runs hourly, and an index on created_at would cost every notification
// one more B-tree insert (BenchmarkPurgeNotifications measures the scan).
func TestPurge_Scans(t *testing.T) {
	db, _, _ := openQueues(t, "alice")
	var id, parent, notUsed int
	var detail string
	if err := db.rdb.QueryRow(`EXPLAIN QUERY PLAN DELETE FROM notifications WHERE created_at < ?`, 1).
		Scan(&id, &parent, &notUsed, &detail); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(detail, "SCAN notifications") {
		t.Fatalf("purge plan: %s; if it uses an index now, say so in schema.sql", detail)
	}
}

// seqs reads the seqs of puid's queue, oldest first.
func seqs(t *testing.T, db *DB, puid string) []int64 {
	t.Helper()
	var s []int64
	if err := db.rdb.Select(&s, `SELECT seq FROM notifications WHERE puid = ? ORDER BY seq`, puid); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSeq_GrowsAcrossReopens: a user's items stay in order (seq)
// across restarts, across queues, after acks of the newest, and after
// another connection has written.
func TestSeq_GrowsAcrossReopens(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice", "bob")
	a, b := p["alice"], p["bob"]
	path := db.Path()
	var want []string // alice's messages, oldest first
	addA := func(db *DB, msg string) {
		t.Helper()
		if _, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{{PUID: a, Message: msg}}, time.Now(), 0, 100); err != nil {
			t.Fatal(err)
		}
		want = append(want, msg)
	}
	addA(db, "one")
	add(t, db, app, 100, b, b) // seqs of another queue between
	addA(db, "two")
	reopen := func() *DB {
		t.Helper()
		db.Close()
		var err error
		if db, err = Open(path); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	db = reopen()
	addA(db, "three")
	// bob's queue held the greatest seq; acked, the next open must
	// still start above alice's.
	pb, err := db.PendingNotifications(ctx, "bob", nil)
	if err != nil || len(pb) != 2 {
		t.Fatalf("bob: %v, %v", pb, err)
	}
	if n, err := db.AckNotifications(ctx, "bob", []string{pb[0].ID, pb[1].ID}); err != nil || n != 2 {
		t.Fatalf("ack bob: %d, %v", n, err)
	}
	db = reopen()
	addA(db, "four")

	// Another connection stores an item far ahead: the store goes on
	// above it.
	other, err := sqlx.Open("sqlite3", dsn(path, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `INSERT INTO notifications (puid, seq, id, app_id, user_id, message, action, created_at, expires_at)
		VALUES (?, 1000, 'x', ?, 'alice', 'five', '', 0, 0)`, a, int64(app)); err != nil {
		t.Fatal(err)
	}
	want = append(want, "five")
	addA(db, "six")

	s := seqs(t, db, a)
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			t.Fatalf("seqs of alice's queue do not grow: %v", s)
		}
	}
	ns, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range ns {
		got = append(got, n.Message)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alice's items: %v, want %v (seqs %v)", got, want, s)
	}
}

// TestSeq_GroupCommit: batches merged into one commit get seqs in
// their order, items in batch order, and a user's items across queues
// come back oldest first.
func TestSeq_GroupCommit(t *testing.T) {
	ctx := context.Background()
	db, app, p := openQueues(t, "alice")
	a := p["alice"]
	g, _, err := db.Grant(ctx, "alice", app, "T", "p-alice-2")
	if err != nil {
		t.Fatal(err)
	}
	a2 := g.PUID
	// Hold the committer so that the batches queue up and share a commit.
	hold, release := make(chan struct{}), make(chan struct{})
	go db.write(ctx, func(*writeTx) error { close(hold); <-release; return nil })
	<-hold
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			_, _, err := db.AddNotifications(ctx, app, []core.NotificationInput{
				{PUID: a, Message: fmt.Sprint(i, "a")}, {PUID: a2, Message: fmt.Sprint(i, "b")}}, time.Now(), 0, 100)
			errs <- err
		}()
	}
	for len(db.jobs) < 8 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	ns, err := db.PendingNotifications(ctx, "alice", nil)
	if err != nil || len(ns) != 16 {
		t.Fatalf("pending: %d, %v", len(ns), err)
	}
	for i := 0; i < 16; i += 2 {
		// Each batch's two items are neighbours, a before b.
		if ns[i].Message[:1] != ns[i+1].Message[:1] || ns[i].Message[1:] != "a" || ns[i+1].Message[1:] != "b" {
			t.Fatalf("items out of order at %d: %v", i, ns)
		}
	}
}
