package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/presence-service/presence/core"
)

// Defaults for the arguments of AddNotifications that a caller leaves at
// zero (PROTOCOL §9: notifications.default_ttl and queue_size).
const (
	DefaultTTL       = 60 * time.Second
	DefaultQueueSize = 100
)

// AddNotifications stores the batch in one transaction or not at all. The
// items are checked first (core.CheckNotification), then, inside the
// write, each PUID must be a grant of app: a PUID of another app is as
// unknown as one that never was, so apps stay isolated. A bad item fails
// the whole batch with a *core.ItemError naming its index (errno 3 for a
// bad field, 44 for an unknown UID, reason "item N: …").
//
// Each PUID's queue keeps the newest queueSize items (DefaultQueueSize
// when queueSize <= 0); the oldest are dropped in the same transaction
// (their rows deleted by primary key).
// It returns one Notification per item, in order (ID, times and UserID
// filled in; an item that its own batch pushed out of a full queue is
// returned all the same), and each item's queue size after the batch.
//
// The write shares its commit with concurrent writers (group commit) and
// returns only once that commit is durable (core.NotificationQueues).
func (db *DB) AddNotifications(ctx context.Context, app core.AppID, items []core.NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) ([]core.Notification, []int, error) {
	add, err := newAdd(ctx, app, items, now, defaultTTL, queueSize)
	if err != nil {
		return nil, nil, err
	}
	add.j.res = make(chan error, 1)
	if err := db.submit(&add.j); err != nil {
		return nil, nil, addError(app, err)
	}
	return add.a.ns, add.a.sizes, nil
}

// pendingAdd is one AddNotifications batch on its way to the committer:
// the job and its batch in one allocation.
type pendingAdd struct {
	j job
	a addJob
}

// newAdd checks the batch and builds its rows; the committer merges them
// with the others of its commit (addGroup), or runs them alone (run): the
// same rows either way.
func newAdd(ctx context.Context, app core.AppID, items []core.NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) (*pendingAdd, error) {
	if len(items) == 0 {
		return nil, core.Errorf(core.ErrnoInvalidField, "batch: no items")
	}
	if len(items) > core.MaxNotificationBatch {
		return nil, core.Errorf(core.ErrnoInvalidField, "batch: %d items, at most %d", len(items), core.MaxNotificationBatch)
	}
	if defaultTTL <= 0 {
		defaultTTL = DefaultTTL
	}
	if queueSize <= 0 {
		queueSize = DefaultQueueSize
	}
	now = now.Round(0).UTC() // as it reads back from the database
	ns := make([]core.Notification, len(items))
	for i, it := range items {
		if err := core.CheckNotification(it); err != nil {
			return nil, itemError(i, core.ErrnoOf(err), core.ReasonOf(err))
		}
		ttl := it.TTL
		if ttl == 0 {
			ttl = defaultTTL
		}
		ns[i] = core.Notification{
			AppID:     app,
			PUID:      it.PUID,
			Message:   it.Message,
			Action:    it.Action,
			CreatedAt: now,
			ExpiresAt: now.Add(ttl),
		}
	}
	add := &pendingAdd{
		j: job{ctx: ctx},
		a: addJob{app: app, ns: ns, queueSize: queueSize, sizes: make([]int, len(items))},
	}
	add.j.add = &add.a
	return add, nil
}

// addError is what a caller of AddNotifications hears of a failed write.
func addError(app core.AppID, err error) error {
	if _, ok := err.(*core.ItemError); ok {
		return err
	}
	return mapErr(err, fmt.Sprintf("sqlite: add notifications of app %d", app))
}

// insertQueries holds the INSERT of 1 to MaxNotificationBatch rows, built once.
var insertQueries = func() []string {
	q := make([]string, core.MaxNotificationBatch+1)
	const head = `INSERT INTO notifications (seq, id, app_id, puid, user_id, message, action, created_at, expires_at) VALUES `
	values := head
	for n := 1; n <= core.MaxNotificationBatch; n++ {
		if n > 1 {
			values += ","
		}
		values += "(?,?,?,?,?,?,?,?,?)"
		q[n] = values
	}
	return q
}()

func insertNotifications(n int) string { return insertQueries[n] }

// newID is the id of the notification stored at seq: seq in 12 hex
// digits, then 128 random bits, URL-safe (34 characters in all). The seq
// lets an ack find its row by the primary key (the table has no other
// index); the random part makes the id unguessable, and an ack must match
// it whole.
func newID(seq int64) string {
	var b [22]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seq)<<16) // 48 bits of seq in b[0:6]
	rand.Read(b[6:])                                   // never fails (crypto/rand, Go ≥ 1.24)
	var id [idLen]byte
	hex.Encode(id[:12], b[:6])
	base64.RawURLEncoding.Encode(id[12:], b[6:])
	return string(id[:]) // one allocation, where the two encodings' strings and their sum were three
}

// idLen is the length of every id newID makes.
const idLen = 34

// seqOfID is the seq an id names; false if it is no id of newID's.
func seqOfID(id string) (int64, bool) {
	if len(id) != idLen {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[2:], []byte(id[:12])); err != nil {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[:])), true
}

