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
// when queueSize <= 0); the oldest are deleted in the same transaction.
// It returns one Notification per item, in order (ID, times and UserID
// filled in; an item that its own batch pushed out of a full queue is
// returned all the same), and each item's queue size after the batch.
//
// The write shares its commit with concurrent writers (group commit) and
// returns only once that commit is durable.
func (db *DB) AddNotifications(ctx context.Context, app core.AppID, items []core.NotificationInput, now time.Time, defaultTTL time.Duration, queueSize int) ([]core.Notification, []int, error) {
	if len(items) == 0 {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: no items")
	}
	if len(items) > core.MaxNotificationBatch {
		return nil, nil, core.Errorf(core.ErrnoInvalidField, "batch: %d items, at most %d", len(items), core.MaxNotificationBatch)
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
			return nil, nil, itemError(i, core.ErrnoOf(err), core.ReasonOf(err))
		}
		ttl := it.TTL
		if ttl == 0 {
			ttl = defaultTTL
		}
		ns[i] = core.Notification{
			ID:        newID(now),
			AppID:     app,
			PUID:      it.PUID,
			Message:   it.Message,
			Action:    it.Action,
			CreatedAt: now,
			ExpiresAt: now.Add(ttl),
		}
	}

	sizes := make([]int, len(items))
	j := &job{ctx: ctx, res: make(chan error, 1),
		add: &addJob{app: app, ns: ns, queueSize: queueSize, sizes: sizes}}
	j.fn = func(tx *writeTx) (err error) {
		q := tx.queues
		// Check every PUID before writing anything: a bad batch costs
		// reads only, and mostly not even those (queueCache).
		touched := make([]queueTouch, 0, 1)
		defer func() {
			// A write that failed after the checks (a grant gone behind
			// the cache's back would fail the INSERT's foreign key):
			// forgetting is always safe, and heals the cache.
			if _, bad := err.(*core.ItemError); err != nil && !bad {
				for _, t := range touched {
					q.forget(t.puid)
				}
			}
		}()
		at := make([]int, len(ns)) // item → its PUID in touched
		for i := range ns {
			p := ns[i].PUID
			k := slices.IndexFunc(touched, func(t queueTouch) bool { return t.puid == p })
			if k < 0 {
				e, err := q.grant(tx, p)
				if err != nil {
					return err
				}
				if e == nil || e.app != app {
					return itemError(i, core.ErrnoUnknownUID, "unknown UID")
				}
				if err := q.count(tx, p, e); err != nil {
					return err
				}
				k = len(touched)
				touched = append(touched, queueTouch{puid: p, e: e, size: e.size})
			}
			touched[k].size++
			at[i] = k
			ns[i].UserID = touched[k].e.user
		}
		// One statement for the batch, prepared once per row count.
		args := make([]any, 0, 8*len(ns))
		for i := range ns {
			n := &ns[i]
			args = append(args, n.ID, int64(app), n.PUID, n.UserID, n.Message, n.Action,
				n.CreatedAt.UnixNano(), n.ExpiresAt.UnixNano())
		}
		if _, err := tx.execP(insertNotifications(len(ns)), args...); err != nil {
			return err
		}
		// Cap each queue touched: delete its oldest beyond queueSize.
		for k := range touched {
			t := &touched[k]
			if t.size <= queueSize {
				continue
			}
			over := t.size - queueSize
			res, err := tx.execP(trimQueue, t.puid, over)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); int(n) != over {
				// The cache was wrong (it cannot be, see queueCache):
				// do it the slow way rather than keep a wrong size.
				if t.size, err = capQueue(tx, t.puid, queueSize); err != nil {
					return err
				}
				continue
			}
			t.size = queueSize
		}
		for i := range ns {
			sizes[i] = touched[at[i]].size
		}
		// Only now, the job being done, does the cache learn the sizes.
		for _, t := range touched {
			t.e.size = t.size
		}
		return nil
	}
	// The committer runs fn, or merges the batch with the others of its
	// commit (addGroup): the same rows either way.
	err := db.submit(j)
	if err != nil {
		if _, ok := err.(*core.ItemError); ok {
			return nil, nil, err
		}
		return nil, nil, mapErr(err, fmt.Sprintf("sqlite: add notifications of app %d", app))
	}
	return ns, sizes, nil
}

// trimQueue deletes the oldest items of a queue: the PUID, how many.
const trimQueue = `DELETE FROM notifications WHERE seq IN
	(SELECT seq FROM notifications WHERE puid = ? ORDER BY seq LIMIT ?)`

// queueTouch is one PUID of a batch: its cache entry and its queue's
// size as the batch leaves it.
type queueTouch struct {
	puid string
	e    *queueEntry
	size int
}

