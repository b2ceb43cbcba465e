package sqlite

import (
	"database/sql"
	"errors"

	"github.com/presence-service/presence/core"
)

// maxCachedQueues bounds the committer's queueCache: past it, an entry
// picked at random makes room (a miss costs two small reads, so the
// bound only has to keep memory flat, not to be clever).
const maxCachedQueues = 1 << 16

// queueCache is what the committer knows of the notification queues, so
// that a notification write need not ask the database every time: per
// PUID, its grant (user and app) and, once counted, the size of its queue.
// Measured on the notification benchmarks, the grant SELECT and the
// COUNT were two of the four statements of every one-item write.
//
// Only the committer goroutine touches it, so it has no lock. It must
// only ever hold what the database holds in the current transaction:
//
//   - a write applies its changes only when its job function succeeds
//     (AddNotifications, AckNotifications), so a job rolled back to its
//     savepoint leaves nothing behind;
//   - a failed commit resets it (commit's fail);
//   - RevokeGrant forgets its PUID; PurgeNotifications forgets every size;
//   - another process (the CLI on the same file) is seen through
//     PRAGMA data_version, read after each BEGIN IMMEDIATE: when it moved,
//     the cache is reset.
//
// A write that deletes grants or notifications in any other way must
// forget what it changes, as those do.
type queueCache struct {
	m           map[string]*queueEntry
	dataVersion int64
	versionSeen bool

	loads, counts int // reads of grants and of queue sizes, for the tests
}

// queueEntry is one PUID's grant and queue size; size is -1 until counted.
type queueEntry struct {
	user string
	app  core.AppID
	size int
}

func newQueueCache() *queueCache {
	return &queueCache{m: make(map[string]*queueEntry)}
}

// reset forgets everything.
func (q *queueCache) reset() { clear(q.m) }

// forget forgets one PUID (its grant was revoked).
func (q *queueCache) forget(puid string) { delete(q.m, puid) }

// forgetSizes forgets every queue size, keeping the grants.
func (q *queueCache) forgetSizes() {
	for _, e := range q.m {
		e.size = -1
	}
}

// checkDataVersion resets the cache when another connection has
// committed since the last check. Called inside the write transaction,
// after BEGIN IMMEDIATE: no one else can commit until it ends.
func (q *queueCache) checkDataVersion(tx *writeTx) error {
	var v int64
	if err := tx.getP(`PRAGMA data_version`, nil, &v); err != nil {
		return err
	}
	if q.versionSeen && v != q.dataVersion {
		q.reset()
	}
	q.dataVersion, q.versionSeen = v, true
	return nil
}

// grant returns the entry of puid, reading its grant on a miss; nil if
// there is no such grant (not cached: the grant may be created later).
func (q *queueCache) grant(tx *writeTx, puid string) (*queueEntry, error) {
	if e, ok := q.m[puid]; ok {
		return e, nil
	}
	q.loads++
	var (
		user string
		app  int64
	)
	err := tx.getP(`SELECT user_id, app_id FROM grants WHERE puid = ?`, []any{puid}, &user, &app)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(q.m) >= maxCachedQueues {
		for k := range q.m { // map order is random: a random victim
			delete(q.m, k)
			break
		}
	}
	e := &queueEntry{user: user, app: core.AppID(app), size: -1}
	q.m[puid] = e
	return e, nil
}

// count fills in e.size from the database if it is not known yet. The
// count is of the current transaction, so it may be kept even if the
// caller's job then fails: its savepoint brings the queue back to it.
func (q *queueCache) count(tx *writeTx, puid string, e *queueEntry) error {
	if e.size >= 0 {
		return nil
	}
	q.counts++
	var n int
	if err := tx.getP(`SELECT COUNT(*) FROM notifications WHERE puid = ?`, []any{puid}, &n); err != nil {
		return err
	}
	e.size = n
	return nil
}

// acked lowers the known sizes of the queues that lost these items (one
// PUID per item deleted).
func (q *queueCache) acked(puids []string) {
	for _, p := range puids {
		if e, ok := q.m[p]; ok && e.size > 0 {
			e.size--
		} else if ok {
			e.size = -1 // cannot be: count again
		}
	}
}