// notificationRow is a row of notifications as sqlx scans it.
type notificationRow struct {
	ID        string `db:"id"`
	AppID     int64  `db:"app_id"`
	PUID      string `db:"puid"`
	UserID    string `db:"user_id"`
	Message   string `db:"message"`
	Action    string `db:"action"`
	CreatedAt int64  `db:"created_at"`
	ExpiresAt int64  `db:"expires_at"`
}

// seqChunk bounds the seqs of one statement, well under SQLite's limit on
// bound parameters.
const seqChunk = 500

// PendingNotifications lists the user's queued notifications, oldest
// first, for the given apps: all apps when apps is nil, none when it is
// empty but not nil. The queue index says which rows (by seq); the rows
// are read by their primary key.
func (db *DB) PendingNotifications(ctx context.Context, userID string, apps []core.AppID) ([]core.Notification, error) {
	if apps != nil && len(apps) == 0 {
		return nil, nil
	}
	seqs := db.queues.userItems(userID, apps)
	var ns []core.Notification
	for start := 0; start < len(seqs); start += seqChunk {
		q, args, err := sqlx.In(`SELECT id, app_id, puid, user_id, message, action, created_at, expires_at
			FROM notifications WHERE seq IN (?) AND user_id = ? ORDER BY seq`,
			seqs[start:min(start+seqChunk, len(seqs))], userID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: pending notifications: %w", err)
		}
		var rows []notificationRow
		if err := db.rdb.SelectContext(ctx, &rows, q, args...); err != nil {
			return nil, fmt.Errorf("sqlite: pending notifications: %w", err)
		}
		for _, r := range rows {
			ns = append(ns, core.Notification{
				ID:        r.ID,
				AppID:     core.AppID(r.AppID),
				PUID:      r.PUID,
				UserID:    r.UserID,
				Message:   r.Message,
				Action:    r.Action,
				CreatedAt: time.Unix(0, r.CreatedAt).UTC(),
				ExpiresAt: time.Unix(0, r.ExpiresAt).UTC(),
			})
		}
	}
	return ns, nil
}

// AckNotifications deletes the user's notifications with these ids and
// returns how many went; ids that are unknown, already acked, dropped or
// another user's are ignored.
func (db *DB) AckNotifications(ctx context.Context, userID string, ids []string) (int, error) {
	want := make(map[int64]string, len(ids))
	for _, id := range ids {
		if seq, ok := seqOfID(id); ok {
			want[seq] = id
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	seqs := make([]int64, 0, len(want))
	for seq := range want {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	var deleted int
	err := db.write(ctx, func(tx *writeTx) error {
		var gone []seqOf
		var goneSeqs []int64
		for start := 0; start < len(seqs); start += seqChunk {
			q, args, err := sqlx.In(`SELECT seq, id, puid, user_id FROM notifications WHERE seq IN (?)`,
				seqs[start:min(start+seqChunk, len(seqs))])
			if err != nil {
				return err
			}
			var rows []struct {
				Seq    int64  `db:"seq"`
				ID     string `db:"id"`
				PUID   string `db:"puid"`
				UserID string `db:"user_id"`
			}
			if err := tx.Select(&rows, q, args...); err != nil {
				return err
			}
			for _, r := range rows {
				// The whole id, the user, and a live item (not one a
				// full queue dropped, whose row waits for collection).
				if r.ID == want[r.Seq] && r.UserID == userID && tx.queues.live(r.PUID, r.Seq) {
					gone = append(gone, seqOf{r.Seq, r.PUID})
					goneSeqs = append(goneSeqs, r.Seq)
				}
			}
		}
		if err := deleteSeqs(tx, goneSeqs); err != nil {
			return err
		}
		tx.queues.removeSeqs(gone)
		deleted = len(gone)
		return nil
	})
	if err != nil {
		return 0, mapErr(err, "sqlite: ack notifications")
	}
	return deleted, nil
}

// deleteSeqs deletes these rows of notifications.
func deleteSeqs(tx *writeTx, seqs []int64) error {
	for start := 0; start < len(seqs); start += seqChunk {
		q, args, err := sqlx.In(`DELETE FROM notifications WHERE seq IN (?)`, seqs[start:min(start+seqChunk, len(seqs))])
		if err != nil {
			return err
		}
		if _, err := tx.Exec(q, args...); err != nil {
			return err
		}
	}
	return nil
}

// PurgeNotifications deletes the notifications created before the time,
// acked or not (notifications' maximum age), and returns how many went.
func (db *DB) PurgeNotifications(ctx context.Context, createdBefore time.Time) (int, error) {
	var deleted int
	err := db.write(ctx, func(tx *writeTx) error {
		var gone []seqOf
		rows, err := tx.c.QueryContext(context.Background(),
			`DELETE FROM notifications WHERE created_at < ? RETURNING seq, puid`, nanos(createdBefore))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var it seqOf
			if err := rows.Scan(&it.seq, &it.puid); err != nil {
				return err
			}
			gone = append(gone, it)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// The index drops them only once the job has succeeded.
		tx.queues.removeSeqs(gone)
		deleted = len(gone)
		return nil
	})
	if err != nil {
		return 0, mapErr(err, "sqlite: purge notifications")
	}
	return deleted, nil
}