// capQueue counts puid's queue and trims it to queueSize, reading
// everything from the database; it returns the size left.
func capQueue(tx *writeTx, puid string, queueSize int) (int, error) {
	var c int
	if err := tx.Get(&c, `SELECT COUNT(*) FROM notifications WHERE puid = ?`, puid); err != nil {
		return 0, err
	}
	if c > queueSize {
		if _, err := tx.Exec(`DELETE FROM notifications WHERE puid = ? AND seq <=
			(SELECT seq FROM notifications WHERE puid = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
			puid, puid, queueSize); err != nil {
			return 0, err
		}
		c = queueSize
	}
	return c, nil
}

// insertQueries holds the INSERT of 1 to MaxNotificationBatch rows, built once.
var insertQueries = func() []string {
	q := make([]string, core.MaxNotificationBatch+1)
	const head = `INSERT INTO notifications (id, app_id, puid, user_id, message, action, created_at, expires_at) VALUES `
	values := head
	for n := 1; n <= core.MaxNotificationBatch; n++ {
		if n > 1 {
			values += ","
		}
		values += "(?,?,?,?,?,?,?,?)"
		q[n] = values
	}
	return q
}()

func insertNotifications(n int) string { return insertQueries[n] }

// newID is a notification id: 128 random bits, URL-safe, after the
// creation time in milliseconds as 12 hex digits (34 characters in all).
// The time prefix is for the database, not for users: ids that grow with
// time land at the end of the UNIQUE index on id, so a commit dirties a
// page or two of it instead of one page per item (measured: 6× fewer
// bytes written per 100-item commit than with purely random ids).
func newID(now time.Time) string {
	var b [22]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixMilli())<<16) // 48 bits of ms in b[0:6]
	rand.Read(b[6:])                                               // never fails (crypto/rand, Go ≥ 1.24)
	return hex.EncodeToString(b[:6]) + base64.RawURLEncoding.EncodeToString(b[6:])
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

// userQueues selects the rows of one user's queues (its argument is the
// user id) through the user's grants and notifications_puid. There is no
// index on notifications(user_id): it cost every notification one more
// B-tree insert and delete, and one more page written at random, about a
// third of the WAL (measured: 187k page writes → 114k for 200k items of
// BenchmarkAddNotificationBatch100Parallel), while a user has only a few
// grants to go through. Every row has a live grant (revoking deletes the
// queue), so no row is missed.
const userQueues = `puid IN (SELECT puid FROM grants WHERE user_id = ?)`

// PendingNotifications lists the user's queued notifications, oldest
// first, for the given apps: all apps when apps is nil, none when it is
// empty but not nil.
func (db *DB) PendingNotifications(ctx context.Context, userID string, apps []core.AppID) ([]core.Notification, error) {
	if apps != nil && len(apps) == 0 {
		return nil, nil
	}
	// By the user's grants, then each grant's queue (notifications_puid):
	// there is no index on notifications(user_id), see userQueues.
	q := `SELECT id, app_id, puid, user_id, message, action, created_at, expires_at
		FROM notifications WHERE ` + userQueues + ` AND user_id = ? ORDER BY seq`
	args := []any{userID, userID}
	if apps != nil {
		var err error
		q, args, err = sqlx.In(`SELECT id, app_id, puid, user_id, message, action, created_at, expires_at
			FROM notifications WHERE puid IN (SELECT puid FROM grants WHERE user_id = ? AND app_id IN (?))
			AND user_id = ? ORDER BY seq`, userID, apps, userID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: pending notifications: %w", err)
		}
	}
	var rows []notificationRow
	if err := db.rdb.SelectContext(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("sqlite: pending notifications: %w", err)
	}
	ns := make([]core.Notification, len(rows))
	for i, r := range rows {
		ns[i] = core.Notification{
			ID:        r.ID,
			AppID:     core.AppID(r.AppID),
			PUID:      r.PUID,
			UserID:    r.UserID,
			Message:   r.Message,
			Action:    r.Action,
			CreatedAt: time.Unix(0, r.CreatedAt).UTC(),
			ExpiresAt: time.Unix(0, r.ExpiresAt).UTC(),
		}
	}
	return ns, nil
}

// ackChunk bounds the ids of one DELETE, well under SQLite's limit on
// bound parameters.
const ackChunk = 500

// AckNotifications deletes the user's notifications with these ids and
// returns how many went; ids that are unknown, already acked or another
// user's are ignored.
func (db *DB) AckNotifications(ctx context.Context, userID string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	var deleted int
	err := db.write(ctx, func(tx *writeTx) error {
		// RETURNING says which queues shrank, for the committer's
		// queue sizes (queueCache).
		var puids []string
		for start := 0; start < len(ids); start += ackChunk {
			chunk := ids[start:min(start+ackChunk, len(ids))]
			q, args, err := sqlx.In(`DELETE FROM notifications WHERE `+userQueues+`
				AND user_id = ? AND id IN (?) RETURNING puid`, userID, userID, chunk)
			if err != nil {
				return err
			}
			var gone []string
			if err := tx.Select(&gone, q, args...); err != nil {
				return err
			}
			puids = append(puids, gone...)
		}
		deleted = len(puids)
		tx.queues.acked(puids)
		return nil
	})
	if err != nil {
		return 0, mapErr(err, "sqlite: ack notifications")
	}
	return deleted, nil
}

// PurgeNotifications deletes the notifications created before the time,
// acked or not (notifications' maximum age), and returns how many went.
func (db *DB) PurgeNotifications(ctx context.Context, createdBefore time.Time) (int, error) {
	var deleted int64
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec(`DELETE FROM notifications WHERE created_at < ?`, nanos(createdBefore))
		if err != nil {
			return err
		}
		if deleted, err = res.RowsAffected(); deleted > 0 {
			tx.queues.forgetSizes()
		}
		return err
	})
	if err != nil {
		return 0, mapErr(err, "sqlite: purge notifications")
	}
	return int(deleted), nil
}
