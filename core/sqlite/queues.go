package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/presence-service/presence/core"
)

// maxIdleGrants bounds the grants the index keeps for PUIDs whose queue
// is empty (a cache: a miss costs one small read). Past it, all of them
// are forgotten at once, which keeps the cost per write constant on
// average.
const maxIdleGrants = 1 << 16

// queueIndex is the committer's map of the notification queues. The
// table is a log with no index but its seq (schema.sql); this says which
// rows make up whose queue:
//
//   - for every PUID with a queued item, its grant (user, app) and the
//     seqs of its live items, oldest first. It is complete: a live row of
//     notifications is always in it, so readers find a user's items by
//     seq alone;
//   - for some PUIDs with none, just their grant, so that a write need
//     not read grants every time;
//   - the next seq to hand out.
//
// Only the committer changes it, and only once a write's statements have
// all succeeded: a job rolled back to its savepoint leaves nothing behind.
// When a whole transaction fails, or another process has committed to the
// file (PRAGMA data_version moved, checked after each BEGIN IMMEDIATE), the
// committer loads it again from the table before its next write (stale).
// Readers (PendingNotifications, UsersWithNotifications) take mu for
// reading; the committer takes it to change the maps.
//
// It may run a little ahead of the database: between a write's job and
// its COMMIT, a reader can see seqs whose rows it cannot see yet. Readers
// read rows by seq, so they then simply find fewer rows, as if they had
// read a moment earlier.
type queueIndex struct {
	mu     sync.RWMutex        // guards: queues, users (and the queue structs in them)
	queues map[string]*queue   // by PUID
	users  map[string][]*queue // the non-empty queues, by user

	// The committer's alone.
	idle        int   // entries of queues with no items
	nextSeq     int64 // past every row
	stale       bool  // load before the next write
	dataVersion int64
	versionSeen bool

	grantReads, loads int // for the tests
}

// queue is one PUID's notification queue.
type queue struct {
	puid string
	user string
	app  core.AppID
	seqs []int64 // live items, oldest first
}

func newQueueIndex() *queueIndex {
	return &queueIndex{
		queues: make(map[string]*queue),
		users:  make(map[string][]*queue),
		stale:  true,
	}
}

// prepare readies the index for this transaction's writes: it notices
// another process's commits and loads the index if it is stale. Called
// by the committer after each BEGIN IMMEDIATE: no one else can commit
// until the transaction ends. Before the schema exists (the first
// Migrate) there is nothing to load.
func (x *queueIndex) prepare(tx *writeTx) error {
	var v int64
	if err := tx.scanRow(`PRAGMA data_version`, nil, &v); err != nil {
		return err
	}
	if x.versionSeen && v != x.dataVersion {
		x.stale = true
	}
	x.dataVersion, x.versionSeen = v, true
	if !x.stale {
		x.forgetIdle()
		return nil
	}
	var tables int
	if err := tx.scanRow(`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'notifications'`, nil, &tables); err != nil {
		return err
	}
	if tables == 0 {
		return nil // stays stale: Migrate creates it (and loads the index after)
	}
	return x.load(tx)
}

// load reads the whole index from the tables: one pass over
// notifications in seq order, each row with its grant. A row whose grant
// is gone (only another process deleting grants behind the server's back
// leaves one) is in no queue: no one can take it, the purge deletes it.
func (x *queueIndex) load(tx *writeTx) error {
	x.loads++
	queues := make(map[string]*queue)
	users := make(map[string][]*queue)
	rows, err := tx.c.QueryContext(context.Background(), `SELECT n.seq, n.puid, g.app_id, g.user_id
		FROM notifications n JOIN grants g ON g.puid = n.puid
		ORDER BY n.seq`)
	if err != nil {
		return fmt.Errorf("sqlite: load queues: %w", err)
	}
	defer rows.Close()
	var (
		seq        int64
		puid, user string
		app        int64
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &puid, &app, &user); err != nil {
			return fmt.Errorf("sqlite: load queues: %w", err)
		}
		q := queues[puid]
		if q == nil {
			q = &queue{puid: puid, user: user, app: core.AppID(app)}
			queues[puid] = q
			users[user] = append(users[user], q)
		}
		q.seqs = append(q.seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: load queues: %w", err)
	}
	var next int64
	if err := tx.scanRow(`SELECT COALESCE(MAX(seq), 0) + 1 FROM notifications`, nil, &next); err != nil {
		return fmt.Errorf("sqlite: load queues: %w", err)
	}
	x.mu.Lock()
	x.queues, x.users = queues, users
	x.mu.Unlock()
	x.idle, x.nextSeq, x.stale = 0, next, false
	return nil
}

// grant returns the queue of puid, reading its grant on a miss (the
// entry then has no items); nil if there is no such grant (not kept: the
// grant may be created later).
func (x *queueIndex) grant(tx *writeTx, puid string) (*queue, error) {
	if q, ok := x.queues[puid]; ok { // the committer is the only writer
		return q, nil
	}
	x.grantReads++
	var (
		user string
		app  int64
	)
	err := tx.scanRow(`SELECT user_id, app_id FROM grants WHERE puid = ?`, []any{puid}, &user, &app)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	q := &queue{puid: puid, user: user, app: core.AppID(app)}
	x.mu.Lock()
	x.queues[puid] = q
	x.idle++
	x.mu.Unlock()
	return q, nil
}

// forgetIdle forgets the grants of empty queues once there are more than
// maxIdleGrants. Only between transactions: a write in progress may hold
// an empty queue that it is about to fill.
func (x *queueIndex) forgetIdle() {
	if x.idle <= maxIdleGrants {
		return
	}
	x.mu.Lock()
	for p, q := range x.queues {
		if len(q.seqs) == 0 {
			delete(x.queues, p)
		}
	}
	x.mu.Unlock()
	x.idle = 0
}

// setSeqs gives q its new list of live items, keeping users and idle
// right as it empties or fills. The caller holds mu.
func (x *queueIndex) setSeqs(q *queue, seqs []int64) {
	was, is := len(q.seqs) > 0, len(seqs) > 0
	q.seqs = seqs
	switch {
	case is && !was:
		x.users[q.user] = append(x.users[q.user], q)
		x.idle--
	case was && !is:
		us := slices.DeleteFunc(x.users[q.user], func(e *queue) bool { return e == q })
		if len(us) == 0 {
			delete(x.users, q.user)
		} else {
			x.users[q.user] = us
		}
		x.idle++
	}
}

// removeSeqs takes these live items out of their queues (acked or
// purged); seqs not in the index are ignored.
func (x *queueIndex) removeSeqs(items []seqOf) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, it := range items {
		q := x.queues[it.puid]
		if q == nil {
			continue
		}
		if i, ok := slices.BinarySearch(q.seqs, it.seq); ok {
			x.setSeqs(q, slices.Delete(q.seqs, i, i+1))
		}
	}
}

// drop forgets puid and its items (its grant was revoked).
func (x *queueIndex) drop(puid string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.queues[puid]
	if q == nil {
		return
	}
	x.setSeqs(q, nil)
	delete(x.queues, puid)
	x.idle--
}

// live says whether seq is a live item of puid's queue.
func (x *queueIndex) live(puid string, seq int64) bool {
	q := x.queues[puid]
	if q == nil {
		return false
	}
	_, ok := slices.BinarySearch(q.seqs, seq)
	return ok
}

// seqOf is one row: its seq and its PUID.
type seqOf struct {
	seq  int64
	puid string
}

// userItems returns the seqs of the user's live items in the queues of
// these apps (all when apps is nil), in seq order (oldest first).
func (x *queueIndex) userItems(user string, apps []core.AppID) []int64 {
	x.mu.RLock()
	var seqs []int64
	for _, q := range x.users[user] {
		if apps == nil || slices.Contains(apps, q.app) {
			seqs = append(seqs, q.seqs...)
		}
	}
	x.mu.RUnlock()
	slices.Sort(seqs)
	return seqs
}

// usersWithItems lists the users with at least one live item.
func (x *queueIndex) usersWithItems() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	users := make([]string, 0, len(x.users))
	for u := range x.users {
		users = append(users, u)
	}
	return users
}
